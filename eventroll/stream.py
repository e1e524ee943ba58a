"""Sequence checks shared by every consumer of an event stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SequenceChecker:
    """Checks that global ``seq`` numbers are contiguous and each worker's ``wseq`` too.

    ``observe`` returns a message for every gap or repeat it sees, naming the
    worker and the range; ``errors`` keeps the first ``KEPT`` (a hostile stream
    must not grow memory).
    """

    KEPT = 100

    next_seq: int = 0
    next_wseq: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def observe(self, seq: int, worker: int, wseq: int, count: int = 1) -> list[str]:
        """Take ``count`` events of ``worker`` (a packed record stands for several), the
        first of them numbered ``seq`` and ``wseq``, the others following on."""
        next_wseq = self.next_wseq
        if seq == self.next_seq and next_wseq.get(worker, 0) == wseq:  # in order: all is well
            self.next_seq, next_wseq[worker] = seq + count, wseq + count
            return []
        found = []
        if seq != self.next_seq:
            found.append(range_message("global", self.next_seq, seq, "seq"))
        self.next_seq = max(self.next_seq, seq + count)
        expected = self.next_wseq.get(worker, 0)
        if wseq != expected:
            found.append(range_message(f"worker {worker}", expected, wseq, "wseq"))
        self.next_wseq[worker] = max(expected, wseq + count)
        self._keep(found)
        return found

    def _keep(self, found: list[str]) -> None:
        self.errors.extend(found[:max(self.KEPT - len(self.errors), 0)])

    def finish(self, total: int | None, last_wseq: dict[int, int] | None = None) -> list[str]:
        """Check the end of the stream against the announced totals."""
        found = []
        if total is not None and total != self.next_seq:
            found.append(range_message("global", self.next_seq, total, "seq"))
        for worker, last in (last_wseq or {}).items():
            expected = self.next_wseq.get(worker, 0)
            if last + 1 != expected:
                found.append(range_message(f"worker {worker}", expected, last + 1, "wseq"))
        self._keep(found)
        return found


class IndexSet:
    """A set of integers (episode indexes): those in ``0..DENSE - 1`` one bit each, in bytes
    that grow as needed; any other (a damaged stream's) in a set of its own, so that one
    huge index does not cost memory in proportion."""

    DENSE = 1 << 26  # at most 8 MiB of bits

    def __init__(self, size: int = 0) -> None:
        self._bits = bytearray((min(size, self.DENSE) + 7) // 8)
        self._others: set[int] = set()

    def add(self, index: int) -> None:
        if not 0 <= index < self.DENSE:
            self._others.add(index)
            return
        bits, byte = self._bits, index >> 3
        if byte >= len(bits):
            bits.extend(bytes(min(max(byte + 1, 2 * len(bits)), self.DENSE >> 3) - len(bits)))
        bits[byte] |= 1 << (index & 7)

    def __contains__(self, index: int) -> bool:
        if not 0 <= index < self.DENSE:
            return index in self._others
        byte = index >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (index & 7)))

    def discard(self, index: int) -> None:
        if not 0 <= index < self.DENSE:
            self._others.discard(index)
        elif index in self:
            self._bits[index >> 3] &= ~(1 << (index & 7)) & 0xFF

    def isdisjoint(self, other: IndexSet) -> bool:
        common = min(len(self._bits), len(other._bits))
        mine, theirs = (np.frombuffer(bits, np.uint8, common) for bits in (self._bits, other._bits))
        return not (mine & theirs).any() and self._others.isdisjoint(other._others)

    def update(self, other: IndexSet) -> None:
        """Add every index of ``other``."""
        if len(other._bits) > len(self._bits):
            self._bits.extend(bytes(len(other._bits) - len(self._bits)))
        mine = np.frombuffer(self._bits, np.uint8, len(other._bits))
        mine |= np.frombuffer(other._bits, np.uint8)
        self._others |= other._others

    def portable(self) -> dict[str, Any]:
        """The set as plain data (:meth:`from_portable` reads it back)."""
        return {"bits": bytes(self._bits), "others": sorted(self._others)}

    @classmethod
    def from_portable(cls, data: dict[str, Any]) -> IndexSet:
        indexes = cls()
        indexes._bits[:] = data["bits"]
        indexes._others.update(data["others"])
        return indexes


def range_message(stream: str, expected: int, got: int, name: str) -> str:
    """Names the events of ``stream`` missing (or repeated) when ``got`` came instead of
    ``expected``."""
    if got > expected:
        return f"{stream}: events {name} {expected}..{got - 1} missing"
    return f"{stream}: event {name} {got} repeated or out of order (expected {expected})"

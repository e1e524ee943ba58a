"""The event log: ``events.msgpack``, a plain append-only stream of msgpack maps.

The first map is the header (``format``, ``version``, ``run_id``, ``created``);
every following map is one event record as it travelled on the bus, with the
hub's ``seq`` added. Any msgpack reader can read the file; numpy values are
msgpack extension types described in ``schemas/event-log.md``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, BinaryIO

import msgpack

from eventroll import codec, events, packing
from eventroll.errors import CodecError, EventError, InputError
from eventroll.files import DropBehind, write_all
from eventroll.recorders.base import Records

FORMAT = "eventroll-events"
FORMAT_VERSION = 3  # 3: records of kind episodes (packed episodes) may occur
# 2: run.start carries derived seeds as a map of two numbers; 1: as an array, a seed an episode
READABLE_VERSIONS = (1, 2, 3)
FILE_NAME = "events.msgpack"


def header_record(run_id: str) -> dict[str, Any]:
    return {"format": FORMAT, "version": FORMAT_VERSION, "run_id": run_id,
            "created": datetime.now(timezone.utc).isoformat()}


class EventLogRecorder:
    """Appends every event to the log: the records of each message with one writev, from
    the message's own bytes, unbuffered (what the recorder took is in the kernel's hands
    at once, whatever becomes of its process); syncs the file to disk at close."""

    takes_records = True

    def __init__(self, path: str, run_id: str) -> None:
        self.path = path
        # never overwrite a recorded log
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self._size = write_all(self._fd, [codec.encode(header_record(run_id))])
        self._drop_behind = DropBehind(self._fd)
        self._records = 0

    def handle_records(self, records: Records) -> None:
        self._size += write_all(self._fd, records.parts)
        self._records += len(records.parts) // 2  # each record: its seq header, its bytes
        self._drop_behind.wrote(self._size)

    def tick(self) -> None:
        pass

    def close(self) -> dict[str, Any]:
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
        return {"path": self.path, "records": self._records}


class EventLogReader:
    """Reads an event log: the header, then the records, one by one.

    Iteration stops cleanly at a truncated tail (a record cut short, as a crash
    leaves it); ``truncated_bytes`` then says how many bytes were left over.
    A malformed record in the middle raises :class:`CodecError` with its offset.
    :meth:`appended` follows a log that is still being written. ``arrays=False``
    leaves numpy values out (None), about four times faster; with ``array_kinds``
    only events of those kinds get their arrays decoded (others keep them as
    :class:`~eventroll.codec.RawArray`). A packed record (:mod:`eventroll.packing`) comes
    as the records of the events it stands for, or, with ``packed``, as it is (an
    :class:`~eventroll.events.Episodes` event from :meth:`events`).
    """

    CHUNK = 1 << 20

    def __init__(self, path: str | os.PathLike[str], *, arrays: bool = True,
                 array_kinds: frozenset[str] | None = None, packed: bool = False) -> None:
        self.path = os.fspath(path)
        self._packed = packed
        self.truncated_bytes = 0
        self._consumed = 0
        self._arrays = events.decoding(array_kinds) if arrays else False
        self._typed = (functools.partial(events.from_raw_record, array_kinds=array_kinds)
                       if arrays else functools.partial(events.from_record, arrays=False))
        self.header: dict[str, Any] = {}
        self._following: tuple[BinaryIO, Any] | None = None  # (file, unpacker) of appended()

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield each event record as a decoded map, from the start of the file, or from
        ``start`` (the offset of a record: :func:`record_starts`) with the header checked
        first; with ``stop``, up to the first record that begins at or after it."""
        self.header = {}
        with open(self.path, "rb") as file:
            if start:
                self.header = self._check_header(next(self._unpack(self._head(file), 0), None))
                file.seek(start)
            self._consumed = start  # where the next record begins
            yield from self._complete_records(
                file, codec.stream_unpacker(arrays=self._arrays), start, stop)
            self.truncated_bytes = file.tell() - self._consumed if stop is None else 0
        if not self.header:
            raise CodecError(f"{self.path}: empty or truncated before the end of its header")

    @property
    def position(self) -> int:
        """Where the record after the last one read begins in the file."""
        return self._consumed

    def appended(self) -> Iterator[dict[str, Any]]:
        """Yield the records written since the last call (the first: since the start), read
        as they are taken (memory stays what a chunk holds, however long the log); a record
        still being written comes with a later call, and so do those a caller left untaken.
        The file stays open until :meth:`close`."""
        if self._following is None:
            self._following = open(self.path, "rb"), codec.stream_unpacker(arrays=self._arrays)
        return self._complete_records(*self._following)

    def close(self) -> None:
        if self._following is not None:
            self._following[0].close()
            self._following = None

    def events(self, *, plain: bool = False, start: int = 0,
               stop: int | None = None) -> Iterator[events.Event | dict]:
        """Yield each record (of those :meth:`records` gives with ``start`` and ``stop``) as
        a typed event (a generator: closing it closes the file); with ``plain`` (and
        ``array_kinds``), a plain record (:func:`eventroll.events.is_plain`) as its map
        instead."""
        typed = self._typed
        is_plain = events.is_plain if plain and self._arrays == codec.RAW else None
        for record in self.records(start, stop):
            if is_plain is not None and is_plain(record):
                yield record
            elif packing.is_packed(record):  # records() left it so: ``packed``
                yield packing.checked(record, arrays=self._arrays is True)
            else:
                yield typed(record)

    def __iter__(self) -> Iterator[events.Event]:
        return self.events()

    def _complete_records(self, file: BinaryIO, unpacker: Any, base: int = 0,
                          stop: int | None = None) -> Iterator[dict[str, Any]]:
        """The records in what ``file`` holds beyond what was read (``unpacker`` was fed
        from ``base`` on), up to ``stop``; the header is checked."""
        stop = float("inf") if stop is None else stop
        while True:  # what the unpacker holds first: a caller may have left records untaken
            for record in self._unpack(unpacker, base, stop):
                if not self.header:
                    self.header = self._check_header(record)
                elif self._packed or not packing.is_packed(record):
                    yield record
                else:
                    yield from self._unpacked(record)
            if self._consumed >= stop:
                return
            chunk = file.read(self.CHUNK)
            if not chunk:
                return
            unpacker.feed(chunk)

    def _unpacked(self, record: dict) -> list[dict[str, Any]]:
        """The records of the events a packed record stands for."""
        try:
            return packing.unpacked(record, self._arrays)
        except (CodecError, EventError) as exc:
            raise CodecError(f"{self.path}: malformed record before byte {self._consumed}: "
                             f"{exc}") from None

    def _head(self, file: BinaryIO) -> Any:
        """An unpacker fed with the start of ``file`` (the header: up to a chunk)."""
        unpacker = codec.stream_unpacker(arrays=False)
        unpacker.feed(file.read(self.CHUNK))
        return unpacker

    def _unpack(self, unpacker: Any, base: int, stop: float = float("inf")) -> Iterator[Any]:
        """The records ``unpacker`` (fed from ``base`` on) holds whole, up to ``stop``."""
        while True:
            offset = base + unpacker.tell()
            if offset >= stop:
                return
            try:
                record = next(unpacker)
            except StopIteration:
                return
            except CodecError as exc:
                raise CodecError(f"{self.path}: malformed record at byte {offset}: {exc}") from None
            except Exception as exc:  # msgpack's own errors on corrupt bytes
                detail = f": {exc}" if str(exc) else ""
                raise CodecError(f"{self.path}: malformed record at byte {offset} "
                                 f"({type(exc).__name__}{detail}); `eventroll validate` shows "
                                 "what can still be read") from None
            self._consumed = base + unpacker.tell()  # the start of the next record
            yield record

    def _check_header(self, record: Any) -> dict[str, Any]:
        if not (isinstance(record, dict) and record.get("format") == FORMAT):
            raise CodecError(f"{self.path} is not an eventroll event log (no header)")
        if record.get("version") not in READABLE_VERSIONS:
            raise EventError(f"{self.path}: event log version {record.get('version')!r}, this "
                             f"eventroll reads versions {READABLE_VERSIONS}")
        return record


def event_log_path(path: str | os.PathLike[str]) -> str:
    """The event log at ``path``: the file itself, or a run directory's ``events.msgpack``."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, FILE_NAME)
        if not os.path.exists(path):
            raise InputError(f"{os.path.dirname(path)} holds no {FILE_NAME}; pass a run "
                             "directory or an event log file")
    elif not os.path.exists(path):
        raise InputError(f"{path}: no such file or directory; pass a run directory or an "
                         f"event log ({FILE_NAME})")
    return path


def record_starts(path: str | os.PathLike[str], offsets: Sequence[int]) -> list[int]:
    """For each of ``offsets`` (ascending), where the first event record that begins at or
    after it begins (where the whole records end, if none does: the file's size but for a
    truncated tail), found by stepping over records without decoding them;
    :class:`CodecError` if the log is malformed before the last."""
    starts: list[int] = []
    unpacker, position = codec.stream_unpacker(arrays=False), 0
    with open(path, "rb") as file:
        while len(starts) < len(offsets):
            try:
                unpacker.skip()
            except msgpack.OutOfData:
                chunk = file.read(EventLogReader.CHUNK)
                if not chunk:
                    break
                unpacker.feed(chunk)
                continue
            except Exception as exc:  # msgpack's own errors on corrupt bytes
                raise CodecError(f"{path}: malformed record at byte {position} "
                                 f"({type(exc).__name__})") from None
            position = unpacker.tell()
            while len(starts) < len(offsets) and position >= offsets[len(starts)]:
                starts.append(position)
    return starts + [position] * (len(offsets) - len(starts))


def read_events(path: str | os.PathLike[str],
                array_kinds: frozenset[str] | None = None) -> Iterator[events.Event]:
    """Yield the typed events of an event log, stopping cleanly at a truncated tail; with
    ``array_kinds``, only events of those kinds get their arrays decoded (others keep
    them as :class:`~eventroll.codec.RawArray`)."""
    return EventLogReader(path, array_kinds=array_kinds).events()

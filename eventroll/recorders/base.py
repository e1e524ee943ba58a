"""The durable-subscriber process loop that every recorder runs in."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from eventroll import codec, events
from eventroll.bus import DurableSubscription
from eventroll.errors import CodecError, EventError
from eventroll.stream import SequenceChecker

IDLE_TICK = 0.05


@dataclass(frozen=True)
class RecorderSpec:
    """A durable recorder to run in its own process: ``factory(**kwargs)``."""

    name: str
    factory: Any
    kwargs: dict[str, Any]


class Recorder(Protocol):
    """Builds one artifact from events; the same object serves live and replay.

    A recorder whose class sets ``uses_raw = True`` also gets each event's encoded
    record with ``seq`` added (the event log stores it); the others get None, which
    spares them re-encoding every event.
    """

    def handle(self, event: events.Event, raw: bytes | None) -> None:
        """Take one checked event (``seq`` set) and, if it uses it, its encoded record."""

    def tick(self) -> None:
        """Called after each message and when idle, for time-based flushing."""

    def close(self) -> dict[str, Any]:
        """Finish the artifact; return a short report."""


def record_deliveries(recorder: Recorder, subscription: DurableSubscription) -> dict[str, Any]:
    """Feed every delivered event to ``recorder`` until the hub says the run is over."""
    checker = SequenceChecker()
    rejected: list[str] = []
    failure: str | None = None
    uses_raw = getattr(recorder, "uses_raw", False)
    parent = os.getppid()
    while subscription.total is None:
        try:
            delivery = subscription.receive(IDLE_TICK)
        except CodecError as exc:
            rejected.append(f"message: {exc}")
            continue
        if delivery is None:
            if failure is None:
                failure = _handle(recorder, None, None)
            if os.getppid() != parent:  # the driver died: keep what was recorded, stop
                rejected.append("the run's driver process died before the end of the run")
                break
            continue
        for offset, raw in enumerate(delivery.frames):
            seq = delivery.first_seq + offset
            try:
                event = events.from_record(codec.decode(raw))
            except (CodecError, EventError) as exc:
                rejected.append(f"seq {seq}: {exc}")
                continue
            event.seq = seq
            checker.observe(seq, event.worker, event.wseq)
            if failure is None:
                failure = _handle(recorder, event, codec.prepend_fields(raw, {"seq": seq})
                                  if uses_raw else None)
        if failure is None:
            failure = _handle(recorder, None, None)
    checker.finish(subscription.total)
    return _report(recorder, failure, checker.errors + rejected[:100],
                   events=checker.next_seq, rejected=len(rejected))


def _handle(recorder: Recorder, event: events.Event | None, raw: bytes | None) -> str | None:
    """Hand one event to the recorder (None: a tick); return the error that stops it."""
    try:
        if event is None:
            recorder.tick()
        else:
            recorder.handle(event, raw)
    except Exception as exc:  # the artifact is incomplete from here; keep draining the bus
        where = "" if event is None else f" at seq {event.seq} ({event.KIND})"
        return (f"stopped recording{where}: {type(exc).__name__}: {exc}; the artifact holds what "
                "was written before, and the event log holds everything")
    return None


def _report(recorder: Recorder, failure: str | None, errors: list[str],
            **counts: Any) -> dict[str, Any]:
    try:
        report = recorder.close()
    except Exception as exc:
        report = {"errors": [f"closing failed: {type(exc).__name__}: {exc}"]}
    errors = errors + ([failure] if failure else []) + report.pop("errors", [])
    return {**report, **counts, "errors": errors}


def recorder_main(factory: Callable[..., Recorder], kwargs: dict[str, Any], endpoint: str,
                  name: str, register_timeout: float) -> None:
    """Process entry point: build the recorder, register with the hub, record."""
    recorder = factory(**kwargs)
    subscription = DurableSubscription(endpoint, name, timeout=register_timeout)
    try:
        report = record_deliveries(recorder, subscription)
        subscription.done(report)
    finally:
        subscription.close()


def replay(recorder: Recorder, event_log: str) -> dict[str, Any]:
    """Build a recorder's artifact offline from an event log (``raw`` is None)."""
    from eventroll.recorders.eventlog import read_events

    try:
        for event in read_events(event_log):
            recorder.handle(event, None)
    finally:
        report = recorder.close()
    return report

"""The durable-subscriber process loop that every recorder runs in."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from eventroll import codec, events
from eventroll.bus import DurableSubscription
from eventroll.errors import CodecError, EventError
from eventroll.stream import SequenceChecker

IDLE_TICK = 0.05


class Recorder(Protocol):
    """Builds one artifact from events; the same object serves live and replay."""

    def handle(self, event: events.Event, raw: bytes) -> None:
        """Take one checked event (``seq`` set) and its encoded record."""

    def tick(self) -> None:
        """Called after each message and when idle, for time-based flushing."""

    def close(self) -> dict[str, Any]:
        """Finish the artifact; return a short report."""


def record_deliveries(recorder: Recorder, subscription: DurableSubscription) -> dict[str, Any]:
    """Feed every delivered event to ``recorder`` until the hub says the run is over."""
    checker = SequenceChecker()
    rejected: list[str] = []
    parent = os.getppid()
    while subscription.total is None:
        try:
            delivery = subscription.receive(IDLE_TICK)
        except CodecError as exc:
            rejected.append(f"message: {exc}")
            continue
        if delivery is None:
            recorder.tick()
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
            recorder.handle(event, codec.prepend_fields(raw, {"seq": seq}))
        recorder.tick()
    checker.finish(subscription.total)
    report = recorder.close()
    return {**report, "events": checker.next_seq, "rejected": len(rejected),
            "errors": checker.errors + rejected[:100]}


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

"""Guarantee 2: a slow durable recorder slows the sources instead of growing a queue."""

from __future__ import annotations

import time
from typing import Any

from eventroll import bus
from eventroll.events import Custom, RunEnd
from eventroll.runners.session import RecorderSpec, RunSession, Timeouts

DELAY = 0.001
MESSAGES = 2000
PAYLOAD = b"x" * 16384  # large enough that kernel socket buffers hold only a few


class SlowRecorder:
    """Takes DELAY seconds per event and counts them."""

    def __init__(self) -> None:
        self.count = 0

    def handle(self, event: Any) -> None:
        time.sleep(DELAY)
        self.count += 1

    def tick(self) -> None:
        pass

    def close(self) -> dict[str, Any]:
        return {"handled": self.count}


def test_a_slow_recorder_blocks_the_source_and_loses_nothing(tmp_path):
    """Sending 2000 messages of 16 KB to a recorder that needs 1 ms each takes about as long as the
    recorder, minus a bounded buffer; every message is recorded."""
    session = RunSession([RecorderSpec("slow", SlowRecorder, {})],
                         timeouts=Timeouts(start=30, stall=30, finish=30, reap=5))
    session.start()
    session.go()
    with session:
        source = bus.Publisher(session.endpoints.ingress, 0, stall_timeout=30, ack_timeout=30)
        started = time.monotonic()
        try:
            for i in range(MESSAGES):
                source.add(Custom(name="tick", fields={"i": i, "payload": PAYLOAD}))
                source.flush()
            send_time = time.monotonic() - started
            source.finish(Custom(name="done"))
        finally:
            source.close()
        report = session.finish(RunEnd(run_id="t", status="completed", episodes=0, aborted=0,
                                       steps=0, wall_time=0.0))
    assert report["durable"]["slow"]["handled"] == MESSAGES + 2
    assert report["durable"]["slow"]["errors"] == []
    # the queues hold a bounded number of messages (high-water marks of 64 + 64 + 256 + 256,
    # plus a few in kernel buffers): the rest had to wait for the recorder
    buffered = bus.SOURCE_HWM * 2 + bus.DURABLE_HWM * 2 + 100
    assert send_time >= (MESSAGES - buffered) * DELAY * 0.9

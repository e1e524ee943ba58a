#!/usr/bin/env python
"""The CPU a thread pays to wait and wake up, on this machine.

What it measures
----------------
Each way of waiting runs ``--waits`` times for ``--interval`` seconds with nothing to
wake it early; the figure is the waiting thread's own CPU time
(``time.thread_time``) per wait, in microseconds, median over ``--repeats`` rounds:

* ``time.sleep``;
* ``select.poll`` on a pipe that nobody writes;
* ``zmq.Socket.poll`` on a DEALER socket connected to an ipc endpoint nobody binds, as a
  recorder waits for its next message (``eventroll.bus``);
* ``zmq.Socket.poll`` and ``recv_multipart`` with a 28 kB message already queued, which
  returns at once: the cost of receiving without waiting, for comparison.

On a bare machine a wait costs a few microseconds. On this virtual machine it cost 70 to
700 (see tools/PERFORMANCE.md, ninth round): every message that wakes a process (its
ZeroMQ I/O thread, then its main thread) costs that much on top of the work, which is
why a recorder process takes more CPU a million steps live than the same loop fed in one
process (``bench_recorders.py``'s "process loop" rows).

How to run
----------
    python tools/bench_wakeups.py
    python tools/bench_wakeups.py --waits 100 --interval 0.01 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import tempfile
import time
from collections.abc import Callable

import zmq


def per_wait(wait: Callable[[], object], waits: int) -> float:
    """The calling thread's CPU microseconds per call of ``wait``."""
    started = time.thread_time()
    for _ in range(waits):
        wait()
    return (time.thread_time() - started) / waits * 1e6


def measure(waits: int, interval: float) -> dict[str, float]:
    """Microseconds of CPU per wait, for each way of waiting."""
    ms = int(interval * 1000)
    read_end, write_end = os.pipe()
    poller = select.poll()
    poller.register(read_end, select.POLLIN)
    context = zmq.Context()
    directory = tempfile.mkdtemp()
    idle = context.socket(zmq.DEALER)
    idle.connect(f"ipc://{directory}/nobody")
    sender, receiver = context.socket(zmq.DEALER), context.socket(zmq.DEALER)
    sender.bind(f"ipc://{directory}/queue")
    receiver.connect(f"ipc://{directory}/queue")
    try:
        for _ in range(waits):
            sender.send_multipart([b"h" * 40, b"x" * 28_000])

        def receive() -> object:
            receiver.poll(ms, zmq.POLLIN)
            return receiver.recv_multipart(copy=False)

        while not receiver.poll(1000, zmq.POLLIN):  # the queue has arrived
            pass
        return {
            "time.sleep": per_wait(lambda: time.sleep(interval), waits),
            "select.poll, idle pipe": per_wait(lambda: poller.poll(ms), waits),
            "zmq poll, idle socket": per_wait(lambda: idle.poll(ms, zmq.POLLIN), waits),
            "zmq poll + recv, message queued": per_wait(receive, waits),
        }
    finally:
        for sock in (idle, sender, receiver):
            sock.close(linger=0)
        context.term()
        os.close(read_end)
        os.close(write_end)
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waits", type=int, default=40, help="waits a round (default 40)")
    parser.add_argument("--interval", type=float, default=0.05,
                        help="seconds a wait lasts (default 0.05, a recorder's idle tick)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default 3)")
    args = parser.parse_args(argv)
    if args.waits < 1 or args.repeats < 1 or not 0 < args.interval <= 1:
        parser.error("--waits and --repeats must be at least 1, --interval in (0, 1] s")
    rounds = [measure(args.waits, args.interval) for _ in range(args.repeats)]
    print(f"| wait ({args.waits} of {args.interval:g} s, {args.repeats} rounds) "
          "| CPU µs a wait, median | spread |")
    print("|:---|---:|---:|")
    for name in rounds[0]:
        values = [r[name] for r in rounds]
        print(f"| {name} | {statistics.median(values):,.0f} | "
              f"{min(values):,.0f} to {max(values):,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

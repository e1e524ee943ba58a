#!/usr/bin/env python
"""Per-step cost of recording in the worker loop: ``BusSink.step`` plus closing batches.

Feeds CartPole-shaped steps (22-step episodes, float32[4] observations, int64
actions) to a :class:`eventroll.runners.loop.BusSink` whose publisher drops what
it is given, so only the sink's own work (collecting steps, building columnar
``step.batch`` events) is timed; encoding and sending are measured by
``bench_rollout.py``. Prints the median microseconds per step of ``--repeats`` runs.

    python tools/bench_sink.py --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from eventroll.runners.loop import BusSink


class DroppingPublisher:
    """Stands in for the bus: keeps the flush clock, drops every event."""

    def __init__(self) -> None:
        self.last_flush = time.monotonic()

    def add(self, event: object) -> None:
        pass

    def flush(self) -> None:
        self.last_flush = time.monotonic()


def one_run(episodes: int, length: int = 22) -> float:
    sink = BusSink(DroppingPublisher(), pid=0)  # type: ignore[arg-type]
    observation, action = np.zeros(4, np.float32), np.int64(1)
    started = time.perf_counter()
    for episode in range(episodes):
        sink.episode_start(episode, episode, episode, observation, {})
        for t in range(length):
            sink.step(action, observation, 1.0, t == length - 1, False, {})
        sink._close_batch()
    return (time.perf_counter() - started) / (episodes * length) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    runs = [one_run(args.episodes) for _ in range(args.repeats)]
    print(f"BusSink: {statistics.median(runs):.3f} us/step median of {args.repeats} "
          f"(min {min(runs):.3f}, max {max(runs):.3f})")


if __name__ == "__main__":
    main()

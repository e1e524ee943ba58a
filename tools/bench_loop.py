#!/usr/bin/env python
"""Per-step cost of the worker's interaction loop, next to the plain Gymnasium loop.

All in one process, on CartPole-v1 (``gym.make`` with its default wrappers),
with no event bus (the loop's ``NullSink``), interleaved round-robin over
``--repeats`` rounds of ``--steps`` steps each; prints median microseconds per
step and the ratio to the plain loop:

* ``plain loop``: ``env.reset(seed=i)``, then ``env.step(env.action_space.sample())``;
* ``run_episode, RandomPolicy``: eventroll's loop (``run_episode``) with the
  built-in random policy, seeded per episode as a run seeds it;
* ``run_episode, space.sample()``: the same loop with a policy that seeds and
  samples the action space itself (what ``RandomPolicy`` did before it drew
  Discrete actions with :class:`random.Random`);
* ``run_episode, Python ints``: random.Random draws given as Python ints (what
  ``RandomPolicy`` gave before it gave numpy scalars, which Gymnasium 1.x's
  ``Discrete.contains`` checks faster);
* ``run_episode, events encoded``: the built-in policy with the worker's sink
  (``BusSink``), its events stamped and encoded by ``Publisher.add`` as a worker's are,
  each message dropped where a worker sends it: the loop's cost of making its events.

    python tools/bench_loop.py --steps 200000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from eventroll.bus import Publisher
from eventroll.packing import EpisodePack
from eventroll.policies import RandomPolicy
from eventroll.runners.loop import BusSink, NullSink, run_episode


class SpaceSamplingPolicy:
    """Seeds and samples the action space itself."""

    def __init__(self, action_space: gym.Space) -> None:
        self._space = action_space

    def seed(self, seed: int) -> None:
        self._space.seed(seed)

    def compute_action(self, observation: object, *, deterministic: bool = False) -> object:
        return self._space.sample()


class PythonIntPolicy:
    """Draws Discrete actions with random.Random and gives them as Python ints."""

    def __init__(self, action_space: gym.spaces.Discrete) -> None:
        self._random, self._n = random.Random(), int(action_space.n)

    def seed(self, seed: int) -> None:
        self._random.seed(seed)

    def compute_action(self, observation: object, *, deterministic: bool = False) -> object:
        return self._random.randrange(self._n)


def plain_loop(steps: int) -> float:
    env = gym.make("CartPole-v1")
    env.action_space.seed(0)
    done_steps = episode = 0
    started = time.perf_counter()
    while done_steps < steps:
        env.reset(seed=episode)
        episode += 1
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done_steps += 1
            done = terminated or truncated
    return (time.perf_counter() - started) / done_steps * 1e6


class UnsentPublisher(Publisher):
    """A :class:`Publisher` without a socket: ``add`` stamps, packs and encodes as a
    worker's does; ``flush`` drops what a worker would send."""

    def __init__(self) -> None:  # Publisher's own would connect a socket
        self.worker, self._next_wseq, self._pack = 0, 0, EpisodePack()
        self._new_message()

    def flush(self, *, end: bool = False, ack: bool = False) -> None:
        self._release()
        self._new_message()


def eventroll_loop(policy_class: type, sink_class: Callable[[], Any] = NullSink
                   ) -> Callable[[int], float]:
    def run(steps: int) -> float:
        env = gym.make("CartPole-v1")
        policy, sink = policy_class(env.action_space), sink_class()
        done_steps = episode = 0
        started = time.perf_counter()
        while done_steps < steps:
            done_steps += run_episode(env, policy, episode, env_seed=episode,
                                      agent_seed=episode, sink=sink).length
            episode += 1
        return (time.perf_counter() - started) / done_steps * 1e6
    return run


CASES: dict[str, Callable[[int], float]] = {
    "plain loop": plain_loop,
    "run_episode, RandomPolicy": eventroll_loop(RandomPolicy),
    "run_episode, space.sample()": eventroll_loop(SpaceSamplingPolicy),
    "run_episode, Python ints": eventroll_loop(PythonIntPolicy),
    "run_episode, events encoded": eventroll_loop(
        RandomPolicy, lambda: BusSink(UnsentPublisher(), pid=os.getpid())),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    names = list(CASES)
    for round_ in range(args.repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            times[name].append(CASES[name](args.steps))
    plain = statistics.median(times["plain loop"])
    print(f"{'case':30s} {'us/step':>8s} {'x plain':>8s}  runs")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"{name:30s} {median:8.2f} {median / plain:8.2f}  "
              + " ".join(f"{run:.2f}" for run in runs))


if __name__ == "__main__":
    main()

"""The worker process: builds its env and policy, takes episodes until none are left."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from eventroll.bus import Publisher
from eventroll.environments import EnvFactory
from eventroll.events import WorkerEnd, WorkerStart
from eventroll.policies import build_policy
from eventroll.runners.loop import BusSink, EpisodeSummary, run_episode, worker_error


@dataclass
class EpisodeSettings:
    """How every episode of a run is played and recorded."""

    env_seeds: list[int]
    agent_seeds: list[int]
    deterministic: bool = False
    render: bool = False  # a worker process then builds its env with render_mode="human"
    batch_steps: int = 64
    flush_interval: float = 0.05
    record_logits: bool = False


def play_episodes(env: Any, policy: Any, publisher: Publisher, episodes: Iterator[int],
                  settings: EpisodeSettings,
                  on_episode: Callable[[EpisodeSummary], None] | None = None) -> int:
    """Play the given episode indices on one env, sending events; return how many."""
    sink = BusSink(publisher, pid=os.getpid(), batch_steps=settings.batch_steps,
                   flush_interval=settings.flush_interval)
    count = 0
    for index in episodes:
        summary = run_episode(env, policy, index, env_seed=settings.env_seeds[index],
                              agent_seed=settings.agent_seeds[index],
                              deterministic=settings.deterministic, render=settings.render,
                              record_logits=settings.record_logits, sink=sink)
        count += 1
        if on_episode is not None:
            on_episode(summary)
    return count


@dataclass
class WorkerSpec:
    """What a worker process is handed at its start (through multiprocessing)."""

    worker: int
    endpoint: str
    env: EnvFactory
    agent: Any
    n_episodes: int
    counter: Any  # multiprocessing.Value("q"): the next episode index to hand out
    settings: EpisodeSettings
    go: Any  # multiprocessing.Event, set once the durable subscribers are confirmed
    start_timeout: float
    stall_timeout: float
    ack_timeout: float


def _take(counter: Any, n_episodes: int, alive: Callable[[], bool]) -> Iterator[int]:
    """Episode indices handed out dynamically across workers, while the driver lives."""
    while alive():
        with counter.get_lock():
            index = counter.value
            if index >= n_episodes:
                return
            counter.value = index + 1
        yield index


def worker_main(spec: WorkerSpec) -> None:
    """Process entry point of a parallel worker."""
    if not spec.go.wait(spec.start_timeout):
        sys.exit(2)  # the run never started; nothing was sent
    pid, driver = os.getpid(), os.getppid()

    def alive() -> bool:
        return os.getppid() == driver

    publisher = Publisher(spec.endpoint, spec.worker, stall_timeout=spec.stall_timeout,
                          ack_timeout=spec.ack_timeout, alive=alive)
    env = None
    failed = False
    episodes = 0
    try:
        publisher.add(WorkerStart(pid=pid))
        publisher.flush()
        try:
            env = spec.env(render_mode="human" if spec.settings.render else None)
            policy = build_policy(spec.agent, env.observation_space, env.action_space)
        except Exception as exc:  # report to the run, then end this worker's stream cleanly
            publisher.add(worker_error(pid, None, exc))
            failed = True
        else:
            episodes = play_episodes(env, policy, publisher,
                                     _take(spec.counter, spec.n_episodes, alive), spec.settings)
        publisher.finish(WorkerEnd(pid=pid, episodes=episodes, last_wseq=publisher.next_wseq))
    finally:
        if env is not None:
            env.close()
        publisher.close()
    if failed:
        sys.exit(1)

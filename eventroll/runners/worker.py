"""The worker process: builds its env and policy, takes episodes until none are left."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
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

    env_seeds: Sequence[int]  # int(env_seeds[i]): episode i's (a numpy array when derived)
    agent_seeds: Sequence[int]
    deterministic: bool = False
    render: bool = False  # a worker process then builds its env with render_mode="human"
    batch_steps: int = 64
    flush_interval: float = 0.05
    record_logits: bool = False
    retries: int = 0  # times an aborted episode is played again (same seeds) before it counts
    pack_episodes: bool = True  # recording.pack_episodes: the publisher packs whole episodes


def play_episodes(env: Any, policy: Any, publisher: Publisher, episodes: Iterator[int],
                  settings: EpisodeSettings,
                  on_episode: Callable[[EpisodeSummary], None] | None = None,
                  playing: Callable[[int], None] | None = None) -> int:
    """Play the given episode indices on one env, sending events; return how many.
    ``playing(index)`` is told each episode as it begins, and -1 once it has ended."""
    sink = BusSink(publisher, pid=os.getpid(), batch_steps=settings.batch_steps,
                   flush_interval=settings.flush_interval)
    count = 0
    for index in episodes:
        if playing is not None:
            playing(index)
        for attempt in range(settings.retries + 1):
            sink.retrying = attempt < settings.retries  # a failure is voided and played again
            summary = run_episode(env, policy, index, env_seed=int(settings.env_seeds[index]),
                                  agent_seed=int(settings.agent_seeds[index]),
                                  deterministic=settings.deterministic, render=settings.render,
                                  record_logits=settings.record_logits, sink=sink)
            if not summary.aborted:
                break
        if playing is not None:
            playing(-1)
        count += 1
        if on_episode is not None:
            on_episode(summary)
    return count


@dataclass
class Handout:
    """How the episodes of a run are handed out to its workers, in shared memory.

    ``counter`` (``multiprocessing.Value("q")``) is the next episode never handed out;
    ``owners[i]`` is 1 + the worker that took episode ``i``; ``playing[w]`` the
    episode worker ``w`` plays, -1 between episodes. A worker that dies leaves in
    them what it took and what it was playing.
    """

    counter: Any
    owners: Any  # multiprocessing.RawArray("h", n_episodes)
    playing: Any  # multiprocessing.RawArray("q", the most workers a run may start)

    def take(self, worker: int, n_episodes: int, first: tuple[int, ...],
             alive: Callable[[], bool]) -> Iterator[int]:
        """``first``, then episodes handed out dynamically across workers, while the
        driver lives; each marked as this worker's."""
        for index in first:
            if not alive():
                return
            self.owners[index] = worker + 1
            yield index
        counter = self.counter
        while alive():
            with counter.get_lock():
                index = counter.value
                if index >= n_episodes:
                    return
                counter.value = index + 1
                self.owners[index] = worker + 1
            yield index


@dataclass
class WorkerSpec:
    """What a worker process is handed at its start (through multiprocessing)."""

    worker: int
    endpoint: str
    env: EnvFactory
    agent: Any
    n_episodes: int
    handout: Handout
    settings: EpisodeSettings
    go: Any  # multiprocessing.Event, set once the durable subscribers are confirmed
    start_timeout: float
    stall_timeout: float
    ack_timeout: float
    first: tuple[int, ...] = ()  # episodes to play before taking new ones (a replacement's)


def worker_main(spec: WorkerSpec) -> None:
    """Process entry point of a parallel worker."""
    if not spec.go.wait(spec.start_timeout):
        sys.exit(2)  # the run never started; nothing was sent
    pid, driver = os.getpid(), os.getppid()

    def alive() -> bool:
        return os.getppid() == driver

    publisher = Publisher(spec.endpoint, spec.worker, stall_timeout=spec.stall_timeout,
                          ack_timeout=spec.ack_timeout, alive=alive,
                          pack=spec.settings.pack_episodes)
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
            handout = spec.handout

            def playing(index: int) -> None:
                handout.playing[spec.worker] = index

            episodes = play_episodes(
                env, policy, publisher,
                handout.take(spec.worker, spec.n_episodes, spec.first, alive), spec.settings,
                playing=playing)
        publisher.finish(WorkerEnd(pid=pid, episodes=episodes, last_wseq=publisher.next_wseq))
    finally:
        if env is not None:
            env.close()
        publisher.close()
    if failed:
        sys.exit(1)

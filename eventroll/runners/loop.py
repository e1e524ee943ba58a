"""The interaction loop: one env, one policy, episodes by index with their seeds."""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from eventroll.bus import Publisher
from eventroll.custom import emitting, encoding_error
from eventroll.errors import BusError, CodecError
from eventroll.events import (Custom, EpisodeEnd, EpisodeLost, EpisodeStart, StepBatch,
                              WorkerError)
from eventroll.policies import Policy

AfterReset = Callable[[gym.Env, int, Any, dict], None]


@dataclass
class EpisodeSummary:
    episode: int
    env_seed: int | None
    agent_seed: int | None
    length: int
    return_: float
    terminated: bool
    truncated: bool
    aborted: bool
    wall_time: float
    error: str | None = None


class NullSink:
    """Records nothing: the loop without an event bus."""

    def episode_start(self, episode: int, env_seed: int | None, agent_seed: int | None,
                      observation: Any, info: dict) -> None:
        pass

    def step(self, action: Any, observation: Any, reward: float, terminated: bool,
             truncated: bool, info: dict, logits: Any = None) -> None:
        pass

    def custom(self, name: str, episode: int, t: int | None, fields: dict) -> None:
        pass

    def episode_end(self, summary: EpisodeSummary, exc: BaseException | None) -> None:
        pass


def stack(items: Sequence[Any]) -> Any:
    """Columns from a sequence of values: arrays, or nested maps/lists of arrays."""
    first = items[0]
    if isinstance(first, dict):
        return {key: stack([item[key] for item in items]) for key in first}
    if isinstance(first, tuple):
        return [stack([item[i] for item in items]) for i in range(len(first))]
    return np.asarray(items)


class BusSink:
    """Turns the loop's calls into events on a :class:`Publisher`.

    Steps are collected column by column into ``step.batch`` events of at most
    ``batch_steps`` steps; a batch is also closed at episode end. Events are sent
    together, as one message, once ``MESSAGE_STEPS`` steps or ``MESSAGE_BYTES``
    bytes are pending or ``flush_interval`` seconds have passed since the last
    send (every message costs a wake-up of the hub and of every recorder, which
    short episodes would otherwise pay each).

    While ``retrying`` is set, an aborted episode does not end: its
    ``worker.error`` is followed by an ``episode.lost`` (what was sent of the
    attempt is void), and the caller plays the episode again.
    """

    # a message waits for 4,096 steps, 256 KiB or 50 ms (flush_interval), whichever comes
    # first: at 100,000 CartPole steps/s a worker, 41 ms; packed, its episodes cost the
    # recorders little more than the message itself, whose wake-ups fewer messages save
    MESSAGE_STEPS = 4096
    MESSAGE_BYTES = 1 << 18

    def __init__(self, publisher: Publisher, *, pid: int, batch_steps: int = 64,
                 flush_interval: float = 0.05) -> None:
        self._publisher = publisher
        self._pid = pid
        self._batch_steps = batch_steps
        self._flush_interval = flush_interval
        self._episode = -1
        self._t = 0
        # (action, observation, reward, terminated, truncated, info, logits)
        self._steps: list[tuple] = []
        self.retrying = False

    def episode_start(self, episode: int, env_seed: int | None, agent_seed: int | None,
                      observation: Any, info: dict) -> None:
        self._episode = episode
        self._t = 0
        self._publisher.add(EpisodeStart(episode=episode, env_seed=env_seed, agent_seed=agent_seed,
                                         observation=observation, info=info))

    def step(self, action: Any, observation: Any, reward: float, terminated: bool,
             truncated: bool, info: dict, logits: Any = None) -> None:
        steps = self._steps
        steps.append((action, observation, reward, terminated, truncated, info, logits))
        if len(steps) >= self._batch_steps:
            self._close_batch()
            self._send_if_due()
        elif time.monotonic() - self._publisher.last_flush >= self._flush_interval:
            self._close_batch()
            self._publisher.flush()

    def _send_if_due(self) -> None:
        publisher = self._publisher
        if (publisher.pending_steps >= self.MESSAGE_STEPS
                or publisher.pending_bytes >= self.MESSAGE_BYTES
                or time.monotonic() - publisher.last_flush >= self._flush_interval):
            publisher.flush()

    def custom(self, name: str, episode: int, t: int | None, fields: dict) -> None:
        """Send a custom event at once: it precedes the ``step.batch`` holding step ``t``
        (and, from a reset, the ``episode.start``); readers key it on (episode, t)."""
        try:
            self._publisher.add(Custom(name=name, episode=episode, t=t, fields=fields))
        except CodecError as exc:
            raise encoding_error(name, fields, exc) from None

    def _close_batch(self) -> None:
        if not self._steps:
            return
        actions, observations, rewards, terminated, truncated, infos, logits = zip(*self._steps)
        n = len(rewards)
        try:
            self._publisher.add(StepBatch(
                episode=self._episode, t0=self._t, n=n,
                action=stack(actions), observation=stack(observations),
                reward=np.asarray(rewards, dtype=np.float64),
                terminated=np.asarray(terminated, dtype=bool),
                truncated=np.asarray(truncated, dtype=bool),
                info=list(infos) if any(infos) else None,
                logits=None if logits[0] is None else stack(logits)))
        finally:
            self._t += n
            self._steps = []

    def episode_end(self, summary: EpisodeSummary, exc: BaseException | None) -> None:
        try:
            self._close_batch()
        except CodecError as error:  # step data that cannot be recorded aborts the episode
            if exc is None:
                exc = error
                summary = dataclasses.replace(
                    summary, aborted=True,
                    error=f"episode {summary.episode}: its steps cannot be recorded: {error}")
        if exc is not None:
            self._publisher.add(worker_error(self._pid, summary.episode, exc, summary.error))
        if summary.aborted and self.retrying:
            self._publisher.add(EpisodeLost(
                episode=summary.episode,
                reason=f"{summary.error}; the episode is played again (runner.retries)"))
            self._send_if_due()
            return
        self._publisher.add(EpisodeEnd(
            episode=summary.episode, length=summary.length, return_=summary.return_,
            terminated=summary.terminated, truncated=summary.truncated,
            aborted=summary.aborted, wall_time=summary.wall_time))
        self._send_if_due()


def worker_error(pid: int, episode: int | None, exc: BaseException,
                 message: str | None = None) -> WorkerError:
    """A worker.error event for ``exc``, with its traceback."""
    return WorkerError(pid=pid, episode=episode, error=message or f"{type(exc).__name__}: {exc}",
                       traceback="".join(traceback.format_exception(type(exc), exc,
                                                                    exc.__traceback__)))


class InvalidAction(ValueError):
    """A policy gave an action its env's action space does not hold."""


def action_check(space: gym.Space) -> Callable[[Any], bool]:
    """A test that an action belongs to ``space``: for ``Discrete``, an integer (not a
    bool) in range, checked in a fraction of ``Discrete.contains``'s time (every step
    pays it); other spaces' own ``contains``."""
    if type(space) is gym.spaces.Discrete:
        low, high = int(space.start), int(space.start) + int(space.n)

        def in_range(action: Any) -> bool:
            if isinstance(action, (int, np.integer)):
                return low <= action < high
            return space.contains(action)  # a 0-d integer array, say
        return in_range
    return space.contains


def run_episode(env: gym.Env, policy: Policy, episode: int, *, env_seed: int | None,
                agent_seed: int | None, deterministic: bool = False, render: bool = False,
                after_reset: AfterReset | None = None, record_logits: bool = False,
                sink: NullSink | BusSink | None = None) -> EpisodeSummary:
    """Run one episode. An exception from env or policy aborts the episode (and is
    recorded with its traceback); it does not propagate. Within the episode,
    ``eventroll.custom.record_event`` sends custom events to ``sink``. With
    ``record_logits`` the policy's ``compute_action_with_logits`` gives each action
    and the logits that are recorded with it."""
    sink = sink or NullSink()
    started = time.perf_counter()
    length, total, terminated, truncated = 0, 0.0, False, False
    exc: BaseException | None = None
    stepping = False  # where an error came from: the reset, or step ``length``
    with emitting(sink, episode) as emitter:  # record_event() calls go to this episode
        try:
            if agent_seed is not None:
                policy.seed(agent_seed)
            if hasattr(policy, "reset"):
                policy.reset()
            observation, info = env.reset(seed=env_seed)
            if after_reset is not None:
                after_reset(env, episode, observation, info)
            sink.episode_start(episode, env_seed, agent_seed, observation, info)
            if render:
                env.render()
            compute, step, emit = policy.compute_action, env.step, sink.step
            valid = action_check(env.action_space)
            logits = None
            stepping = True
            while not (terminated or truncated):
                emitter.t = length
                if record_logits:
                    action, logits = policy.compute_action_with_logits(
                        observation, deterministic=deterministic)
                else:
                    action = compute(observation, deterministic=deterministic)
                if not valid(action):
                    raise InvalidAction(f"the policy's action {action!r:.80} is outside the "
                                        f"action space {env.action_space}")
                observation, reward, terminated, truncated, info = step(action)
                emit(action, observation, reward, terminated, truncated, info, logits)
                length += 1
                total += float(reward)
                if render:
                    env.render()
        except BusError:
            raise
        except Exception as error:  # anything from env or policy code aborts this episode only
            exc = error
    where = f"step {length}" if stepping else "reset"
    summary = EpisodeSummary(
        episode=episode, env_seed=env_seed, agent_seed=agent_seed, length=length, return_=total,
        terminated=bool(terminated), truncated=bool(truncated), aborted=exc is not None,
        wall_time=time.perf_counter() - started,
        error=None if exc is None else f"episode {episode}, {where}: {type(exc).__name__}: {exc}")
    sink.episode_end(summary, exc)
    return summary


def run_interaction_loop(env: gym.Env, policy: Policy, n_episodes: int, *,
                         env_seeds: Sequence[int] | None = None,
                         agent_seeds: Sequence[int] | None = None,
                         render: bool = False, deterministic: bool = False,
                         after_reset_callback: AfterReset | None = None,
                         sink: NullSink | BusSink | None = None) -> list[EpisodeSummary]:
    """Run ``n_episodes`` episodes of your own env and policy objects.

    Episode ``i`` resets the env with ``env_seeds[i]`` and seeds the policy with
    ``agent_seeds[i]`` (unseeded where the lists are None).
    ``after_reset_callback(env, episode, observation, info)`` runs after each
    reset. Returns one summary per episode; aborted episodes carry their error.
    """
    for name, seeds in (("env_seeds", env_seeds), ("agent_seeds", agent_seeds)):
        if seeds is not None and len(seeds) < n_episodes:
            raise ValueError(f"{name} holds {len(seeds)} seeds for n_episodes={n_episodes}")
    return [run_episode(env, policy, i,
                        env_seed=None if env_seeds is None else int(env_seeds[i]),
                        agent_seed=None if agent_seeds is None else int(agent_seeds[i]),
                        deterministic=deterministic, render=render,
                        after_reset=after_reset_callback, sink=sink)
            for i in range(n_episodes)]

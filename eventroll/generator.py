"""The rollout generator: rolls a policy out in an env, in this process, for training loops.

Unlike the runners, which play whole seeded episodes and record them on the bus,
:class:`RolloutGenerator` plays a fixed number of steps per :meth:`~RolloutGenerator.rollout`
call and returns them as a :class:`TrajectoryRecord` of numpy arrays. Episodes run
on across calls. The events of its episodes (the kinds the runners send) feed its
own statistics and, given a :class:`~eventroll.bus.Publisher`, go to the bus, so
the same recorders record it.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import concatenate, create_empty_array, iterate

from eventroll.bus import Publisher
from eventroll.custom import Emitter, emitting
from eventroll.errors import ConfigError
from eventroll.events import Event
from eventroll.policies import check_gives_logits
from eventroll.runners.loop import BusSink, EpisodeSummary, stack
from eventroll.stats import Statistics, StatsAggregator
from eventroll.trajectories.record import rows as rows_of


@dataclass
class TrajectoryRecord:
    """The steps of one rollout, column by column.

    Every column has one entry per step; with a vector env each entry is itself a
    batch over the sub-envs, so arrays are ``(n_steps,)`` + ``(n_envs,)`` + item shape.
    Dict and Tuple spaces give maps and lists of such arrays.

    ``observations[t]`` is what the policy saw before step ``t``; ``next_observations[t]``
    what step ``t`` led to (the terminal observation where an episode ended, never the
    reset one). ``valid`` is false only for the reset steps of a vector env in
    ``NEXT_STEP`` autoreset mode, where the sub-env ignored the action and reset: such
    an entry is no transition (its reward is 0, its flags false). ``episodes`` holds
    the index of the episode each entry belongs to (-1 where not valid), as sent on
    the bus. ``infos`` holds the env's info dict of each step as it came (batched
    gymnasium infos for a vector env).

    ``step_stats[t]`` holds the step-level values of the custom statistics recorded in
    step ``t`` (a map of stat name to value); ``episode_stats[t]`` the episode's values,
    ``episode_return``, ``episode_length`` and the custom stats, where step ``t`` ended
    an episode, else None. With a vector env both hold a list per step, one entry per
    sub-env (None where not valid).
    """

    trajectory_id: Any
    observations: Any
    actions: Any
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    dones: np.ndarray
    valid: np.ndarray
    episodes: np.ndarray
    infos: list[dict]
    next_observations: Any = None
    logits: Any = None
    step_stats: list | None = None
    episode_stats: list | None = None

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """``()`` for a single env, ``(n_envs,)`` for a vector env."""
        return self.rewards.shape[1:]


@dataclass
class _Step:
    """One env step as the generator saw it, before stacking."""

    observation: Any
    action: Any
    reward: Any
    terminated: Any
    truncated: Any
    info: dict
    next_observation: Any
    logits: Any
    valid: Any
    episodes: Any
    step_stats: Any
    episode_stats: Any


@dataclass
class _Episode:
    """An episode in progress on one env or sub-env."""

    index: int
    started: float
    length: int = 0
    return_: float = 0.0


class _EventFeed:
    """Where the generator's :class:`BusSink` objects send their events: its stats
    aggregator and, if given, the publisher (for which it stands in)."""

    def __init__(self, aggregator: StatsAggregator, publisher: Publisher | None) -> None:
        self._aggregator = aggregator
        self._publisher = publisher
        self._last_flush = time.monotonic()

    @property
    def last_flush(self) -> float:
        return self._last_flush if self._publisher is None else self._publisher.last_flush

    def add(self, event: Event) -> None:
        if self._publisher is not None:
            self._publisher.add(event)
        self._aggregator.handle(event)

    @property
    def pending_steps(self) -> int:
        return 0 if self._publisher is None else self._publisher.pending_steps

    @property
    def pending_bytes(self) -> int:
        return 0 if self._publisher is None else self._publisher.pending_bytes

    def flush(self) -> None:
        if self._publisher is not None:
            self._publisher.flush()
        self._last_flush = time.monotonic()


class RolloutGenerator:
    """Rolls a policy out in an env or a Gymnasium vector env and records the steps.

    The env is reset on the first :meth:`rollout` only; later rollouts continue the
    episodes where the last one left off, and a single env is reset as soon as an
    episode ends. Assigning :attr:`last_observation` before the first rollout skips
    the initial reset (the next rollout then starts its episodes from that
    observation); assigning None makes the next rollout reset the env.

    ``record_*`` ask for the optional columns of :class:`TrajectoryRecord`.
    ``terminate_on_done`` ends a rollout after the step in which an episode ended;
    with a vector env, after the step in which any sub-env's episode ended (Maze
    ignores the option for vector envs). ``deterministic`` is passed to the policy.

    Vector envs follow their ``metadata["autoreset_mode"]``:

    * ``NEXT_STEP`` (Gymnasium's default): the step after a sub-env's episode ended
      resets that sub-env and ignores its action; the record keeps the row (the
      other sub-envs made real steps) and marks the entry ``valid=False``.
    * ``SAME_STEP``: the sub-env resets within the step that ended its episode; the
      record's next observation is the terminal one, from ``info["final_obs"]``.
    * ``DISABLED``: the generator resets the sub-envs whose episode ended itself,
      with ``reset(options={"reset_mask": done})``.

    Statistics: the events of the generator's episodes feed a
    :class:`~eventroll.stats.StatsAggregator` with the custom statistics
    ``custom_stats`` (:class:`~eventroll.stats.StatSpec` objects or mappings); read
    them with :meth:`epoch_stats` and :meth:`get_stats_value`. The epoch is the
    generator's life so far. Custom events (:func:`eventroll.custom.record_event`)
    from env and policy code are taken with a single env only: with a vector env
    they cannot be told apart by sub-env, so none is recorded.

    With a ``publisher`` the generator also sends, per env or sub-env,
    ``episode.start`` (with the reset observation and info), ``step.batch``,
    ``custom`` and ``episode.end`` events through one
    :class:`~eventroll.runners.loop.BusSink` per sub-env; episode indices follow the
    order in which episodes start, env and agent seeds are None; logits are sent
    when recorded. The owner of the publisher sends ``worker.start`` and ``worker.end``. An
    episode still running when generation stops is never ended, on the bus or in
    the statistics, and the steps of its last, unfilled batch are not sent.

    The generator neither seeds nor resets the policy, and the policy must not modify
    the observation it is given. An exception from env or policy code propagates
    out of :meth:`rollout`, and the steps of that rollout are lost.
    """

    def __init__(self, env: gym.Env | VectorEnv, record_logits: bool = False,
                 record_step_stats: bool = False, record_episode_stats: bool = False,
                 record_next_observations: bool = False, terminate_on_done: bool = False, *,
                 deterministic: bool = False, publisher: Publisher | None = None,
                 custom_stats: Any = ()) -> None:
        self.env = env
        self.record_logits = record_logits
        self.record_step_stats = record_step_stats
        self.record_episode_stats = record_episode_stats
        self.record_next_observations = record_next_observations
        self.terminate_on_done = terminate_on_done
        self.deterministic = deterministic
        self.publisher = publisher
        self.is_vectorized = isinstance(env, VectorEnv)
        self.n_envs = env.num_envs if self.is_vectorized else 1
        self.autoreset_mode = autoreset_mode(env) if self.is_vectorized else None
        # the env may reuse its buffers; a vector env built with copy=True (gymnasium's
        # default) already hands out copies, so ours would be a second one
        self._copy = (lambda value: value) if getattr(env, "copy", False) is True \
            else copy.deepcopy
        self.rollout_counter = 0
        self._stats = StatsAggregator(custom_stats)
        feed: Any = _EventFeed(self._stats, publisher)  # a Publisher, as far as BusSink goes
        self._sinks = [BusSink(feed, pid=os.getpid()) for _ in range(self.n_envs)]
        self._observation: Any = None
        self._restart = False  # start episodes from an assigned observation, without reset
        self._resetting = np.zeros(self.n_envs, dtype=bool)  # NEXT_STEP: reset in the next step
        self._episodes: list[_Episode | None] = [None] * self.n_envs
        self._next_episode = 0

    @property
    def last_observation(self) -> Any:
        """The observation the next step starts from (None before the first rollout)."""
        return self._observation

    @last_observation.setter
    def last_observation(self, observation: Any) -> None:
        self._observation = observation
        self._restart = observation is not None

    def rollout(self, policy: Any, n_steps: int | None,
                trajectory_id: Any = None) -> TrajectoryRecord:
        """Play ``n_steps`` env steps (or, with ``n_steps=None``, until an episode
        ends) and return them. ``trajectory_id`` defaults to the rollout's number.

        ``policy.compute_action(observation, *, deterministic)`` (or, with
        ``record_logits``, ``compute_action_with_logits``, returning the action and the
        logits) gets the env's observation: the batched one of a vector env, to which
        it returns a batched action.
        """
        self._check(policy, n_steps)
        if trajectory_id is None:
            trajectory_id = self.rollout_counter
        self.rollout_counter += 1
        # record_event() calls from env and policy code go to the episode of a single env
        context = nullcontext() if self.is_vectorized else emitting(self._sinks[0], -1)
        with context as emitter:
            if self._observation is None:
                self._reset(emitter)
            elif self._restart:
                self._restart = False
                self._begin_all(self._observation, {})
            steps: list[_Step] = []
            while True:
                steps.append(self._step_vector(policy) if emitter is None
                             else self._step_single(policy, emitter))
                if n_steps is not None and len(steps) >= n_steps:
                    break
                if self.terminate_on_done and np.any(np.logical_or(steps[-1].terminated,
                                                                   steps[-1].truncated)):
                    break
        if self.publisher is not None:
            self.publisher.flush()
        return self._record(steps, trajectory_id)

    # -- statistics ---------------------------------------------------------------------
    def epoch_stats(self) -> dict[str, Any]:
        """The statistics of the episodes ended so far, as plain data (the layout of
        ``stats.json``, ``schemas/stats.md``)."""
        return self._stats.result()

    def get_stats_value(self, event: str, level: str = "epoch", name: str | None = None, *,
                        group: str | int | None = None, episode: int | None = None) -> Any:
        """One statistic, as :meth:`eventroll.stats.Statistics.get_stats_value` reads it:
        ``get_stats_value("episode_return", "epoch", "mean")``."""
        return Statistics(self._stats.result()).get_stats_value(
            event, level, name, group=group, episode=episode)

    # -- checks -------------------------------------------------------------------------
    def _check(self, policy: Any, n_steps: int | None) -> None:
        if n_steps is None:
            if not self.terminate_on_done:
                raise ConfigError("rollout(n_steps=None) runs until an episode ends and needs "
                                  "RolloutGenerator(..., terminate_on_done=True); "
                                  "or pass a number of steps")
        elif isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise ConfigError("rollout n_steps must be a positive integer or None, "
                              f"got {n_steps!r}")
        if self.record_logits:
            check_gives_logits(policy, "record_logits=True", "record_logits=False")

    # -- one step -----------------------------------------------------------------------
    def _act(self, policy: Any, observation: Any) -> tuple[Any, Any]:
        if self.record_logits:
            return policy.compute_action_with_logits(observation, deterministic=self.deterministic)
        return policy.compute_action(observation, deterministic=self.deterministic), None

    def _step_single(self, policy: Any, emitter: Emitter) -> _Step:
        observation = self._observation
        episode = self._episodes[0]
        emitter.episode, emitter.t = episode.index, episode.length
        action, logits = self._act(policy, observation)
        next_observation, reward, terminated, truncated, info = self.env.step(action)
        step_stats, episode_stats = self._advance(0, action, next_observation, reward,
                                                  terminated, truncated, info, logits)
        if terminated or truncated:
            self._reset(emitter)
        else:
            self._observation = next_observation
        return _Step(observation, action, reward, terminated, truncated, info,
                     next_observation, logits, True, episode.index, step_stats, episode_stats)

    def _step_vector(self, policy: Any) -> _Step:
        env, n_envs = self.env, self.n_envs
        observation = self._observation
        resetting = self._resetting
        valid = ~resetting
        indices = np.array([-1 if resetting[i] else self._episodes[i].index
                            for i in range(n_envs)], dtype=np.int64)
        action, logits = self._act(policy, observation)
        next_observation, reward, terminated, truncated, info = env.step(action)
        next_observation = self._copy(next_observation)
        done = np.logical_or(terminated, truncated)
        same_step = self.autoreset_mode is AutoresetMode.SAME_STEP
        rows = list(iterate(env.observation_space, next_observation))
        actions = list(iterate(env.action_space, action))
        final, final_rows = next_observation, rows
        if same_step and done.any():
            final_rows = self._final_rows(rows, info, done)
            if self.record_next_observations:  # only the record needs them as a batch
                space = env.single_observation_space
                final = concatenate(space, final_rows, create_empty_array(space, n_envs))
        step_stats: list[dict | None] = [None] * n_envs
        episode_stats: list[dict | None] = [None] * n_envs
        for i in range(n_envs):
            sub_info = _sub_info(info, i)
            if resetting[i]:
                self._begin(i, rows[i], sub_info)
                continue
            step_info = sub_info.pop("final_info", {}) if same_step and done[i] else sub_info
            step_stats[i], episode_stats[i] = self._advance(
                i, actions[i], final_rows[i], reward[i], terminated[i], truncated[i], step_info,
                None if logits is None else rows_of(logits, i))
            if same_step and done[i]:
                sub_info.pop("final_obs", None)
                self._begin(i, rows[i], sub_info)
        self._observation = next_observation
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            self._resetting = done & valid
        elif self.autoreset_mode is AutoresetMode.DISABLED and done.any():
            reset_observation, reset_info = env.reset(options={"reset_mask": done.copy()})
            self._observation = self._copy(reset_observation)
            rows = list(iterate(env.observation_space, self._observation))
            for i in np.flatnonzero(done):
                self._begin(i, rows[i], _sub_info(reset_info, i))
        return _Step(observation, action, reward, terminated, truncated, info, final, logits,
                     valid, indices, step_stats, episode_stats)

    def _final_rows(self, rows: list, info: dict, done: np.ndarray) -> list:
        """SAME_STEP: the observation rows with the terminal observations of the sub-envs
        that reset in this step (``info["final_obs"]``) for their reset ones."""
        if "final_obs" not in info:
            raise ConfigError("the vector env ended an episode without info['final_obs']; "
                              "is its metadata['autoreset_mode'] really SAME_STEP?")
        return [info["final_obs"][i] if done[i] else row for i, row in enumerate(rows)]

    # -- episodes -----------------------------------------------------------------------
    def _reset(self, emitter: Emitter | None) -> None:
        if emitter is None:
            observation, info = self.env.reset()
            self._observation = self._copy(observation)
            self._resetting[:] = False
        else:
            emitter.episode, emitter.t = self._next_episode, None  # the reset of the next episode
            self._observation, info = self.env.reset()
        self._begin_all(self._observation, info)

    def _begin_all(self, observation: Any, info: dict) -> None:
        """Start an episode on every env or sub-env (but those about to reset)."""
        if not self.is_vectorized:
            self._begin(0, observation, info)
            return
        rows = list(iterate(self.env.observation_space, observation))
        for i in np.flatnonzero(~self._resetting):
            self._begin(i, rows[i], _sub_info(info, i))

    def _begin(self, slot: int, observation: Any, info: dict) -> None:
        index = self._next_episode
        self._next_episode += 1
        self._episodes[slot] = _Episode(index, time.perf_counter())
        self._sinks[slot].episode_start(index, None, None, observation, info)

    def _advance(self, slot: int, action: Any, observation: Any, reward: Any, terminated: Any,
                 truncated: Any, info: dict, logits: Any = None) -> tuple[dict | None, dict | None]:
        """Record one step of the slot's episode, and end the episode if the step did;
        return the step's and (if it ended) the episode's statistics, where asked."""
        episode = self._episodes[slot]
        t = episode.length
        episode.length += 1
        episode.return_ += float(reward)
        self._sinks[slot].step(action, observation, reward, terminated, truncated, info, logits)
        # a vector env's sub-envs record no custom events (see the class), so nothing to look up
        custom = not self.is_vectorized
        step_stats = None
        if self.record_step_stats:
            step_stats = self._stats.step_values(episode.index, t) if custom else {}
        if not (terminated or truncated):
            return step_stats, None
        self._end(slot, bool(terminated), bool(truncated))
        if not self.record_episode_stats:
            return step_stats, None
        return step_stats, {"episode_return": episode.return_, "episode_length": episode.length,
                            **(self._stats.episode_values(episode.index) if custom else {})}

    def _end(self, slot: int, terminated: bool, truncated: bool) -> None:
        episode = self._episodes[slot]
        self._episodes[slot] = None
        self._sinks[slot].episode_end(EpisodeSummary(
            episode=episode.index, env_seed=None, agent_seed=None, length=episode.length,
            return_=episode.return_, terminated=terminated, truncated=truncated, aborted=False,
            wall_time=time.perf_counter() - episode.started), None)

    # -- the record ---------------------------------------------------------------------
    def _record(self, steps: Sequence[_Step], trajectory_id: Any) -> TrajectoryRecord:
        terminated = np.asarray([s.terminated for s in steps], dtype=bool)
        truncated = np.asarray([s.truncated for s in steps], dtype=bool)
        return TrajectoryRecord(
            trajectory_id=trajectory_id,
            observations=stack([s.observation for s in steps]),
            actions=stack([s.action for s in steps]),
            rewards=np.asarray([s.reward for s in steps], dtype=np.float64),
            terminated=terminated, truncated=truncated, dones=terminated | truncated,
            valid=np.asarray([s.valid for s in steps], dtype=bool),
            episodes=np.asarray([s.episodes for s in steps], dtype=np.int64),
            infos=[s.info for s in steps],
            next_observations=(stack([s.next_observation for s in steps])
                               if self.record_next_observations else None),
            logits=stack([s.logits for s in steps]) if self.record_logits else None,
            step_stats=[s.step_stats for s in steps] if self.record_step_stats else None,
            episode_stats=[s.episode_stats for s in steps] if self.record_episode_stats else None)


def autoreset_mode(env: VectorEnv) -> AutoresetMode:
    """The autoreset mode a vector env declares in its metadata (NEXT_STEP if none)."""
    mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    try:
        return AutoresetMode(mode)
    except ValueError:
        raise ConfigError(f"vector env {env} declares autoreset_mode {mode!r}; expected one of "
                          f"{', '.join(m.value for m in AutoresetMode)}") from None


def _sub_info(info: dict, i: int) -> dict:
    """Sub-env ``i``'s info from a vector env's batched info (``key`` with mask ``_key``)."""
    out = {}
    for key, value in info.items():
        if key.startswith("_") and key[1:] in info:
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        out[key] = _sub_info(value, i) if isinstance(value, dict) else value[i]
    return out

"""Whole recorded episodes as numpy arrays, and their assembly from events.

A :class:`Trajectory` is what the trajectory layouts (flat HDF5, Minari) write
and what their readers return. ``observations`` holds ``length + 1`` rows: the
reset observation, then the observation after each step, so the observation
before step ``t`` is ``observations[t]`` and the one after it
``observations[t + 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eventroll.episodes import concat
from eventroll.events import EpisodeEnd, EpisodeStart, Event, RunStart, StepBatch

STATUSES = ("terminated", "truncated", "aborted", "incomplete")


def rows(column: Any, index: Any) -> Any:
    """Select rows of a column, nested maps/lists of arrays included."""
    if isinstance(column, dict):
        return {key: rows(value, index) for key, value in column.items()}
    if isinstance(column, list):
        return [rows(value, index) for value in column]
    return column[index]


def prepend(first: Any, column: Any) -> Any:
    """``first`` (one row) followed by the rows of ``column``, nested included."""
    if isinstance(first, dict):
        return {key: prepend(first[key], column[key]) for key in first}
    if isinstance(first, (list, tuple)):
        return [prepend(value, column[i]) for i, value in enumerate(first)]
    row = np.asarray(first)
    return np.concatenate([row[None], np.asarray(column)])  # numpy widens (Text)


def one_row(value: Any) -> Any:
    """A single observation as a column of one row."""
    if isinstance(value, dict):
        return {key: one_row(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [one_row(item) for item in value]
    return np.asarray(value)[None]


@dataclass
class Trajectory:
    """One recorded episode.

    ``reset_observation`` is the observation ``reset`` returned (one value);
    ``next_observations`` the observation after each step (a column of
    ``length`` rows); :attr:`observations` joins them. ``status`` is
    ``terminated``, ``truncated``, ``aborted`` (env or policy failed) or
    ``incomplete``. An episode aborted in ``reset`` has no observations (both
    None) and length 0.
    """

    index: int
    worker: int
    env_seed: int | None
    agent_seed: int | None
    status: str
    return_: float
    reset_observation: Any
    next_observations: Any
    actions: Any
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: list[dict] | None = None
    reset_info: dict | None = None
    logits: Any = None

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def observations(self) -> Any:
        """``length + 1`` rows: the reset observation, then the one after each step."""
        if self.reset_observation is None:
            return None
        if self.next_observations is None:
            return one_row(self.reset_observation)
        return prepend(self.reset_observation, self.next_observations)

    @property
    def step_observations(self) -> Any:
        """The observation before each step (``length`` rows)."""
        observations = self.observations
        return None if observations is None else rows(observations, slice(0, -1))

    @property
    def final_observation(self) -> Any:
        """The last observation (after the last step, or the reset one)."""
        observations = self.observations
        return None if observations is None else rows(observations, -1)


@dataclass
class _Open:
    start: EpisodeStart | None
    batches: list[StepBatch]


class TrajectoryCollector:
    """Turns a stream of events (workers interleaved) into whole :class:`Trajectory` s.

    Feed every event to :meth:`handle`; it returns the finished trajectory at
    each ``episode.end``. Only the episodes in flight are held in memory.
    """

    def __init__(self) -> None:
        self.run_start: RunStart | None = None
        self._open: dict[int, _Open] = {}

    def handle(self, event: Event) -> Trajectory | None:
        kind = event.KIND
        if kind == "step.batch":
            episode = self._open.get(event.episode)
            if episode is None:
                raise ValueError(f"step.batch of episode {event.episode} before its episode.start")
            episode.batches.append(event)
        elif kind == "episode.start":
            self._open[event.episode] = _Open(event, [])
        elif kind == "episode.end":
            return self._finish(event, self._open.pop(event.episode, _Open(None, [])))
        elif kind == "run.start":
            self.run_start = event
        return None

    @property
    def in_flight(self) -> list[int]:
        """Episodes started and not yet ended."""
        return sorted(self._open)

    def _seeds(self, index: int) -> tuple[int | None, int | None]:
        start = self.run_start
        if start is None or index >= len(start.env_seeds):
            return None, None
        return start.env_seeds[index], start.agent_seeds[index]

    def _finish(self, end: EpisodeEnd, episode: _Open) -> Trajectory:
        start, batches = episode.start, episode.batches
        if start is not None:
            env_seed, agent_seed, worker = start.env_seed, start.agent_seed, start.worker
        else:
            (env_seed, agent_seed), worker = self._seeds(end.episode), end.worker
        if batches:
            def column(name: str) -> Any:
                return concat([getattr(batch, name) for batch in batches])

            next_observations, actions = column("observation"), column("action")
            rewards = np.asarray(column("reward"), dtype=np.float64)
            terminations = np.asarray(column("terminated"), dtype=bool)
            truncations = np.asarray(column("truncated"), dtype=bool)
            infos = ([info for batch in batches for info in (batch.info or [{}] * batch.n)]
                     if any(batch.info for batch in batches) else None)
            logits = column("logits") if batches[0].logits is not None else None
        else:
            next_observations = actions = infos = logits = None
            rewards = np.zeros(0, np.float64)
            terminations = truncations = np.zeros(0, bool)
        return Trajectory(end.episode, worker, env_seed, agent_seed, end.status,
                          float(end.return_), None if start is None else start.observation,
                          next_observations, actions, rewards, terminations, truncations, infos,
                          None if start is None else start.info, logits)

"""Whole recorded episodes as numpy arrays, and their assembly from events.

A :class:`Trajectory` is what the trajectory layouts (flat HDF5, Minari) write
and what their readers return. ``observations`` holds ``length + 1`` rows: the
reset observation, then the observation after each step, so the observation
before step ``t`` is ``observations[t]`` and the one after it
``observations[t + 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eventroll.episodes import Episode
from eventroll.errors import EventError
from eventroll.events import EpisodeEnd, Event, RunStart, StepBatch, from_record
from eventroll.seeding import episode_seeds


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


class PlainEpisode:
    """An episode whose records were all plain (:func:`eventroll.events.is_plain`), as
    their maps: ``start``, ``batches`` in step order, ``end``; ``length`` steps so far."""

    __slots__ = ("start", "batches", "end", "length")

    def __init__(self, start: dict) -> None:
        self.start, self.batches, self.end, self.length = start, [], None, 0

    def typed(self) -> Episode:
        """The same episode (so far) from its records typed."""
        episode = Episode.started(from_record(self.start, arrays=False))
        for batch in self.batches:
            episode.add(from_record(batch, arrays=False))
        return episode


class TrajectoryCollector:
    """Turns a stream of events (workers interleaved) into whole episodes.

    Feed every event to :meth:`handle`; it returns the finished :class:`Trajectory`
    at each ``episode.end`` (:meth:`ended` returns the :class:`Episode` itself, its
    batches as they came). A packed record's episodes (kind ``episodes``) are whole: they
    close what was open of their indexes, and the caller takes them. Plain records may
    come as their maps (:meth:`plain`). Only the episodes in flight are held in memory.

    A step.batch that does not continue its episode (steps missing, or no episode.start
    before it) raises :class:`EventError` once; the episode is dropped, and its further
    records are ignored until it starts again.
    """

    def __init__(self) -> None:
        self.run_start: RunStart | None = None
        self._open: dict[int, Episode | PlainEpisode] = {}
        self._damaged: set[int] = set()  # episodes dropped: their records did not fit
        # run.start's seeds by episode, read once (for episodes that failed in reset)
        self._run_seeds: tuple[Sequence[int], Sequence[int]] = ((), ())

    def handle(self, event: Event) -> Trajectory | None:
        episode = self.ended(event)
        return None if episode is None else trajectory_of(episode)

    def ended(self, event: Event) -> Episode | None:
        """Take one event; at ``episode.end``, return that episode, whole, ``end`` set."""
        kind = event.KIND
        if kind == "step.batch":
            if event.episode not in self._damaged:
                self._add(event)
        elif kind == "episode.start":
            self._damaged.discard(event.episode)
            self._open[event.episode] = Episode.started(event)
        elif kind == "episode.end":
            if event.episode in self._damaged:
                self._damaged.discard(event.episode)
                return None
            episode = self._open.pop(event.episode, None)
            if episode is None:  # aborted in reset: no observations, no steps
                episode = Episode(event.episode, event.worker, *self._seeds(event.episode),
                                  reset_observation=None, reset_info=None)
            elif type(episode) is PlainEpisode:
                episode = episode.typed()
            episode.end = event
            return episode
        elif kind == "episode.lost":  # what arrived of it is void; it may be played again
            self._open.pop(event.episode, None)
        elif kind == "episodes":  # whole episodes, packed: each starts and ends here
            self._damaged.difference_update(event.episode)
            for index in self._open.keys() & set(event.episode):
                del self._open[index]
        elif kind == "run.start":
            self.run_start = event
            self._run_seeds = (episode_seeds(event.env_seeds), episode_seeds(event.agent_seeds))
        return None

    def _add(self, batch: StepBatch) -> None:
        index = batch.episode
        episode = self._open.get(index)
        missing = ("no episode.start before it" if episode is None else
                   f"steps {episode.length}..{batch.t0 - 1} missing" if batch.t0 != episode.length
                   else None)
        if missing is not None:
            self._open.pop(index, None)
            self._damaged.add(index)
            raise EventError(f"episode {index}: a step.batch from step {batch.t0} does not "
                             f"continue it ({missing})")
        if type(episode) is PlainEpisode:  # from here on, its records are typed
            episode = self._open[index] = episode.typed()
        episode.add(batch)

    def plain(self, record: dict) -> Episode | PlainEpisode | None:
        """Take a plain record (:func:`eventroll.events.is_plain`) as :meth:`ended` takes
        its event; an episode all of whose records came plain ends as a
        :class:`PlainEpisode`. A record that does not continue its episode as a plain one
        (steps missing, an episode that has typed records) is typed and taken so."""
        kind, index = record["kind"], record["episode"]
        if kind == "episode.start":
            self._damaged.discard(index)
            self._open[index] = PlainEpisode(record)
            return None
        episode = self._open.get(index)
        if type(episode) is PlainEpisode:
            if kind == "episode.end":
                del self._open[index]
                episode.end = record
                return episode
            if record["t0"] == episode.length:
                episode.batches.append(record)
                episode.length += record["n"]
                return None
        return self.ended(from_record(record, arrays=False))

    @property
    def state(self) -> list[list]:
        """The episodes open, as ``[index, steps so far]``, and those being left out (their
        records ignored until they start again), as plain data."""
        return [[[index, self._open[index].length] for index in sorted(self._open)],
                sorted(self._damaged)]

    @property
    def in_flight(self) -> list[int]:
        """Episodes started and not yet ended."""
        return sorted(self._open)

    def _seeds(self, index: int) -> tuple[int | None, int | None]:
        env_seeds, agent_seeds = self._run_seeds
        if not 0 <= index < min(len(env_seeds), len(agent_seeds)):
            return None, None
        return int(env_seeds[index]), int(agent_seeds[index])


def trajectory_of(episode: Episode) -> Trajectory:
    """An ended episode (``end`` set) as a :class:`Trajectory`, its columns joined."""
    end, batches, column = episode.end, episode.batches, episode.column
    next_observations = actions = infos = logits = None
    rewards = np.zeros(0, np.float64)
    terminations = truncations = np.zeros(0, bool)
    if batches:
        next_observations, actions = column("observation"), column("action")
        rewards = np.asarray(column("reward"), dtype=np.float64)
        terminations = np.asarray(column("terminated"), dtype=bool)
        truncations = np.asarray(column("truncated"), dtype=bool)
        if any(batch.info for batch in batches):
            infos = [info for batch in batches for info in (batch.info or [{}] * batch.n)]
        if batches[0].logits is not None:
            logits = column("logits")
    return Trajectory(end.episode, episode.worker, episode.env_seed, episode.agent_seed,
                      end.status, float(end.return_), episode.reset_observation,
                      next_observations, actions, rewards, terminations, truncations, infos,
                      episode.reset_info, logits)


def episode_of(trajectory: Trajectory) -> Episode:
    """A :class:`Trajectory` as an ended :class:`Episode`: its steps one batch."""
    episode = Episode(trajectory.index, trajectory.worker, trajectory.env_seed,
                      trajectory.agent_seed, trajectory.reset_observation, trajectory.reset_info)
    if trajectory.length:
        episode.add(StepBatch(
            worker=trajectory.worker, episode=trajectory.index, t0=0, n=trajectory.length,
            action=trajectory.actions, observation=trajectory.next_observations,
            reward=trajectory.rewards, terminated=trajectory.terminations,
            truncated=trajectory.truncations, info=trajectory.infos, logits=trajectory.logits))
    status = trajectory.status
    episode.end = EpisodeEnd(
        worker=trajectory.worker, episode=trajectory.index, length=trajectory.length,
        return_=trajectory.return_, terminated=status == "terminated",
        truncated=status == "truncated", aborted=status == "aborted", wall_time=0.0)
    return episode

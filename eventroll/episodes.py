"""Whole episodes assembled from a stream of events (in any interleaving of workers)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eventroll.events import EpisodeEnd, EpisodeLost, EpisodeStart, Event, StepBatch
from eventroll.stream import IndexSet


def is_text_column(value: Any) -> bool:
    """Whether ``value`` is a column of Text values: a list of str (a list of anything
    else is a Tuple space's columns)."""
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def concat(columns: list[Any]) -> Any:
    """Concatenate step columns, nested maps/lists of arrays included (one column: itself)."""
    first = columns[0]
    if len(columns) == 1:
        return first
    if isinstance(first, dict):
        return {key: concat([c[key] for c in columns]) for key in first}
    if is_text_column(first):
        return [item for c in columns for item in c]
    if isinstance(first, list):  # a Tuple's columns
        return [concat([c[i] for c in columns]) for i in range(len(first))]
    return np.concatenate(columns)


@dataclass
class Episode:
    """One episode: the reset observation, then one entry per step."""

    index: int
    worker: int
    env_seed: int | None
    agent_seed: int | None
    reset_observation: Any
    reset_info: dict | None = field(default_factory=dict)
    batches: list[StepBatch] = field(default_factory=list)
    end: EpisodeEnd | None = None
    length: int = 0  # steps so far

    @classmethod
    def started(cls, start: EpisodeStart) -> "Episode":
        return cls(start.episode, start.worker, start.env_seed, start.agent_seed,
                   start.observation, start.info)

    def add(self, batch: StepBatch) -> None:
        """Append the episode's next batch; its steps must follow the ones so far."""
        if batch.t0 != self.length:
            raise ValueError(f"episode {self.index}: steps {self.length}..{batch.t0 - 1} missing")
        self.batches.append(batch)
        self.length += batch.n

    def column(self, name: str) -> Any:
        """A step column (``action``, ``observation``, ``reward``, ...) over the whole episode."""
        return concat([getattr(batch, name) for batch in self.batches])


def assemble(events: Iterable[Event]) -> dict[int, Episode]:
    """Episodes by index. Steps are checked to be contiguous within each episode."""
    return {episode.index: episode for episode in episodes_as_they_end(events)}


def episodes_as_they_end(events: Iterable[Event]) -> Iterator[Episode]:
    """Each started episode as its ``episode.end`` arrives, then, in index order, those that
    never ended (``end`` None). Only the episodes in flight are held, however long the
    stream. Steps are checked to be contiguous within each episode (ValueError)."""
    open_: dict[int, Episode] = {}
    started = IndexSet()  # what did start, until it is lost (then it may start again)
    for event in events:
        if isinstance(event, EpisodeStart):
            if event.episode in started:
                raise ValueError(f"episode {event.episode} started twice")
            started.add(event.episode)
            open_[event.episode] = Episode.started(event)
        elif isinstance(event, StepBatch):
            episode = open_.get(event.episode)
            if episode is None:
                raise ValueError(f"step.batch of episode {event.episode} outside its "
                                 "episode.start and episode.end")
            episode.add(event)
        elif isinstance(event, EpisodeEnd) and event.episode in open_:
            episode = open_.pop(event.episode)
            episode.end = event
            yield episode
        elif isinstance(event, EpisodeLost):  # what arrived of it is void
            open_.pop(event.episode, None)
            started.discard(event.episode)
    for index in sorted(open_):
        yield open_[index]

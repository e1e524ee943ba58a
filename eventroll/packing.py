"""Whole episodes packed into one record (kind ``episodes``), and unpacked again.

Most episodes of a run are short and plain: an episode.start, one step.batch, an
episode.end, nothing else of their source in between. Sent one by one, a CartPole
episode's three records cost the worker more to encode, and each recorder more to
decode and take, than the episode's 22 steps cost to step. A source's
:class:`EpisodePack` holds such episodes as they come and sends those of a message
as one :class:`~eventroll.events.Episodes` record: its per-episode fields as lists,
its steps as the columns of all of them, joined.

The record stands for its episodes' events: ``3 * n`` of them, with the wseqs (and,
once the hub has stamped it, the seqs) that follow its own. A reader that takes events
one by one gets them from :func:`unpacked`, as they would have been decoded had they
been sent one by one; the recorders that build columns (the flat trajectories, the
statistics) take the record whole (:func:`checked`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eventroll import codec
from eventroll.errors import EventError
from eventroll.events import EpisodeEnd, EpisodeStart, Episodes, Event, StepBatch, from_record

KIND = Episodes.KIND
EVENTS_PER_EPISODE = 3  # episode.start, step.batch, episode.end


def is_packed(record: Any) -> bool:
    """Whether a decoded record is a packed one (kind ``episodes``), well formed or not."""
    return type(record) is dict and record.get("kind") == KIND


def event_count(record: Any) -> int:
    """How many events a decoded record stands for: ``3 * n`` for a packed one, 1 for any
    other (a packed one whose ``n`` is not a positive int included: :func:`checked` refuses
    it)."""
    if not is_packed(record):
        return 1
    n = record.get("n")
    return EVENTS_PER_EPISODE * n if type(n) is int and n >= 1 else 1


# -- packing (a source) -------------------------------------------------------------------
class EpisodePack:
    """Holds a source's plain whole episodes (``take``) until its message is sent;
    ``records`` then gives what it holds, encoded: the whole episodes as one record,
    followed by the records of an episode begun and not ended (sent one by one).

    An event that does not continue a plain episode is not taken: the caller sends what
    the pack holds first, then that event, so that the source's events keep their order.
    """

    def __init__(self) -> None:
        self._whole: list[tuple[EpisodeStart, StepBatch, EpisodeEnd]] = []
        self._open: list[Event] = []  # the episode.start, and step.batch, of the one begun
        self.nbytes = 0  # about what the held events will encode to

    def take(self, event: Event) -> bool:
        """Hold ``event`` if it continues a plain episode; whether it was held."""
        held, kind = self._open, event.KIND
        if kind == "episode.start":
            taken = not held and self._plain_start(event)
        elif kind == "step.batch":
            taken = len(held) == 1 and self._plain_batch(event, held[0])
        elif kind == "episode.end":
            taken = len(held) == 2 and _plain_end(event, held[1])
        else:
            return False
        if not taken:
            return False
        if kind == "episode.end":
            self._whole.append((held[0], held[1], event))
            self._open = []
        else:
            held.append(event)
            self.nbytes += sum(column.nbytes for column in _arrays(event)) + 64
        return True

    def _plain_start(self, start: EpisodeStart) -> bool:
        observation = start.observation
        if not (type(start.episode) is int and type(observation) is np.ndarray
                and type(start.info) is dict and not start.info
                and _seed(start.env_seed) and _seed(start.agent_seed)):
            return False
        if self._whole:  # the reset observations become rows of one array
            first = self._whole[0][0].observation
            return observation.dtype == first.dtype and observation.shape == first.shape
        return True

    def _plain_batch(self, batch: StepBatch, start: EpisodeStart) -> bool:
        n, reset = batch.n, start.observation
        if not (batch.episode == start.episode and batch.t0 == 0 and type(n) is int
                and batch.info is None and batch.logits is None):
            return False
        columns = (batch.action, batch.observation, batch.reward, batch.terminated,
                   batch.truncated)
        if not all(type(column) is np.ndarray and column.ndim and len(column) == n
                   for column in columns):
            return False
        action, observation = columns[:2]
        if not (observation.dtype == reset.dtype and observation.shape[1:] == reset.shape
                and batch.reward.dtype == np.float64 and batch.reward.ndim == 1
                and batch.terminated.dtype == bool and batch.terminated.ndim == 1
                and batch.truncated.dtype == bool and batch.truncated.ndim == 1):
            return False
        if self._whole:  # the actions become rows of one array
            first = self._whole[0][1].action
            return action.dtype == first.dtype and action.shape[1:] == first.shape[1:]
        return True

    def records(self) -> list[bytes]:
        """The held events, encoded in their order; the pack is left empty."""
        if not (self._whole or self._open):  # a source whose episodes are not plain: always
            return []
        records = [codec.encode(packed(self._whole).to_record())] if self._whole else []
        records += [codec.encode(event.to_record()) for event in self._open]
        self._whole, self._open, self.nbytes = [], [], 0
        return records


def _seed(seed: Any) -> bool:
    return seed is None or type(seed) is int


def _plain_end(end: EpisodeEnd, batch: StepBatch) -> bool:
    return (end.episode == batch.episode and end.length == batch.n and not end.aborted
            and type(end.return_) is float and type(end.terminated) is bool
            and type(end.truncated) is bool and type(end.wall_time) is float)


def _arrays(event: Event) -> tuple[np.ndarray, ...]:
    if event.KIND == "episode.start":
        return (event.observation,)
    return (event.action, event.observation, event.reward, event.terminated, event.truncated)


def packed(whole: list[tuple[EpisodeStart, StepBatch, EpisodeEnd]]) -> Episodes:
    """One record for whole plain episodes whose events follow one another."""
    starts, batches, ends = zip(*whole)
    first = starts[0]
    return Episodes(
        worker=first.worker, wseq=first.wseq, time=first.time, n=len(whole),
        episode=[start.episode for start in starts],
        env_seed=[start.env_seed for start in starts],
        agent_seed=[start.agent_seed for start in starts],
        length=[batch.n for batch in batches],
        reset_observation=np.stack([start.observation for start in starts]),
        action=np.concatenate([batch.action for batch in batches]),
        observation=np.concatenate([batch.observation for batch in batches]),
        reward=np.concatenate([batch.reward for batch in batches]),
        terminated=np.concatenate([batch.terminated for batch in batches]),
        truncated=np.concatenate([batch.truncated for batch in batches]),
        return_=[end.return_ for end in ends],
        end_terminated=[end.terminated for end in ends],
        end_truncated=[end.truncated for end in ends],
        wall_time=[end.wall_time for end in ends],
        times=[event.time for episode in whole for event in episode])


# -- unpacking (a reader) -----------------------------------------------------------------
_LISTS = tuple((name, frozenset(types)) for name, types in (  # field, its items' types
    ("episode", (int,)), ("env_seed", (int, type(None))), ("agent_seed", (int, type(None))),
    ("length", (int,)), ("return_", (float,)), ("end_terminated", (bool,)),
    ("end_truncated", (bool,)), ("wall_time", (float,))))
_FLOAT = frozenset({float})
_STEP_COLUMNS = ("action", "observation", "reward", "terminated", "truncated")


def checked(record: dict, *, arrays: bool = True) -> Episodes:
    """A packed record (a decoded map) as its typed event, its lists checked to hold an
    item for each episode, of the types an episode.start, step.batch and episode.end
    carry, every length at least 1; with ``arrays`` (its arrays decoded), the columns
    checked to hold a row for each step (each episode, for ``reset_observation``).
    :class:`EventError` says what is wrong."""
    packed_ = from_record(record, arrays=arrays)
    n = packed_.n
    if type(n) is not int or n < 1:
        raise EventError(f"an episodes record has n={n!r:.20}, expected an int >= 1")
    for name, types in _LISTS:
        values = getattr(packed_, name)
        if len(values) != n or not types.issuperset(map(type, values)):
            raise EventError(f"episodes field {name.rstrip('_')!r} does not hold {n} values "
                             f"of type {' or '.join(sorted(t.__name__ for t in types))}")
    if len(packed_.times) != EVENTS_PER_EPISODE * n or not _FLOAT.issuperset(
            map(type, packed_.times)):
        raise EventError(f"episodes field 'times' does not hold {EVENTS_PER_EPISODE * n} floats")
    if min(packed_.length) < 1:
        raise EventError("an episodes record holds an episode of length < 1")
    if arrays:
        steps = sum(packed_.length)
        for name in _STEP_COLUMNS:
            _check_rows(name, getattr(packed_, name), steps, "steps")
        _check_rows("reset_observation", packed_.reset_observation, n, "episodes")
    return packed_


def _check_rows(name: str, column: Any, rows: int, what: str) -> None:
    if not (isinstance(column, np.ndarray) and column.ndim and len(column) == rows):
        raise EventError(f"episodes column {name!r} does not hold a row for each of its "
                         f"{rows} {what}")


def unpacked(record: dict, arrays: bool | str = True) -> list[dict]:
    """The maps of the events a packed record stands for, in order, as a reader decoding
    with ``arrays`` (True, False or :data:`~eventroll.codec.RAW`) would have had them sent
    one by one: numpy values decoded, left out (None) or left undecoded. ``seq`` follows
    on from the record's, if it has one. :class:`EventError` if the record is malformed."""
    if arrays == codec.RAW:  # sliced below: decoded first (with True they came decoded)
        record = codec.decoded(record)
    packed_ = checked(record, arrays=bool(arrays))
    column = _as_read(arrays)
    seq = record.get("seq")
    envelope = _envelopes(packed_, seq if type(seq) is int else None)
    maps, first = [], 0
    for i in range(packed_.n):
        length = packed_.length[i]
        steps = slice(first, first + length)
        first += length
        episode = packed_.episode[i]
        start, batch, end = (next(envelope) for _ in range(EVENTS_PER_EPISODE))
        maps.append({"kind": "episode.start", **start, "episode": episode,
                     "env_seed": packed_.env_seed[i], "agent_seed": packed_.agent_seed[i],
                     "observation": column(_row(packed_.reset_observation, i)), "info": {}})
        maps.append({"kind": "step.batch", **batch, "episode": episode, "t0": 0, "n": length,
                     **{name: column(_row(getattr(packed_, name), steps))
                        for name in _STEP_COLUMNS},
                     "info": None, "logits": None})
        maps.append({"kind": "episode.end", **end, "episode": episode, "length": length,
                     "return": packed_.return_[i], "terminated": packed_.end_terminated[i],
                     "truncated": packed_.end_truncated[i], "aborted": False,
                     "wall_time": packed_.wall_time[i]})
    return maps


def _as_read(arrays: bool | str) -> Any:
    """What a reader decoding with ``arrays`` has in place of an array."""
    if arrays == codec.RAW:
        return codec.raw_array
    if arrays:
        return lambda array: array
    return lambda array: None


def _row(column: Any, index: int | slice) -> Any:
    return None if column is None else column[index]


def _envelopes(packed_: Episodes, seq: int | None):
    """The envelope of each event the record stands for, in order."""
    for i, time in enumerate(packed_.times):
        envelope = {"worker": packed_.worker, "wseq": packed_.wseq + i, "time": time}
        if seq is not None:
            envelope["seq"] = seq + i
        yield envelope


def expanded(records: list[Any], arrays: bool | str = True) -> list[Any]:
    """``records`` with each packed one replaced by the maps of its events
    (:func:`unpacked`)."""
    if not any(map(is_packed, records)):
        return records
    out: list[Any] = []
    for record in records:
        if is_packed(record):
            out += unpacked(record, arrays)
        else:
            out.append(record)
    return out

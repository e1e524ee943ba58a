"""Typed events: pure data, one dataclass per kind.

On the wire and on disk an event is a flat msgpack map: ``kind``, the envelope
(``worker``, ``wseq``, ``time``; ``seq`` once the hub has stamped it) and the
fields of its kind. ``to_record`` and ``from_record`` convert; ``from_record``
checks the map against the kind's fields and raises :class:`EventError`.

``worker`` is the id of the source: 0..N-1 for workers, :data:`DRIVER` for the
process that drives the run, :data:`HUB` for the hub itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from eventroll.codec import RAW, RawArray, decoded
from eventroll.errors import EventError

DRIVER = -1
HUB = -2

ENVELOPE = ("kind", "seq", "worker", "wseq", "time")


@dataclass(kw_only=True, slots=True)
class Event:
    """Fields common to every event (the envelope)."""

    KIND: ClassVar[str] = ""
    worker: int = DRIVER
    wseq: int = -1
    seq: int = -1
    time: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """The event as a flat map, ready to encode. ``seq`` is left to the hub."""
        record: dict[str, Any] = {"kind": self.KIND}
        for key, attr in _KEYS[self.KIND]:
            record[key] = getattr(self, attr)
        if self.seq >= 0:
            record["seq"] = self.seq
        return record


def _record_key(name: str) -> str:
    return name.rstrip("_")


@dataclass(kw_only=True, slots=True)
class RunStart(Event):
    KIND: ClassVar[str] = "run.start"
    run_id: str
    runner: str
    n_episodes: int
    n_workers: int
    env: str
    env_kwargs: dict = field(default_factory=dict)
    observation_space: dict = field(default_factory=dict)
    action_space: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    # seed of each episode: a list, or derived from a base seed, {"seed_sequence": base,
    # "n": n} (earlier logs: a uint32 array); eventroll.seeding.episode_seeds reads either
    env_seeds: list | np.ndarray | dict = field(default_factory=list)
    agent_seeds: list | np.ndarray | dict = field(default_factory=list)


@dataclass(kw_only=True, slots=True)
class RunEnd(Event):
    KIND: ClassVar[str] = "run.end"
    run_id: str
    status: str
    episodes: int
    aborted: int
    steps: int
    wall_time: float
    errors: list = field(default_factory=list)


@dataclass(kw_only=True, slots=True)
class WorkerStart(Event):
    KIND: ClassVar[str] = "worker.start"
    pid: int


@dataclass(kw_only=True, slots=True)
class WorkerEnd(Event):
    KIND: ClassVar[str] = "worker.end"
    pid: int
    episodes: int
    last_wseq: int


@dataclass(kw_only=True, slots=True)
class WorkerError(Event):
    KIND: ClassVar[str] = "worker.error"
    pid: int
    episode: int | None
    error: str
    traceback: str = ""


@dataclass(kw_only=True, slots=True)
class EpisodeStart(Event):
    KIND: ClassVar[str] = "episode.start"
    episode: int
    env_seed: int | None
    agent_seed: int | None
    observation: Any
    info: dict = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class StepBatch(Event):
    """K consecutive steps of one episode, column by column.

    ``observation`` holds the observations *after* each step; the observation
    before step ``t0`` is the previous batch's last one (or the reset one).
    Nested spaces (Dict, Tuple) give nested maps/lists of arrays.
    """

    KIND: ClassVar[str] = "step.batch"
    episode: int
    t0: int
    n: int
    action: Any
    observation: Any
    reward: Any
    terminated: Any
    truncated: Any
    info: list | None = None
    logits: Any = None


STATUSES = ("terminated", "truncated", "aborted", "incomplete")  # of an ended episode
STATUS_CODES = {status: code for code, status in enumerate(STATUSES)}  # as files store them


@dataclass(kw_only=True, slots=True)
class EpisodeEnd(Event):
    KIND: ClassVar[str] = "episode.end"
    episode: int
    length: int
    return_: float
    terminated: bool
    truncated: bool
    aborted: bool
    wall_time: float

    @property
    def status(self) -> str:
        return end_status(self.terminated, self.truncated, self.aborted)


def end_status(terminated: bool, truncated: bool, aborted: bool) -> str:
    """An ended episode's status (one of :data:`STATUSES`) from its episode.end's flags."""
    if aborted:
        return "aborted"
    return "terminated" if terminated else "truncated" if truncated else "incomplete"


@dataclass(kw_only=True, slots=True)
class EpisodeLost(Event):
    """What arrived of an episode is void: its worker died before the episode arrived
    whole. Sent for the dead worker (same ``worker``) by the driver, which then has the
    episode aborted (an ``episode.end``, aborted, follows) or played again from its
    start by another worker."""

    KIND: ClassVar[str] = "episode.lost"
    episode: int
    reason: str


@dataclass(kw_only=True, slots=True)
class Custom(Event):
    """An event that env or policy code emits by name."""

    KIND: ClassVar[str] = "custom"
    name: str
    episode: int | None = None
    t: int | None = None
    fields: dict = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class Episodes(Event):
    """Whole episodes of one source, packed into one record: it stands for the
    episode.start, the step.batch and the episode.end of each of its ``n`` episodes,
    one after the other, each of them a plain one (:func:`is_plain`; not aborted, its
    steps one batch). ``wseq`` (and ``seq``) is that of the first of those ``3 * n``
    events, the others follow on; ``time`` is the first one's, ``times`` each one's.
    Per episode: ``episode``, ``env_seed``, ``agent_seed``, ``length``, ``return``,
    ``end_terminated``, ``end_truncated`` and ``wall_time`` (lists of ``n``) and
    ``reset_observation`` (``n`` rows); the steps of all of them, in order, are the rows
    of ``action``, ``observation`` (after each step), ``reward``, ``terminated`` and
    ``truncated``. :mod:`eventroll.packing` packs and unpacks them."""

    KIND: ClassVar[str] = "episodes"
    n: int
    episode: list
    env_seed: list
    agent_seed: list
    length: list
    reset_observation: np.ndarray
    action: np.ndarray
    observation: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    return_: list
    end_terminated: list
    end_truncated: list
    wall_time: list
    times: list


EVENT_TYPES: dict[str, type[Event]] = {
    cls.KIND: cls
    for cls in (RunStart, RunEnd, WorkerStart, WorkerEnd, WorkerError,
                EpisodeStart, StepBatch, EpisodeEnd, EpisodeLost, Custom, Episodes)
}
KINDS = tuple(EVENT_TYPES)
# the kinds a reader of events one by one gets: a packed record (kind ``episodes``) comes
# as the events it stands for (eventroll.packing)
STREAM_KINDS = tuple(kind for kind in KINDS if kind != Episodes.KIND)


_ABSENT = object()  # a field a record does not have


def is_int(v: Any) -> bool:
    """An int (Python or numpy), not a bool."""
    return type(v) is int or isinstance(v, np.integer)


def fits_int(value: int, bits: int = 64) -> bool:
    """Whether an int fits a signed integer of ``bits`` bits, as the files store it
    (msgpack carries ints up to 2**64)."""
    return -(1 << bits - 1) <= value < 1 << bits - 1


# annotation -> (exact types accepted at once, further types accepted with isinstance);
# bool is a subclass of int but never an int here: exact types exclude it
_TYPES: dict[str, tuple[tuple[type, ...], tuple[type, ...]]] = {
    "int": ((int,), (np.integer,)),
    "float": ((float, int), (np.integer, np.floating)),
    "str": ((str,), ()),
    "bool": ((bool,), (np.bool_,)),
    "dict": ((dict,), ()),
    "list": ((list,), ()),
    "np.ndarray": ((np.ndarray,), ()),
    "None": ((type(None),), ()),
}


def _accepted(type_text: str) -> tuple[frozenset[type] | None, tuple[type, ...]]:
    """The types a field annotated like ``int`` or ``int | None`` accepts: (exact types,
    further types accepted with isinstance); (None, ()) accepts anything."""
    options = [t.strip() for t in type_text.split("|")]
    if "Any" in options:
        return None, ()
    return (frozenset(t for option in options for t in _TYPES[option][0]),
            tuple(t for option in options for t in _TYPES[option][1]))


def _reader(cls: type[Event]) -> Callable[[dict, bool], Event]:
    """The function that checks a decoded map against the fields of ``cls`` and builds the
    event: ``read(record, arrays)``, as :func:`from_record` describes. Its source is
    written here, one check per field, as :mod:`dataclasses` writes ``__init__``: a loop
    over the fields took twice as long, and a recorder reads every event."""
    namespace: dict[str, Any] = {"cls": cls, "_ABSENT": _ABSENT, "RawArray": RawArray,
                                 "_lacks": _lacks, "_wrong": _wrong}
    lines, arguments = ["def read(record, arrays):", "    get = record.get"], []
    for i, f in enumerate(dataclasses.fields(cls)):
        key, value = _record_key(f.name), f"v{i}"
        exact, further = _accepted(str(f.type))
        lines.append(f"    {value} = get({key!r}, _ABSENT)")
        if f.default is not dataclasses.MISSING:
            namespace[f"default{i}"] = f.default
            absent = f"{value} = default{i}"
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"factory{i}"] = f.default_factory
            absent = f"{value} = factory{i}()"
        else:
            absent = f"_lacks(record, {key!r})"
        lines += [f"    if {value} is _ABSENT:", f"        {absent}"]
        if exact is not None:
            namespace[f"exact{i}"], namespace[f"further{i}"] = exact, further
            wrong = f"type({value}) not in exact{i}"
            if further:
                wrong += f" and not isinstance({value}, further{i})"
            if np.ndarray in exact:  # left undecoded
                wrong += f" and not (not arrays and ({value} is None or type({value}) is RawArray))"
            lines += [f"    elif {wrong}:", f"        _wrong(record, {key!r}, {value})"]
        arguments.append(f"{f.name}={value}")
    lines.append(f"    return cls({', '.join(arguments)})")
    exec("\n".join(lines), namespace)  # noqa: S102 (our own source, from the dataclass fields)
    return namespace["read"]


def _lacks(record: dict, key: str) -> None:
    raise EventError(f"{record['kind']} event lacks the field {key!r}")


def _wrong(record: dict, key: str, value: Any) -> None:
    if key == "seq":
        raise EventError(f"{record['kind']} event field 'seq' should be int")
    raise EventError(f"{record['kind']} event field {key!r} has the wrong type "
                     f"({type(value).__name__})")


_READERS = {kind: _reader(cls) for kind, cls in EVENT_TYPES.items()}
# each kind's (record key, attribute) but seq, for to_record
_KEYS = {kind: tuple((_record_key(f.name), f.name) for f in dataclasses.fields(cls)
                     if f.name != "seq") for kind, cls in EVENT_TYPES.items()}


def envelope(record: Any) -> tuple[str, int, int]:
    """The kind, worker and wseq of a decoded map, checked; the rest is not looked at."""
    if not isinstance(record, dict):
        raise EventError(f"an event must be a map, got {type(record).__name__}")
    kind = record.get("kind")
    if not (isinstance(kind, str) and kind in EVENT_TYPES):
        raise EventError(f"unknown event kind {kind!r:.40}; known kinds: {', '.join(KINDS)}")
    worker, wseq = record.get("worker"), record.get("wseq")
    if not (is_int(worker) and is_int(wseq)):
        raise EventError(f"{kind} event lacks an int 'worker' or 'wseq'")
    return kind, int(worker), int(wseq)


def from_record(record: Any, *, arrays: bool = True) -> Event:
    """Check a decoded map against its kind and return the typed event.

    ``arrays=False``: the map was decoded without its numpy values (None in their
    place, or :class:`~eventroll.codec.RawArray` for arrays: ``arrays`` of
    :func:`eventroll.codec.split_records`), so the step columns' lengths are not checked,
    and a field that may be an array (run.start's seeds) may be undecoded.
    """
    return _read(record, _kind_of(record), arrays)


def decoding(array_kinds: frozenset[str] | None) -> bool | str:
    """How to decode records for :func:`from_raw_record` with ``array_kinds``: whole
    (None: every kind's arrays are read), else with arrays left undecoded (``RAW``)."""
    return True if array_kinds is None else RAW


def from_raw_record(record: Any, array_kinds: frozenset[str] | None) -> Event:
    """:func:`from_record` for a map decoded as :func:`decoding` says: events of
    ``array_kinds`` get their arrays decoded, others keep them as
    :class:`~eventroll.codec.RawArray` (None: the map came whole)."""
    kind = _kind_of(record)
    if array_kinds is None:
        return _read(record, kind, True)
    if type(kind) is str and kind in array_kinds:
        return _read(decoded(record), kind, True)
    return _read(record, kind, False)


# -- plain records ------------------------------------------------------------------------
# Nearly every record of a run is an episode.start, a step.batch or an episode.end with
# nothing unusual in it. The recorders that build columns (trajectories, statistics) take
# such a record as the map it was decoded to (``handle_plain``): typing it cost them more
# than using it. ``is_plain`` says whether a map has exactly that form. Each field is
# checked as from_record checks it, and more strictly; any other map is typed, so
# from_record's errors still say what is wrong with it.
def _plain_keys(kind: str) -> tuple[frozenset[str], frozenset[str]]:
    """A kind's record keys, without ``seq`` (as workers send it) and with it (as logged)."""
    keys = frozenset(_record_key(f.name) for f in dataclasses.fields(EVENT_TYPES[kind])) | {"kind"}
    return keys - {"seq"}, keys


_PLAIN_KEYS = {kind: _plain_keys(kind) for kind in ("episode.start", "step.batch", "episode.end")}


def is_plain(record: Any) -> bool:
    """Whether a decoded map (arrays left undecoded, :data:`~eventroll.codec.RAW`) is a
    plain episode.start, step.batch or episode.end: every field present and no other,
    ints, floats and bools of Python's own types, arrays undecoded; a step.batch without
    info and logits, an episode.start whose info is empty."""
    kind = record.get("kind") if type(record) is dict else None
    keys = _PLAIN_KEYS.get(kind) if type(kind) is str else None
    if keys is None or (record.keys() != keys[0] and record.keys() != keys[1]):
        return False
    if not (type(record["worker"]) is int and type(record["wseq"]) is int
            and type(record["time"]) is float and type(record.get("seq", 0)) is int
            and type(record["episode"]) is int):
        return False
    if kind == "step.batch":
        n, t0 = record["n"], record["t0"]
        return (type(n) is int and type(t0) is int and n >= 1 and t0 >= 0
                and record["info"] is None and record["logits"] is None
                and type(record["observation"]) is RawArray and type(record["action"]) is RawArray
                and type(record["reward"]) is RawArray and type(record["terminated"]) is RawArray
                and type(record["truncated"]) is RawArray)
    if kind == "episode.end":
        return (type(record["length"]) is int and type(record["return"]) is float
                and type(record["terminated"]) is bool and type(record["truncated"]) is bool
                and type(record["aborted"]) is bool and type(record["wall_time"]) is float)
    env_seed, agent_seed, info = record["env_seed"], record["agent_seed"], record["info"]
    return ((env_seed is None or type(env_seed) is int)
            and (agent_seed is None or type(agent_seed) is int)
            and type(record["observation"]) is RawArray and type(info) is dict and not info)


def _kind_of(record: Any) -> Any:
    if not isinstance(record, dict):
        raise EventError(f"an event must be a map, got {type(record).__name__}")
    return record.get("kind")


def _read(record: dict, kind: Any, arrays: bool) -> Event:
    read = _READERS.get(kind) if isinstance(kind, str) else None
    if read is None:
        raise EventError(f"unknown event kind {kind!r:.40}; known kinds: {', '.join(KINDS)}")
    event = read(record, arrays)
    if kind == "step.batch":
        _check_step_batch(event, arrays)
    return event


def _column_length(column: Any) -> int | None:
    if isinstance(column, np.ndarray):
        return column.shape[0] if column.ndim else None
    if isinstance(column, list):
        return len(column)
    return None


def _check_step_batch(batch: StepBatch, arrays: bool) -> None:
    """A batch's counts and its columns' lengths (the decoded ones: ``arrays``)."""
    if batch.n < 1 or batch.t0 < 0:
        raise EventError(f"step.batch of episode {batch.episode} has n={batch.n}, t0={batch.t0}")
    if batch.info is not None and len(batch.info) != batch.n:
        raise EventError(f"step.batch column 'info' does not hold n={batch.n} steps")
    if not arrays:
        return
    for name in ("reward", "terminated", "truncated"):
        if _column_length(getattr(batch, name)) != batch.n:
            raise EventError(f"step.batch column {name!r} does not hold n={batch.n} steps")
    if batch.logits is not None and _column_length(batch.logits) not in (batch.n, None):
        raise EventError(f"step.batch column 'logits' does not hold n={batch.n} steps")

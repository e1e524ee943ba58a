"""Validation of an event log (``events.msgpack``): every problem, with its byte offset and seq.

:func:`validate_event_log` reads a log once and checks

* the header, and that every value after it decodes and is a record map that
  matches its kind's JSON Schema (``schemas/*.schema.json``, applied to the
  JSON view of ``schemas/event-log.md`` §3);
* that ``seq`` runs 0, 1, 2, ... and each worker's ``wseq`` too;
* that every episode is whole: ``episode.start``, ``step.batch`` es with
  contiguous ``t0``/``n`` whose steps sum to the length, ``episode.end``;
* that ``run.start`` comes first and ``run.end`` last, that the counts of
  ``run.end`` and ``worker.end`` equal what the log holds.

Undecodable bytes and a truncated tail are problems too: after undecodable
bytes, reading resumes at the next record that decodes, and the report says
how many bytes it skipped.
"""

from __future__ import annotations

import functools
import json
import math
import mmap
import os
import re
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from eventroll import codec, events, packing
from eventroll.errors import CodecError, EventError, EventrollError, InputError
from eventroll.recorders.eventlog import FILE_NAME, FORMAT, READABLE_VERSIONS, event_log_path
from eventroll.stream import IndexSet

CHUNK = 1 << 20
# where a record starts: a map header, then "seq", the key the recorder writes first
# a lookahead, so that a false start whose bytes overlap the true one cannot hide it
RECORD_START = re.compile(rb"(?=(?:[\x80-\x8f]|\xde..|\xdf....)\xa3seq)", re.DOTALL)
CUT_SHORT = "cut short"
_MORE = object()  # what next() gives an unpacker that needs more bytes
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# -- the report ------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """One thing wrong with a log, and where: byte offset and seq of the record it is
    about (None for the log as a whole)."""

    message: str
    offset: int | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = [f"byte {self.offset}"] if self.offset is not None else []
        where += [f"seq {self.seq}"] if self.seq is not None else []
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass
class Report:
    """What validating a log found: its size, header, records read, bytes that could
    not be read (a truncated tail included) and every problem, in the order found."""

    path: str
    size: int = 0
    header: dict[str, Any] = field(default_factory=dict)
    records: int = 0
    events: int = 0  # the events the records stand for (a packed record, several)
    unread_bytes: int = 0
    truncated_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def add(self, message: str, offset: int | None = None, seq: int | None = None) -> None:
        self.problems.append(Problem(message, offset, seq))

    def verdict(self) -> str:
        """One line: valid, or how many problems and unread bytes."""
        read = f"{self.records:,} records, {self.size:,} bytes"
        if self.events != self.records:
            read = f"{self.events:,} events in {read}"
        if self.valid:
            return f"{self.path}: valid ({read})"
        unread = f"; {self.unread_bytes:,} bytes could not be read" if self.unread_bytes else ""
        count = len(self.problems)
        return f"{self.path}: INVALID: {count} problem{'s' * (count != 1)} ({read}{unread})"


# -- the schemas -----------------------------------------------------------------------

def json_view(value: Any) -> Any:
    """A decoded value as the schemas see it: numpy arrays, numpy scalars and bytes become
    ``__ndarray__`` / ``__npscalar__`` / ``__bytes__`` maps (``schemas/event-log.md``)."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": {"dtype": value.dtype.str, "shape": list(value.shape)}}
    if isinstance(value, np.generic):
        return {"__npscalar__": {"dtype": value.dtype.str}}
    if isinstance(value, bytes):
        return {"__bytes__": {"size": len(value)}}
    if isinstance(value, dict):
        return {key: json_view(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_view(item) for item in value]
    return value


@functools.cache
def schemas() -> dict[str, dict[str, Any]]:
    """The schema files installed with eventroll, by name (``header``, ``run.start``, ...)."""
    folder = resources.files("eventroll").joinpath("schemas")
    try:
        found = {entry.name.removesuffix(".schema.json"): json.loads(entry.read_text("utf-8"))
                 for entry in folder.iterdir() if entry.name.endswith(".schema.json")}
    except OSError:
        found = {}
    if not found:
        raise EventrollError("eventroll's JSON schemas (eventroll/schemas/*.schema.json) are "
                             "missing from this installation; reinstall eventroll")
    return found


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas().values())
    return Draft202012Validator(schemas()[name], registry=registry)


# lists as long as the run (a seed per episode): checked here, as jsonschema checking them
# item by item would take seconds per 100,000 episodes
SEED_LISTS = {"run.start": ("env_seeds", "agent_seeds")}


def schema_problems(name: str, value: Any) -> list[str]:
    """Every way ``value`` fails the schema ``name``, one line each."""
    lines = []
    for key in SEED_LISTS.get(name, ()):
        seeds = value.get(key) if isinstance(value, dict) else None
        if isinstance(seeds, np.ndarray):
            continue  # the schema checks its dtype (unsigned) and shape; no item can be bad
        if isinstance(seeds, list) and len(seeds) > 1:
            bad = next((i for i, seed in enumerate(seeds)
                        if not (events.is_int(seed) and seed >= 0)), None)
            if bad is not None:
                lines.append(f"{name} record at {key}/{bad}: {seeds[bad]!r:.40} is not a seed "
                             "(an integer >= 0)")
            value = {**value, key: seeds[:1]}
    for error in _validator(name).iter_errors(json_view(value)):
        at = "/".join(map(str, error.absolute_path))
        lines.append(f"{name} record{f' at {at}' if at else ''}: {error.message:.200}")
    return lines


class KnownValid:
    """Records already found to match their schema, kept as keys that say all a schema
    can see: the JSON view (:func:`json_view`) with every number moved into the range
    that the schemas' numeric bounds and constants (integers) lie strictly inside, keeping
    its side of each; a float that is not whole becomes the middle of the two integers
    it lies between. A record whose key is known
    matches too, and is not checked again: jsonschema takes about a millisecond a
    record, a key some microseconds, and a run's records share few keys. When the
    schemas use a keyword the keys do not cover (``multipleOf``, ``uniqueItems``, a
    bound that is not an integer), every record is checked."""

    LIMIT = 4096  # keys kept: a flood of distinct records must not grow memory

    def __init__(self) -> None:
        self._low, self._high = _number_range()
        self._keys: set[Any] = set()

    def problems(self, kind: str, record: Any) -> list[str]:
        """:func:`schema_problems` of ``record``: none at once if a record with its key
        was found valid before."""
        if self._low is None:
            return schema_problems(kind, record)
        key = (kind, self._key(record))
        if key in self._keys:
            return []
        problems = schema_problems(kind, record)
        if not problems and len(self._keys) < self.LIMIT:
            self._keys.add(key)
        return problems

    def _key(self, value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            return (dict, tuple((key, self._key(item)) for key, item in value.items()))
        if kind is list or kind is tuple:
            return (list, tuple(self._key(item) for item in value))
        if kind is int:
            return min(max(value, self._low), self._high)
        if kind is float:
            if not math.isfinite(value):
                return (float, value)
            if value.is_integer():
                return (float, min(max(value, self._low), self._high))
            # between the same two integers as value: on the same side of every bound
            return (float, min(max(math.floor(value) + 0.5, self._low + 0.5), self._high - 0.5))
        if isinstance(value, np.ndarray):
            return (np.ndarray, value.dtype.str, self._key(list(value.shape)))
        if isinstance(value, np.generic):
            return (np.generic, value.dtype.str)
        if kind is bytes:
            return (bytes, self._key(len(value)))
        if kind is bool or value is None or kind is str:
            return (kind, value)
        return (object, id(value))  # nothing else decodes: never equal to another's key


@functools.cache
def _number_range() -> tuple[int | None, int | None]:
    """(low, high) with every number the schemas compare with strictly inside; (None,
    None) if they constrain numbers in a way :class:`KnownValid` cannot keep."""
    numbers: list[Any] = []

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            if "multipleOf" in node or "uniqueItems" in node:
                return False
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "const"):
                if key in node and not isinstance(node[key], (str, bool, type(None))):
                    numbers.append(node[key])
            numbers.extend(item for item in node.get("enum", ()) if isinstance(item, (int, float))
                           and not isinstance(item, bool))
            return all(walk(item) for item in node.values())
        if isinstance(node, list):
            return all(walk(item) for item in node)
        return True

    if not walk(list(schemas().values())) or not all(type(n) is int for n in numbers):
        return None, None
    return min(numbers, default=0) - 1, max(numbers, default=0) + 1


# -- reading, damage included ----------------------------------------------------------

def read_log(path: str, report: Report) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (byte offset, record map) for each record that decodes. The header goes to
    ``report.header``; undecodable bytes and a truncated tail go to its problems.
    Raises :class:`InputError` if the file is not an eventroll event log."""
    with open(path, "rb") as file:
        report.size = os.fstat(file.fileno()).st_size
        if report.size == 0:
            raise InputError(f"{path} is empty: not an event log; pass an {FILE_NAME} file")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            offset: int | None = _read_header(path, data, report)
            while offset is not None:
                offset = yield from _read_from(data, offset, report)


def _decode_one(data: Any, offset: int) -> tuple[Any, int] | None:
    """The value at ``offset`` and where it ends; None when it is cut short by the end."""
    unpacker = codec.stream_unpacker()
    fed, chunk = offset, 1 << 16
    try:
        while fed < len(data):
            unpacker.feed(data[fed:fed + chunk])
            fed, chunk = fed + chunk, min(chunk * 2, CHUNK)
            value = next(unpacker, _MORE)
            if value is not _MORE:
                return value, offset + unpacker.tell()
    except CodecError:
        raise
    except Exception as exc:  # msgpack's own errors on corrupt bytes
        raise CodecError(f"{type(exc).__name__}: {exc}") from None
    return None


def _read_header(path: str, data: Any, report: Report) -> int:
    """Check the header; return where the records begin."""
    wrong = f"{path} is not an eventroll event log"
    fix = f"pass an {FILE_NAME} file that eventroll wrote"
    if data[:len(HDF5_SIGNATURE)] == HDF5_SIGNATURE:
        raise InputError(f"{wrong} but an HDF5 file; {fix} (eventroll inspect summarises "
                         "trajectory files)")
    try:
        found = _decode_one(data, 0)
    except CodecError as exc:
        raise InputError(f"{wrong} (its first bytes do not decode: {exc}); {fix}") from None
    if found is None:
        raise InputError(f"{wrong}, or it ends before the end of its header; {fix}")
    header, end = found
    if not (isinstance(header, dict) and header.get("format") == FORMAT):
        raise InputError(f"{wrong} (its first value is not an {FORMAT!r} header); {fix}")
    if header.get("version") not in READABLE_VERSIONS:
        raise InputError(f"{path}: event log version {header.get('version')!r}; this eventroll "
                         f"validates versions {READABLE_VERSIONS}; use a matching eventroll")
    report.header = header
    for problem in schema_problems("header", header):
        report.add(problem, offset=0)
    return end


def _read_from(data: Any, start: int, report: Report):
    """Yield the records from ``start`` on; at damage, return where reading resumes
    (None: nothing more can be read)."""
    unpacker = codec.stream_unpacker()
    fed = position = start
    while True:
        try:
            value = next(unpacker, _MORE)
            if value is _MORE and fed < len(data):
                unpacker.feed(data[fed:fed + CHUNK])
                fed = min(fed + CHUNK, len(data))
                _unmap_before(data, fed)
                continue
        except Exception as exc:  # CodecError, or msgpack's own errors on corrupt bytes
            return _skip(data, position, f"undecodable bytes ({type(exc).__name__}: {exc})",
                         report)
        if value is _MORE:
            return None if position == len(data) else _skip(data, position, CUT_SHORT, report)
        if not isinstance(value, dict):
            what = f"a msgpack {type(value).__name__} ({value!r:.40}) where a record map starts"
            return _skip(data, position, what, report)
        yield position, value
        position = start + unpacker.tell()


def _unmap_before(data: Any, offset: int) -> None:
    """Take the mapped pages of the log before ``offset``, already copied out, out of this
    process (the kernel's cache keeps them; read again, they map again): a whole log's
    pages counted in its resident memory, 56 MB for a 1M-step CartPole log."""
    if hasattr(mmap, "MADV_DONTNEED"):
        data.madvise(mmap.MADV_DONTNEED, 0, offset - offset % mmap.PAGESIZE)


def _skip(data: Any, position: int, what: str, report: Report) -> int | None:
    """Report the damage at ``position``; return the next record's offset, if any."""
    resume = _next_record(data, position + 1)
    end = len(data) if resume is None else resume
    report.unread_bytes += end - position
    if what == CUT_SHORT and resume is None:
        report.truncated_bytes = end - position
        report.add(f"truncated tail: the last {end - position} bytes are a record cut short "
                   "(the run crashed, or the log is still being written)", offset=position)
    elif resume is None:
        report.add(f"{what}: bytes {position}..{end} ({end - position} bytes, to the end of "
                   "the file) could not be read", offset=position)
    else:
        report.add(f"{what}: bytes {position}..{end} ({end - position} bytes) could not be "
                   f"read; reading resumed at byte {end}", offset=position)
    return resume


def _next_record(data: Any, start: int) -> int | None:
    """The offset of the next value from ``start`` on that decodes as an event record."""
    for match in RECORD_START.finditer(data, start):
        try:
            found = _decode_one(data, match.start())
        except CodecError:
            continue
        if found is not None and _looks_like_record(found[0]):
            return match.start()
    return None


def _looks_like_record(value: Any) -> bool:
    return (isinstance(value, dict) and value.get("kind") in events.KINDS
            and events.is_int(value.get("seq")))



def _gap(name: str, previous: int | None, value: int) -> str | None:
    """What is wrong when ``value`` follows ``previous`` in a sequence 0, 1, 2, ..."""
    expected = 0 if previous is None else previous + 1
    if value == expected:
        return None
    if value < expected:
        return f"{name} {value} repeats or goes back (after {name} {previous})"
    missing = value - expected
    span = f"{name} {expected}" if missing == 1 else f"{name} {expected}..{value - 1}"
    after = "is the first" if previous is None else f"follows {name} {previous}"
    return f"{name} {value} {after}: {missing} missing ({span})"


# -- the checks ------------------------------------------------------------------------

NO_SEQ = NO_SEED = -1 << 63  # in EndedEpisodes' columns: none


class EndedEpisodes:
    """What the checks and summaries keep of each ended episode, in columns (about 70 bytes
    an episode; with a record object an episode, all the checks kept came to 474), in the
    order the episodes ended: ``index``, ``first_seq`` (of its first record), ``end_seq``,
    ``worker``, ``status`` (:data:`eventroll.events.STATUS_CODES`), ``length``,
    ``return_``, ``env_seed``, ``agent_seed`` (``NO_SEQ``/``NO_SEED``: none) and ``started``
    (1: it had an episode.start). ``episode in ended`` says whether an episode has ended."""

    COLUMNS = {"index": "q", "first_seq": "q", "end_seq": "q", "worker": "q", "status": "B",
               "length": "q", "return_": "d", "env_seed": "q", "agent_seed": "q",
               "started": "B"}

    def __init__(self) -> None:
        self._columns = {name: array(code) for name, code in self.COLUMNS.items()}
        self._ended = IndexSet()
        self.by_worker: Counter[int] = Counter()
        self.aborted = 0

    def __len__(self) -> int:
        return len(self._columns["index"])

    def __contains__(self, index: int) -> bool:
        return index in self._ended

    def add(self, track: "EpisodeTrack", end: events.EpisodeEnd) -> None:
        index = track.index
        self._ended.add(index)
        self.by_worker[end.worker] += 1
        self.aborted += end.aborted
        columns = self._columns
        for name, value in (("index", index), ("first_seq", track.seq), ("end_seq", end.seq),
                            ("worker", end.worker), ("length", end.length),
                            ("env_seed", track.env_seed), ("agent_seed", track.agent_seed)):
            columns[name].append(_int64(value))
        columns["status"].append(events.STATUS_CODES[end.status])
        columns["return_"].append(float(end.return_))
        columns["started"].append(track.started)

    def seqs(self, index: int) -> tuple[int | None, int | None]:
        """The seq of an ended episode's first record and of its episode.end (a search
        through the columns: for the messages about a damaged log only)."""
        rows = np.flatnonzero(self.column("index") == _int64(index))
        if not len(rows):
            return None, None
        return tuple(None if seq == NO_SEQ else seq  # type: ignore[return-value]
                     for seq in (self._columns[name][rows[0]] for name in ("first_seq", "end_seq")))

    def column(self, name: str) -> np.ndarray:
        """A column as an array (a view of it: while one lives, :meth:`add` cannot grow it)."""
        values = self._columns[name]
        return np.frombuffer(values, dtype=values.typecode) if len(values) else \
            np.zeros(0, dtype=values.typecode)


def _int64(value: int | None) -> int:
    """``value`` for an int64 column; None, and what a damaged log holds beyond int64,
    as ``NO_SEQ``."""
    return value if value is not None and NO_SEQ < value < 1 << 63 else NO_SEQ


@dataclass(slots=True)
class EpisodeTrack:
    """What the log holds of one episode so far, until its end."""

    index: int
    worker: int
    offset: int
    seq: int | None
    started: bool = True
    env_seed: int | None = None
    agent_seed: int | None = None
    steps: int = 0
    next_t: int = 0


@dataclass
class _Where:
    offset: int
    seq: int | None


class LogChecker:
    """Checks a log's records one by one (:meth:`check`), then as a whole (:meth:`finish`),
    adding what is wrong to a :class:`Report`. Its state (``run_start``, ``run_end``,
    ``episodes``, ``steps``) also summarises the log. ``schemas=False`` skips the JSON
    Schemas (about a millisecond for a record unlike those checked before:
    :class:`KnownValid`), keeping the checks of the typed events. ``episodes`` holds the
    episodes in flight (started, not ended), ``ended`` the ended ones."""

    def __init__(self, report: Report, *, schemas: bool = True) -> None:
        self.report = report
        self.schemas = schemas
        self._known_valid = KnownValid()
        self.run_start: events.RunStart | None = None
        self.run_end: events.RunEnd | None = None
        self.episodes: dict[int, EpisodeTrack] = {}
        self.ended = EndedEpisodes()
        self.steps = 0
        self._where = _Where(0, None)
        self._run_end_at = _Where(0, None)
        self._last_seq: int | None = None
        self._last_wseq: dict[int, int] = {}
        self._worker_ends: dict[int, tuple[events.WorkerEnd, _Where]] = {}
        self._worker_starts: dict[int, _Where] = {}
        self._after_run_end: list[_Where] = []
        self._handlers = {
            "run.start": self._on_run_start, "run.end": self._on_run_end,
            "worker.start": self._on_worker_start, "worker.end": self._on_worker_end,
            "episode.start": self._on_episode_start, "step.batch": self._on_step_batch,
            "episode.end": self._on_episode_end, "episode.lost": self._on_episode_lost,
        }

    def _add(self, message: str) -> None:
        self.report.add(message, self._where.offset, self._where.seq)

    def check(self, offset: int, record: dict[str, Any]) -> None:
        """Check one record, read at byte ``offset``: a packed one (kind ``episodes``)
        against its schema, then each of the events it stands for."""
        self._where = self._at(offset, record)
        self.report.records += 1
        if record.get("kind") != packing.KIND:
            self._check_event(record)
            return
        problems = self._known_valid.problems(packing.KIND, record) if self.schemas else []
        for problem in problems:
            self._add(problem)
        try:
            unpacked = packing.unpacked(record)
        except EventError as exc:
            if not problems:  # else the schema said it already
                self._add(str(exc))
            self._check_order(record)
            return
        for event in unpacked:
            self._where = self._at(offset, event)
            self._check_event(event)

    @staticmethod
    def _at(offset: int, record: dict[str, Any]) -> "_Where":
        seq = record.get("seq")
        return _Where(offset, int(seq) if events.is_int(seq) else None)

    def _check_event(self, record: dict[str, Any]) -> None:
        """Check the record of one event."""
        self.report.events += 1
        self._check_order(record)
        kind = record.get("kind")
        if kind not in events.KINDS:
            self._add(f"unknown event kind {kind!r:.40}; known kinds: {', '.join(events.KINDS)}")
            return
        problems = self._known_valid.problems(kind, record) if self.schemas else []
        for problem in problems:
            self._add(problem)
        try:  # the typed event, if the record still makes one, keeps the structure checks going
            event = events.from_record(record)
        except EventError as exc:
            if not problems:  # else the schema said it already
                self._add(str(exc))
            return
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event)

    def _check_order(self, record: dict[str, Any]) -> None:
        seq, worker, wseq = record.get("seq"), record.get("worker"), record.get("wseq")
        if self.run_end is not None:
            self._after_run_end.append(self._where)
        if events.is_int(seq):
            if problem := _gap("seq", self._last_seq, int(seq)):
                self._add(problem)
            self._last_seq = int(seq)
        if events.is_int(worker) and events.is_int(wseq):
            worker, wseq = int(worker), int(wseq)
            if problem := _gap("wseq", self._last_wseq.get(worker), wseq):
                self._add(f"worker {worker}: {problem}")
            self._last_wseq[worker] = wseq

    # -- per kind

    def _on_run_start(self, event: events.RunStart) -> None:
        if self.run_start is not None:
            self._add(f"a second run.start (the first is at seq {self.run_start.seq})")
            return
        if self.report.records != 1:
            self._add("run.start is not the first record")
        if event.run_id != self.report.header.get("run_id"):
            self._add(f"run.start has run_id {event.run_id!r}, the header "
                      f"{self.report.header.get('run_id')!r}")
        self.run_start = event

    def _on_run_end(self, event: events.RunEnd) -> None:
        if self.run_end is not None:
            self._add(f"a second run.end (the first is at seq {self.run_end.seq})")
            return
        self.run_end, self._run_end_at = event, self._where

    def _on_worker_start(self, event: events.WorkerStart) -> None:
        if event.worker in self._worker_starts:
            self._add(f"worker {event.worker}: a second worker.start")
            return
        self._worker_starts[event.worker] = self._where

    def _on_worker_end(self, event: events.WorkerEnd) -> None:
        if event.worker in self._worker_ends:
            self._add(f"worker {event.worker}: a second worker.end")
            return
        self._worker_ends[event.worker] = (event, self._where)

    def _on_episode_start(self, event: events.EpisodeStart) -> None:
        index = event.episode
        planned = self.run_start.n_episodes if self.run_start else None
        if planned is not None and index >= planned:
            self._add(f"episode {index} is outside 0..{planned - 1} (run.start has "
                      f"n_episodes={planned})")
        if (known := self.episodes.get(index)) is not None or index in self.ended:
            first = known.seq if known is not None else self.ended.seqs(index)[0]
            self._add(f"episode {index} starts again (its first record is at seq {first})")
            return
        self.episodes[index] = EpisodeTrack(index, event.worker, self._where.offset,
                                            self._where.seq, env_seed=event.env_seed,
                                            agent_seed=event.agent_seed)

    def _on_step_batch(self, event: events.StepBatch) -> None:
        self.steps += event.n
        if event.episode not in self.episodes and event.episode in self.ended:
            self._add(f"step.batch of episode {event.episode} comes after its episode.end")
            return
        episode = self._episode_of(event, "step.batch")
        if event.t0 > episode.next_t:
            self._add(f"episode {episode.index}: step.batch has t0={event.t0}, its batches so "
                      f"far end at t={episode.next_t} (steps {episode.next_t}..{event.t0 - 1} "
                      "missing)")
        elif event.t0 < episode.next_t:
            self._add(f"episode {episode.index}: step.batch has t0={event.t0}, but steps up "
                      f"to t={episode.next_t - 1} are already logged")
        episode.next_t = event.t0 + event.n
        episode.steps += event.n

    def _episode_of(self, event: events.StepBatch | events.EpisodeEnd, kind: str) -> EpisodeTrack:
        """The episode an event belongs to; reports an episode never started (once)."""
        episode = self.episodes.get(event.episode)
        if episode is None:
            reset_failed = isinstance(event, events.EpisodeEnd) and event.aborted and not event.length
            if not reset_failed:
                self._add(f"{kind} of episode {event.episode} has no episode.start before it")
            episode = EpisodeTrack(event.episode, event.worker, self._where.offset,
                                   self._where.seq, started=False)
            self.episodes[event.episode] = episode
        elif episode.worker != event.worker:
            self._add(f"{kind} of episode {event.episode} comes from worker {event.worker}, "
                      f"the episode's first record from worker {episode.worker}")
        return episode

    def _on_episode_end(self, event: events.EpisodeEnd) -> None:
        if event.episode not in self.episodes and event.episode in self.ended:
            self._add(f"episode {event.episode} ends again (its first episode.end is at seq "
                      f"{self.ended.seqs(event.episode)[1]})")
            return
        episode = self._episode_of(event, "episode.end")
        if episode.steps != event.length:
            self._add(f"episode {event.episode}: episode.end says length {event.length}, its "
                      f"step.batch records hold {episode.steps} steps")
        del self.episodes[event.episode]
        self.ended.add(episode, event)

    def _on_episode_lost(self, event: events.EpisodeLost) -> None:
        """What arrived of the episode is void: it is aborted or played again from its start."""
        if event.episode in self.ended:
            self._add(f"episode.lost of episode {event.episode}, which had ended (at seq "
                      f"{self.ended.seqs(event.episode)[1]})")
            return
        self.episodes.pop(event.episode, None)

    # -- the log as a whole

    def finish(self) -> None:
        """Check what can only be checked at the end: missing ends and the counts."""
        self._where = _Where(0, None)
        if self.run_start is None and self.report.records:
            self.report.add("no run.start: the log lacks its run's first record")
        for episode in sorted(self.episodes.values(), key=lambda e: e.index):
            if episode.started:
                self.report.add(f"episode {episode.index} has an episode.start but no "
                                "episode.end", episode.offset, episode.seq)
        self._finish_workers()
        self._finish_run()

    def _finish_workers(self) -> None:
        ended = self.ended.by_worker
        for worker, where in sorted(self._worker_starts.items()):
            if worker not in self._worker_ends:
                self.report.add(f"worker {worker} has a worker.start but no worker.end (it "
                                "stopped early, or the log is cut short)", where.offset, where.seq)
        for worker, (end, where) in sorted(self._worker_ends.items()):
            last = self._last_wseq.get(worker)
            if end.last_wseq != last:
                self.report.add(f"worker {worker}: worker.end says last_wseq={end.last_wseq}, "
                                f"the log's last wseq of worker {worker} is {last}",
                                where.offset, where.seq)
            if end.episodes != ended[worker]:
                self.report.add(f"worker {worker}: worker.end says episodes={end.episodes}, the "
                                f"log holds {ended[worker]} episode.end records of worker {worker}",
                                where.offset, where.seq)

    def _finish_run(self) -> None:
        if self.run_end is None:
            if self.report.records:
                self.report.add("no run.end: the run did not finish (it crashed or is still "
                                "running), or the log is cut short")
            return
        where = self._run_end_at
        if self._after_run_end:
            first = self._after_run_end[0]
            self.report.add(f"{len(self._after_run_end)} record(s) follow run.end, which must be "
                            "the last record", first.offset, first.seq)
        aborted = self.ended.aborted
        held = {"episodes": (len(self.ended) - aborted, "episode.end records not aborted"),
                "aborted": (aborted, "aborted episode.end records"),
                "steps": (self.steps, "steps in its step.batch records")}
        for name, (count, what) in held.items():
            said = getattr(self.run_end, name)
            if said != count:
                self.report.add(f"run.end says {name}={said}, the log holds {count} {what}",
                                where.offset, where.seq)


def validate_event_log(path: str | os.PathLike[str]) -> Report:
    """Check an event log (or a run directory's) in full; the report lists every problem.
    Raises :class:`InputError` if the path is not an eventroll event log."""
    path = event_log_path(path)
    report = Report(path)
    checker = LogChecker(report)
    for offset, record in read_log(path, report):
        checker.check(offset, record)
    checker.finish()
    return report

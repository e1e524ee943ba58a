"""Statistics of a run at three levels, as in Maze: step → episode → epoch (the whole run).

Built-in statistics come from the runner's own events (``step.batch``,
``episode.end``, ``run.start`` / ``run.end``). Custom statistics come from
``custom`` events (:func:`eventroll.custom.record_event`), declared by a
:class:`StatSpec`: the values of one field of one event name are reduced

* per step: all values of one (episode, t), ``t`` None (the reset) counting as
  step -1, with the ``step`` reducer;
* per episode: the step values of one episode, in step order, with ``episode``;
* per epoch: the episode values of the completed (not aborted) episodes, in
  episode index order, with ``epoch``;

separately for each value of the ``group_by`` field, if one is given. The order
is fixed, so the result does not depend on how workers interleave: live
(:class:`eventroll.recorders.stats.StatsRecorder`), offline (:func:`replay_stats`)
and for any number of workers it is the same dict. Its layout, the content of
``stats.json``, is described in ``schemas/stats.md``; :class:`Statistics` reads it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Union

import numpy as np

from eventroll.errors import ConfigError, EventrollError
from eventroll.events import Custom, EpisodeEnd, Event, fits_int
from eventroll.imports import import_object, object_path
from eventroll.stream import IndexSet

FORMAT = "eventroll-stats"
FORMAT_VERSION = 1
FILE_NAME = "stats.json"
LEVELS = ("step", "episode", "epoch")
RESET_T = -1  # the step key of custom events recorded during reset (t None)
HISTOGRAM_BINS = 10
SCALARS = ("episode_count", "step_count", "aborted_episode_count", "lost_attempt_count",
           "steps_per_second", "wall_time")
SUMMARIES = ("episode_return", "episode_length")
SUMMARY_KEYS = ("count", "mean", "std", "min", "max", "median")

Reducer = Callable[[list], Any]
ReducerRef = Union[str, Reducer]
Group = Union[str, None]  # a group_by value as text; None for a stat without group_by


class StatsQueryError(EventrollError, KeyError):
    """A statistic, level, episode, group or name that a stats result does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# -- reducers -------------------------------------------------------------------------

def reduce_sum(values: list) -> Any:
    return np.sum(values, axis=0)


def reduce_mean(values: list) -> Any:
    return np.mean(values, axis=0)


def reduce_len(values: list) -> int:
    return len(values)


def reduce_min(values: list) -> Any:
    return np.min(values, axis=0)


def reduce_max(values: list) -> Any:
    return np.max(values, axis=0)


def reduce_std(values: list) -> Any:
    """The population standard deviation (numpy's default, ddof=0)."""
    return np.std(values, axis=0)


def reduce_median(values: list) -> Any:
    return np.median(values, axis=0)


def reduce_histogram(values: list) -> dict[str, list]:
    """``{"edges": [11 floats], "counts": [10 ints]}``, as ``numpy.histogram`` with 10 bins."""
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=HISTOGRAM_BINS)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


REDUCERS: Mapping[str, Reducer] = MappingProxyType({
    "sum": reduce_sum, "mean": reduce_mean, "len": reduce_len, "min": reduce_min,
    "max": reduce_max, "std": reduce_std, "median": reduce_median,
    "histogram": reduce_histogram,
})


def resolve_reducer(ref: ReducerRef, level: str, stat: str) -> Reducer:
    """A reducer by name (see :data:`REDUCERS`), by import path, or the callable itself."""
    if callable(ref):
        return ref
    if isinstance(ref, str) and ref in REDUCERS:
        return REDUCERS[ref]
    if isinstance(ref, str) and (":" in ref or "." in ref):
        try:
            obj = import_object(ref)
        except ConfigError as exc:
            raise ConfigError(f"stat {stat!r}: {level} reducer: {exc}") from None
        if callable(obj):
            return obj
        raise ConfigError(f"stat {stat!r}: {level} reducer {ref!r} is a {type(obj).__name__}, "
                          "not a function")
    raise ConfigError(f"stat {stat!r}: unknown {level} reducer {ref!r}; choose one of "
                      f"{', '.join(REDUCERS)}, or an import path 'module:function'")


def reducer_name(ref: ReducerRef) -> str:
    """How a reducer is written in a config and in ``stats.json``."""
    if isinstance(ref, str):
        return ref
    path = object_path(ref)
    if "<" in path:  # a lambda or a function defined inside another
        raise ConfigError(f"reducer {path!r} has no import path; define it at module level")
    return path


def plain(value: Any) -> Any:
    """``value`` as JSON data: numpy values become Python ones, tuples lists, map keys
    text, and non-finite floats None (JSON has no NaN). Raises TypeError otherwise."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    raise TypeError(f"a {type(value).__name__} value is not JSON data")


# -- specs ----------------------------------------------------------------------------

@dataclass(frozen=True)
class StatSpec:
    """One custom statistic: a field of a custom event, reduced at each level.

    Reducers are names (``sum, mean, len, min, max, std, median, histogram``),
    import paths (``"module:function"``, called with a list of values) or
    callables. ``name`` defaults to ``"{event}.{field}"``; ``keep_steps`` keeps
    every step value in the result (its size then grows with the run).
    """

    event: str
    field: str
    step: ReducerRef = "sum"
    episode: ReducerRef = "sum"
    epoch: ReducerRef = "mean"
    group_by: str | None = None
    name: str | None = None
    keep_steps: bool = False
    _reducers: tuple = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in ("event", "field"):
            _check_text(f"stat {key}", getattr(self, key))
        if self.name is None:
            object.__setattr__(self, "name", f"{self.event}.{self.field}")
        _check_text("stat name", self.name)
        if self.group_by is not None:
            _check_text(f"stat {self.name!r}: group_by", self.group_by)
        if not isinstance(self.keep_steps, bool):
            raise ConfigError(f"stat {self.name!r}: keep_steps must be true or false, "
                              f"got {self.keep_steps!r}")
        object.__setattr__(self, "_reducers", tuple(
            resolve_reducer(getattr(self, level), level, self.name) for level in LEVELS))

    def reducer(self, level: str) -> Reducer:
        """The resolved reducer of ``level`` (``step``, ``episode`` or ``epoch``)."""
        return self._reducers[LEVELS.index(level)]

    @classmethod
    def from_mapping(cls, mapping: Any, where: str = "stat") -> StatSpec:
        """A spec from a plain mapping (as a config gives it); ConfigError names ``where``."""
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{where}: a stat is a mapping with the keys {', '.join(SPEC_KEYS)}; "
                              f"got {type(mapping).__name__}")
        for key in mapping:
            if key not in SPEC_KEYS:
                raise ConfigError(f"{where}: unknown key {key!r}; valid keys: "
                                  f"{', '.join(SPEC_KEYS)}")
        for key in ("event", "field"):
            if key not in mapping:
                raise ConfigError(f"{where}: the key {key!r} is missing (every stat names the "
                                  "custom event and its field)")
        try:
            return cls(**mapping)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def to_mapping(self) -> dict[str, Any]:
        """The spec as plain data (reducers by name or import path), for configs and
        for recorder processes."""
        values = {key: getattr(self, key) for key in SPEC_KEYS}
        for level in LEVELS:
            values[level] = reducer_name(values[level])
        return values


SPEC_KEYS = tuple(f.name for f in dataclasses.fields(StatSpec) if f.init)


def _check_text(what: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a non-empty string, got {value!r}")


def parse_specs(specs: Any) -> list[StatSpec]:
    """Specs from StatSpec objects or plain mappings: a list, or a mapping of stat name
    to spec (the name is then the key). Names must be unique."""
    if specs is None:
        return []
    if isinstance(specs, Mapping) and isinstance(specs.get("event"), str):
        raise ConfigError("stats: got a single spec; give a list of specs or a mapping of "
                          "name to spec")
    if isinstance(specs, Mapping):
        items = [(f"stats.{name}", _named(name, spec)) for name, spec in specs.items()]
    elif isinstance(specs, Iterable) and not isinstance(specs, (str, bytes)):
        items = [(f"stats[{i}]", spec) for i, spec in enumerate(specs)]
    else:
        raise ConfigError(f"stats must be a list of stat specs or a mapping of name to spec, "
                          f"got {type(specs).__name__}")
    parsed = [spec if isinstance(spec, StatSpec) else StatSpec.from_mapping(spec, where)
              for where, spec in items]
    names = Counter(spec.name for spec in parsed)
    for name, count in names.items():
        if count > 1:
            raise ConfigError(f"{count} stats are named {name!r}; give each a different 'name'")
    return parsed


def _named(name: Any, spec: Any) -> Any:
    if isinstance(spec, StatSpec):
        if spec.name != name:
            raise ConfigError(f"stats.{name}: the spec is named {spec.name!r}; use one name")
        return spec
    if isinstance(spec, Mapping) and spec.get("name", name) != name:
        raise ConfigError(f"stats.{name}: the spec is named {spec['name']!r}; use one name")
    return {**spec, "name": name} if isinstance(spec, Mapping) else spec


# -- aggregation ----------------------------------------------------------------------

_MISSING = object()


class ValueCounts:
    """Values whose order does not matter (the returns, or the lengths, of episodes): each
    distinct value with its count while there are at most ``DISTINCT_LIMIT`` of them (the
    lengths of most envs, and the returns of many: memory then stays the same however long
    the run), else every value in an array, 8 bytes each. :meth:`sorted` gives them all in
    ascending order either way, so what is computed from them is the same whatever order
    they came in."""

    DISTINCT_LIMIT = 4096

    def __init__(self, dtype: type[np.generic]) -> None:
        self._dtype = np.dtype(dtype)
        self._counts: dict[Any, int] | None = {}
        self._values = array(self._dtype.char)  # once there are too many distinct values

    def __len__(self) -> int:
        return len(self._values) if self._counts is None else sum(self._counts.values())

    def add(self, value: Any, count: int = 1) -> None:
        value += 0  # -0.0 counts as 0.0 (they are one key), whichever came first
        counts = self._counts
        if counts is None:
            if count == 1:
                self._values.append(value)
            else:
                self._values.extend(array(self._dtype.char, [value]) * count)
            return
        counts[value] = counts.get(value, 0) + count
        if len(counts) > self.DISTINCT_LIMIT:
            self._spill()

    def add_all(self, values: list) -> None:
        """:meth:`add` each of ``values``."""
        if self._counts is None:
            self._values.extend(values)
            return
        for value, count in Counter(values).items():
            self.add(value, count)

    def _spill(self) -> None:
        """Keep every value in the array from now on."""
        if self._counts is not None:
            for distinct, count in self._counts.items():
                self._values.extend(array(self._dtype.char, [distinct]) * count)
            self._counts = None

    def portable(self) -> dict[str, Any]:
        """The values as plain data, for :meth:`join`."""
        if self._counts is None:
            return {"values": self._values.tobytes()}
        return {"distinct": list(self._counts), "counts": list(self._counts.values())}

    def join(self, portable: dict[str, Any]) -> None:
        """Add the values of another :class:`ValueCounts` (its :meth:`portable`)."""
        if "values" in portable:
            self._spill()
            self._values.frombytes(portable["values"])
            return
        for value, count in zip(portable["distinct"], portable["counts"]):
            self.add(value, count)

    def sorted(self) -> np.ndarray:
        """Every value, in ascending order (NaN last)."""
        if self._counts is None:
            return np.sort(np.frombuffer(self._values, self._dtype))
        distinct = np.fromiter(self._counts, self._dtype, len(self._counts))
        counts = np.fromiter(self._counts.values(), np.int64, len(self._counts))
        order = np.argsort(distinct, kind="stable")
        return np.repeat(distinct[order], counts[order])


class EndedEpisodes:
    """What is kept of the finished episodes: which ended (a bit each), the returns and
    lengths of the completed ones (:class:`ValueCounts`: memory barely grows with a run's
    length), and the custom values (one per stat, and its steps if asked) of those that
    have any."""

    def __init__(self) -> None:
        self._seen = IndexSet()
        self.aborted = 0
        self.returns = ValueCounts(np.float64)
        self.lengths = ValueCounts(np.int64)
        # episode -> (custom values, kept steps, aborted)
        self._custom: dict[int, tuple[dict[str, dict[Group, Any]], dict[str, list[list]], bool]] = {}

    @property
    def completed(self) -> int:
        return len(self.returns)

    def __contains__(self, episode: int) -> bool:
        return episode in self._seen

    def add(self, episode: int, aborted: bool, return_: float, length: int,
            values: dict[str, dict[Group, Any]], steps: dict[str, list[list]]) -> None:
        self._seen.add(episode)
        if aborted:
            self.aborted += 1
        else:
            self.returns.add(return_)
            self.lengths.add(length)
        if values or steps:
            self._custom[episode] = (values, steps, aborted)

    def add_all(self, episodes: list[int], returns: list[float], lengths: list[int]) -> bool:
        """Add completed episodes without custom values, as :meth:`add` adds each; False, and
        nothing added, if one of them had ended (or comes twice) or a length is beyond
        int64."""
        seen = self._seen
        if (any(episode in seen for episode in episodes) or len(set(episodes)) < len(episodes)
                or not all(map(fits_int, lengths))):
            return False
        for episode in episodes:
            seen.add(episode)
        self.returns.add_all(returns)
        self.lengths.add_all(lengths)
        return True

    def portable(self) -> dict[str, Any]:
        """What was kept, as plain data for :meth:`join`; not the custom values."""
        return {"seen": self._seen.portable(), "aborted": self.aborted,
                "returns": self.returns.portable(), "lengths": self.lengths.portable()}

    def join(self, portable: dict[str, Any]) -> bool:
        """Add the episodes of another :class:`EndedEpisodes` (its :meth:`portable`); False,
        and nothing added, if an episode ended in both."""
        seen = IndexSet.from_portable(portable["seen"])
        if not self._seen.isdisjoint(seen):
            return False
        self._seen.update(seen)
        self.aborted += portable["aborted"]
        self.returns.join(portable["returns"])
        self.lengths.join(portable["lengths"])
        return True

    def completed_with_values(self) -> list[int]:
        """The completed (not aborted) episodes that have custom values, in index order."""
        return sorted(index for index, (_, _, aborted) in self._custom.items() if not aborted)

    def values(self, episode: int) -> dict[str, dict[Group, Any]]:
        return self._custom.get(episode, ({}, {}, False))[0]

    def steps(self, episode: int) -> dict[str, list[list]]:
        return self._custom.get(episode, ({}, {}, False))[1]


class StatsAggregator:
    """Reduces a run's events to its statistics (the content of ``stats.json``).

    Feed events in ``seq`` order with :meth:`handle`; workers may interleave, as
    state is kept per episode index and dropped at ``episode.end`` (then only one
    value per stat and episode remains). :meth:`result` gives the statistics so far.

    In-process use (a rollout generator): after each step :meth:`step_values` gives
    that step's values, and after ``episode.end`` :meth:`episode_values` gives the
    episode's.

    Problems (a custom event without the stat's field, a reducer that fails) are
    counted and reported in the result, never raised.
    """

    def __init__(self, specs: Any = ()) -> None:
        self.specs = parse_specs(specs)
        self._by_event: dict[str, list[StatSpec]] = {}
        for spec in self.specs:
            self._by_event.setdefault(spec.event, []).append(spec)
        self._open: dict[int, dict[str, dict[int, dict[Group, list]]]] = {}
        self._ended = EndedEpisodes()
        self._void = IndexSet()  # episodes closed otherwise: lost, or ended beyond int64
        self._steps = 0
        self._lost = 0
        self._run_id: str | None = None
        self._start_time: float | None = None
        self._end_time: float | None = None
        self._problems: Counter[str] = Counter()

    # -- input ------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """Take one event; kinds other than those of steps, episodes, runs and custom
        events are ignored."""
        kind = event.KIND
        if kind == "custom":
            self._on_custom(event)
        elif kind == "step.batch":
            self._steps += event.n
        elif kind == "episode.start":
            self._open.setdefault(event.episode, {})
        elif kind == "episode.end":
            self._on_episode_end(event)
        elif kind == "episodes":  # whole episodes, packed
            self._steps += sum(event.length)
            if self._open.keys().isdisjoint(event.episode) and self._ended.add_all(
                    event.episode, event.return_, event.length):
                return  # none had custom values, none had ended, every length fits
            for episode, return_, length in zip(event.episode, event.return_, event.length):
                self._episode_ended(episode, False, return_, length)
        elif kind == "episode.lost":  # what arrived of it is void; it may be played again
            self._open.pop(event.episode, None)
            self._void.add(event.episode)
            self._lost += 1
        elif kind == "run.start":
            self._run_id, self._start_time = event.run_id, event.time
        elif kind == "run.end":
            self._end_time = event.time

    def handle_plain(self, record: dict) -> None:
        """Take a plain record (:func:`eventroll.events.is_plain`) as :meth:`handle`
        takes its event."""
        kind = record["kind"]
        if kind == "step.batch":
            self._steps += record["n"]
        elif kind == "episode.start":
            self._open.setdefault(record["episode"], {})
        else:
            self._episode_ended(record["episode"], record["aborted"], record["return"],
                                record["length"])

    def _on_custom(self, event: Custom) -> None:
        specs = self._by_event.get(event.name)
        if not specs:
            return
        if event.episode is None or event.episode in self._ended:
            where = "without an episode" if event.episode is None else "after its episode ended"
            self._problems[f"custom event {event.name!r} {where}: left out"] += 1
            return
        steps = self._open.setdefault(event.episode, {})
        t = RESET_T if event.t is None else event.t
        for spec in specs:
            value = event.fields.get(spec.field, _MISSING)
            if value is _MISSING:
                self._problems[f"custom event {event.name!r} lacks the field {spec.field!r} "
                               f"(stat {spec.name!r}): left out"] += 1
                continue
            group = self._group(spec, event)
            if group is not _MISSING:
                by_group = steps.setdefault(spec.name, {}).setdefault(t, {})
                by_group.setdefault(group, []).append(value)

    def _group(self, spec: StatSpec, event: Custom) -> Any:
        if spec.group_by is None:
            return None
        value = event.fields.get(spec.group_by)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            return str(int(value))
        self._problems[f"custom event {event.name!r}: the group_by field {spec.group_by!r} is "
                       f"missing or not a str or int (stat {spec.name!r}): left out"] += 1
        return _MISSING

    def _on_episode_end(self, event: EpisodeEnd) -> None:
        self._episode_ended(event.episode, event.aborted, event.return_, event.length)

    def _episode_ended(self, episode: int, aborted: bool, return_: float, length: int) -> None:
        if episode in self._ended:
            self._problems["an episode.end for an episode that had ended: left out"] += 1
            return
        steps = self._open.pop(episode, {})
        if not fits_int(length):
            self._problems["an episode.end whose length is beyond int64: left out"] += 1
            self._void.add(episode)
            return
        values: dict[str, dict[Group, Any]] = {}
        kept_steps: dict[str, list[list]] = {}
        for spec in self.specs:
            by_t = steps.get(spec.name)
            if by_t:
                self._finish_stat(spec, by_t, values, kept_steps)
        self._ended.add(episode, bool(aborted), float(return_), int(length), values, kept_steps)

    def _finish_stat(self, spec: StatSpec, by_t: dict[int, dict[Group, list]],
                     episode_values: dict[str, dict[Group, Any]],
                     kept_steps: dict[str, list[list]]) -> None:
        per_step = {t: self._reduce(spec, "step", by_t[t], self._problems) for t in sorted(by_t)}
        per_group: dict[Group, list] = {}
        for values in per_step.values():
            for group, value in values.items():
                per_group.setdefault(group, []).append(value)
        episode_values[spec.name] = self._reduce(spec, "episode", per_group, self._problems)
        if spec.keep_steps:
            kept_steps[spec.name] = [[t, _shape(spec, step_values)]
                                     for t, step_values in per_step.items() if step_values]

    def _reduce(self, spec: StatSpec, level: str, groups: dict[Group, list],
                problems: Counter[str]) -> dict[Group, Any]:
        """Each group's values reduced; a group whose reducer fails is left out."""
        reduce = spec.reducer(level)
        reduced = {}
        for group in sorted(groups, key=lambda g: "" if g is None else g):
            try:
                reduced[group] = plain(reduce(groups[group]))
            except Exception as exc:  # a user's reducer may raise anything: report, go on
                problems[f"stat {spec.name!r}: the {level} reducer "
                         f"{reducer_name(getattr(spec, level))!r} failed "
                         f"({type(exc).__name__}: {str(exc)[:120]}): left out"] += 1
        return reduced

    # -- in parts -----------------------------------------------------------------------
    def portable(self) -> dict[str, Any]:
        """What this aggregator took, as plain data for :meth:`join` (a replay in parts:
        each part of a log aggregated in a process of its own). Not with custom
        statistics, whose values an episode may bring in both parts."""
        if self.specs:
            raise ValueError("an aggregator with custom statistics cannot be taken in parts")
        return {"steps": self._steps, "lost": self._lost, "problems": dict(self._problems),
                "open": list(self._open), "void": self._void.portable(),
                "ended": self._ended.portable(),
                "run_start": None if self._start_time is None else [self._run_id,
                                                                    self._start_time],
                "end_time": self._end_time}

    def join(self, later: dict[str, Any]) -> bool:
        """Take what an aggregator took of the records that follow this one's in the log
        (its :meth:`portable`), as if this one had taken them too; False, and nothing
        changed, where that could give another result (an episode that ended in both
        parts: this one would have left the second end out)."""
        if self.specs or not self._ended.join(later["ended"]):
            return False
        void = IndexSet.from_portable(later["void"])
        closed = IndexSet.from_portable(later["ended"]["seen"])
        closed.update(void)
        self._open = {episode: steps for episode, steps in self._open.items()
                      if episode not in closed}
        self._open.update((episode, {}) for episode in later["open"])
        self._void.update(void)
        self._steps += later["steps"]
        self._lost += later["lost"]
        self._problems.update(later["problems"])
        if later["run_start"] is not None:
            self._run_id, self._start_time = later["run_start"]
        if later["end_time"] is not None:
            self._end_time = later["end_time"]
        return True

    # -- output -----------------------------------------------------------------------
    def step_values(self, episode: int, t: int | None) -> dict[str, Any]:
        """The step-level values of step ``t`` (None: the reset) of a running episode,
        by stat name (a ``{group: value}`` map for grouped stats); stats without
        events at that step are left out."""
        key = RESET_T if t is None else t
        steps = self._open.get(episode, {})
        values = {}
        for spec in self.specs:
            groups = steps.get(spec.name, {}).get(key)
            reduced = self._reduce(spec, "step", groups, Counter()) if groups else {}
            if reduced:
                values[spec.name] = _shape(spec, reduced)
        return values

    def episode_values(self, episode: int) -> dict[str, Any]:
        """The episode-level values of a finished episode (aborted ones included), by
        stat name; stats without events in the episode are left out."""
        if episode not in self._ended:
            raise StatsQueryError(f"episode {episode} has not ended (or never started)")
        values = self._ended.values(episode)
        return {spec.name: _shape(spec, values[spec.name])
                for spec in self.specs if values.get(spec.name)}

    def result(self) -> dict[str, Any]:
        """The statistics so far, as plain JSON data (layout: ``schemas/stats.md``)."""
        problems = Counter(self._problems)
        if self._open:
            problems[f"{len(self._open)} episodes started but never ended: left out"] += 1
        ended = self._ended
        wall_time = (self._end_time - self._start_time
                     if self._start_time is not None and self._end_time is not None else None)
        if wall_time is not None and not math.isfinite(wall_time):
            problems["run.start and run.end times give no finite wall time: left out"] += 1
            wall_time = None
        return {
            "format": FORMAT, "version": FORMAT_VERSION, "run_id": self._run_id,
            "episode_count": ended.completed,
            "step_count": self._steps,
            "aborted_episode_count": ended.aborted,
            "lost_attempt_count": self._lost,
            "steps_per_second": self._steps / wall_time if wall_time else None,
            "wall_time": wall_time,
            "episode_return": summarize(ended.returns.sorted()),
            "episode_length": summarize(ended.lengths.sorted()),
            "custom": {spec.name: self._stat_result(spec, ended.completed_with_values(), problems)
                       for spec in self.specs},
            "problems": dict(sorted(problems.items())),
        }

    def _stat_result(self, spec: StatSpec, completed: list[int],
                     problems: Counter[str]) -> dict[str, Any]:
        per_group: dict[Group, list] = {}
        episodes = {}
        for index in completed:
            values = self._ended.values(index).get(spec.name)
            if values:
                episodes[str(index)] = _shape(spec, values)
                for group, value in values.items():
                    per_group.setdefault(group, []).append(value)
        epoch = self._reduce(spec, "epoch", per_group, problems)
        result = {"event": spec.event, "field": spec.field, "group_by": spec.group_by,
                  "reducers": {level: reducer_name(getattr(spec, level)) for level in LEVELS},
                  "epoch": _shape(spec, epoch), "episodes": episodes}
        if spec.keep_steps:
            result["steps"] = {str(index): self._ended.steps(index)[spec.name]
                               for index in completed if spec.name in self._ended.steps(index)}
        return result


def _shape(spec: StatSpec, reduced: dict[Group, Any]) -> Any:
    """A value as the result shows it: the value itself, or ``{group: value}``."""
    return reduced if spec.group_by is not None else reduced.get(None)


def summarize(values: Any) -> dict[str, Any]:
    """count, mean, std (population), min, max and median of a list or array; None
    values when empty."""
    if not len(values):
        return {key: 0 if key == "count" else None for key in SUMMARY_KEYS}
    floats = np.asarray(values, dtype=np.float64)
    low, high = ((values.min(), values.max()) if isinstance(values, np.ndarray)
                 else (min(values), max(values)))
    return plain({"count": len(values), "mean": floats.mean(), "std": floats.std(),
                  "min": low, "max": high, "median": np.median(floats)})


def to_json(result: Mapping[str, Any]) -> str:
    """The text of ``stats.json`` for a result."""
    return json.dumps(result, indent=2, allow_nan=False) + "\n"


def replay_stats(event_log: str | os.PathLike[str], specs: Any = ()) -> dict[str, Any]:
    """The statistics of a recorded run, computed offline from its event log."""
    from eventroll.recorders.eventlog import read_events

    aggregator = StatsAggregator(specs)
    for event in read_events(event_log):
        aggregator.handle(event)
    return aggregator.result()


# -- queries --------------------------------------------------------------------------

class Statistics:
    """Read access to a stats result, as Maze's ``get_stats_value`` gives it.

    ``Statistics.load("run/stats.json").get_stats_value("episode_return", "epoch", "mean")``
    """

    def __init__(self, result: Mapping[str, Any]) -> None:
        if not isinstance(result, Mapping) or result.get("format") != FORMAT:
            raise ValueError(f"not an eventroll stats result (no \"format\": {FORMAT!r})")
        if result.get("version") != FORMAT_VERSION:
            raise ValueError(f"stats format version {result.get('version')!r}; this eventroll "
                             f"reads version {FORMAT_VERSION}")
        self.result = result

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Statistics:
        """Read a ``stats.json`` file."""
        with open(path, encoding="utf-8") as file:
            return cls(json.load(file))

    @property
    def names(self) -> list[str]:
        """Every statistic: the built-in ones, then the custom ones."""
        return [*SCALARS, *SUMMARIES, *self.result["custom"]]

    def get_stats_value(self, event: str, level: str = "epoch", name: str | None = None, *,
                        group: str | int | None = None, episode: int | None = None) -> Any:
        """One value of the statistic ``event`` (a built-in name or a custom stat's name).

        ``level``: ``epoch`` (built-ins have only this), ``episode``, or ``step``
        (custom stats with ``keep_steps``). ``episode`` picks one episode at the
        episode and step levels (else a map of episode index to value);
        ``group`` one group of a grouped stat; ``name`` one key of a value that is a
        map (``mean`` of ``episode_return``, ``counts`` of a histogram). A step-level
        value is a list of ``[t, value]`` pairs.
        Raises :class:`StatsQueryError` (a KeyError) naming what exists.
        """
        if event in SCALARS or event in SUMMARIES:
            _check_level(event, level, ("epoch",))
            if group is not None or episode is not None:
                raise StatsQueryError(f"{event!r} is a run total: it has no groups or episodes")
            return _pick(event, self.result[event], name)
        stat = self.result["custom"].get(event)
        if stat is None:
            raise StatsQueryError(f"no statistic {event!r}; built-in: "
                                  f"{', '.join(SCALARS + SUMMARIES)}; custom: "
                                  f"{', '.join(self.result['custom']) or 'none'}")
        _check_level(event, level, ("epoch", "episode", "step") if "steps" in stat
                     else ("epoch", "episode"))
        if group is not None and stat["group_by"] is None:
            raise StatsQueryError(f"statistic {event!r} has no groups (no group_by)")
        group = None if group is None else str(group)
        if level == "epoch":
            if episode is not None:
                raise StatsQueryError(f"statistic {event!r}: the epoch level has no episodes")
            return _pick(event, _select_group(event, stat["epoch"], group), name)
        table = stat["episodes" if level == "episode" else "steps"]
        if episode is None:
            values = {int(key): _select(event, level, value, group, name, strict=False)
                      for key, value in table.items()}
            return {key: value for key, value in values.items() if value is not _MISSING}
        if str(episode) not in table:
            shown = ", ".join(list(table)[:20]) + (", ..." if len(table) > 20 else "")
            raise StatsQueryError(f"statistic {event!r} has no {level} value for episode "
                                  f"{episode!r}; episodes with values: {shown or 'none'}")
        return _select(event, level, table[str(episode)], group, name, strict=True)


def _check_level(event: str, level: str, levels: tuple[str, ...]) -> None:
    if level not in levels:
        hint = "" if "step" in levels or levels == ("epoch",) else " (step values need keep_steps)"
        raise StatsQueryError(f"statistic {event!r} has no level {level!r}; its levels: "
                              f"{', '.join(levels)}{hint}")


def _select(event: str, level: str, value: Any, group: str | None, name: str | None,
            strict: bool) -> Any:
    """One episode's value (or list of step values), narrowed to a group and a name;
    without ``strict``, entries lacking the group are dropped (``_MISSING`` if all are)."""
    if level == "step":  # steps lacking the group are dropped even for one episode
        steps = [[t, _select(event, "episode", v, group, name, False)] for t, v in value]
        steps = [step for step in steps if step[1] is not _MISSING]
        return steps if steps or strict else _MISSING
    if group is not None and group not in value and not strict:
        return _MISSING
    return _pick(event, _select_group(event, value, group), name)


def _select_group(event: str, value: Any, group: str | None) -> Any:
    if group is None:
        return value
    if group not in value:
        raise StatsQueryError(f"statistic {event!r} has no group {group!r} here; groups: "
                              f"{', '.join(value) or 'none'}")
    return value[group]


def _pick(event: str, value: Any, name: str | None) -> Any:
    if name is None:
        return value
    if not isinstance(value, Mapping):
        raise StatsQueryError(f"statistic {event!r}: its value is not a map, so it has no "
                              f"{name!r}; ask without a name")
    if name not in value:
        raise StatsQueryError(f"statistic {event!r} has no {name!r}; names: {', '.join(value)}")
    return value[name]

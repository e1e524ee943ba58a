"""A replay in parts: the event log cut at records into ranges, each replayed into the flat
trajectory file and the statistics by a process of its own, the parts joined after.

A part takes the episodes that end in its range, so its file holds them in the order
one replay writes them, and the files are appended one to the next. An episode open
where a part begins started before it: the part first reads the records of a window
before its start without writing anything (``prime``), which brings such episodes up to
date; how much, the log's first records tell (:func:`sampled_window`). The statistics of each part are joined
(:meth:`eventroll.stats.StatsAggregator.join`).

The result is what one replay of the whole log gives, or the log is replayed whole
(:func:`replay_in_parts` returns None and leaves nothing behind): when a part's records
cannot be read, when an episode open at a cut started before the window (the states of
the parts at the cut then differ), when an episode ends in two parts, and wherever the
parts are not joined (custom statistics, the Minari layout, no ``os.fork``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventroll import packing
from eventroll.errors import CodecError, EventError
from eventroll.forked import ChildFailed, ForkedCall
from eventroll.recorders.base import RecorderSpec, fed
from eventroll.recorders.eventlog import EventLogReader, read_events, record_starts
from eventroll.recorders.trajectories import join, report
from eventroll.trajectories.flat import append_file

MIN_BYTES = 8 << 20  # a smaller log is replayed whole (about 150,000 CartPole steps)
# the same for a log of packed episodes (eventroll.packing): one process replays its
# 2,500,000 CartPole steps in about 0.6 s, and forking and joining parts takes 0.1 to 0.2
MIN_PACKED_BYTES = 96 << 20
WINDOW_BYTES = 2 << 20  # read before a part's start at least: episodes open there began within it
SAMPLE_BYTES = 2 << 20  # the start of the log read to see how far an episode's records spread
MAX_PARTS = 8
SECONDS_PER_MB = 1.0  # a part's time limit: 60 s and this for each MB of the log (~50x slack)


@dataclass(frozen=True)
class Part:
    """A range of the log, ``start`` (a record's offset; 0: the first record) up to the record
    at ``stop`` (None: the end), replayed into the flat file ``path``; the records from
    ``window`` up to ``start`` prime it."""

    path: str
    start: int
    stop: int | None
    window: int


def replayed(members: Sequence[Any], log: str, start: int = 0,
             stop: int | None = None) -> tuple[int, int]:
    """Feed ``members`` the records of ``log`` from ``start`` up to ``stop``; the events
    and the steps they held (a packed record holds several events)."""
    count = steps = 0
    for event in fed(members, log, start, stop):
        if type(event) is dict:  # a plain record
            count += 1
            steps += event["n"] if event["kind"] == "step.batch" else 0
        elif event.KIND == "step.batch":
            count += 1
            steps += event.n
        elif event.KIND == "episodes":
            count += packing.EVENTS_PER_EPISODE * event.n
            steps += sum(event.length)
        else:
            count += 1
    return count, steps


def default_parts(log: str, *, min_bytes: int = MIN_BYTES,
                  min_packed_bytes: int = MIN_PACKED_BYTES) -> int:
    """As many parts as this process may use cores (at most :data:`MAX_PARTS`); one for a
    log smaller than ``min_bytes`` (``min_packed_bytes`` if most of its first bytes are
    packed episodes), and in a process that runs threads (a thread may hold a lock that a
    forked child would wait for forever)."""
    size = os.path.getsize(log)
    if (size < min_bytes or not hasattr(os, "sched_getaffinity")
            or threading.active_count() > 1
            or size < min_packed_bytes and mostly_packed(log)):
        return 1
    return min(len(os.sched_getaffinity(0)), MAX_PARTS)


def mostly_packed(log: str, sample: int = SAMPLE_BYTES) -> bool:
    """Whether packed episodes make up most of the log's first ``sample`` bytes."""
    found = _sample(log, sample, packed=True)
    if not found:  # damaged, or empty: one replay says what it is
        return False
    packed = sum(end - begin for record, begin, end in found if packing.is_packed(record))
    return 2 * packed > found[-1][2]


def replay_in_parts(log: str, specs: Sequence[RecorderSpec], parts: int,
                    window: int | None = None) -> dict[str, Any] | None:
    """Replay ``log`` into the artifacts of ``specs`` (a flat trajectory file and the
    statistics) in ``parts`` processes, each primed with ``window`` bytes of records (None:
    as :func:`sampled_window` finds); their reports, the records and steps read. None, with
    nothing written, if it is to be replayed whole (see the module's description)."""
    by_name = {spec.name: spec for spec in specs}
    trajectories, stats = by_name.get("trajectories"), by_name.get("stats")
    if (parts < 2 or not hasattr(os, "fork") or set(by_name) != {"trajectories", "stats"}
            or trajectories.kwargs["layout"] != "flat" or stats.kwargs["specs"]):
        return None
    if window is None:
        window = sampled_window(log)
    ranges = None if window is None else _ranges(log, parts, window, trajectories.kwargs["path"])
    if ranges is None:
        return None
    timeout = 60.0 + SECONDS_PER_MB * os.path.getsize(log) / 1e6
    calls = [ForkedCall(functools.partial(_replay_part, log, trajectories, stats, part),
                        f"er-replay-{index}") for index, part in enumerate(ranges)]
    answers: list[dict[str, Any]] = []
    joined = None
    try:
        for call in calls:
            with contextlib.suppress(ChildFailed):
                answers.append(call.answer(timeout))
        if len(answers) == len(ranges):
            joined = _joined(answers, ranges, trajectories, stats)
    finally:  # every child is reaped and every part's file removed, whatever happened
        for call in calls:
            call.stop()
        for part in ranges[1:] if joined is not None else ranges:
            with contextlib.suppress(FileNotFoundError):
                os.remove(part.path)
    return joined


def sampled_window(log: str, sample: int = SAMPLE_BYTES) -> int | None:
    """The bytes of records a part reads before its start, from the log's first ``sample``
    bytes: four times the farthest apart an episode's first and last records
    lay there, at least :data:`WINDOW_BYTES`. None where the parts would not join, which is
    cheaper to know now: an episode that began in the sample's first half has not ended at
    its end (long episodes of large observations), or the sample cannot be read."""
    found = _sample(log, sample, packed=False)
    if found is None:
        return None
    begun: dict[Any, int] = {}
    widest = 0
    try:
        for record, begin, end in found:
            kind, episode = record.get("kind"), record.get("episode")
            if kind == "episode.start":
                begun[episode] = begin
            elif kind == "episode.end" and episode in begun:
                widest = max(widest, end - begun.pop(episode))
    except TypeError:  # an episode index that is no key: damaged, one replay says where
        return None
    read = found[-1][2] if found else 0
    if any(began < read / 2 for began in begun.values()):
        return None
    return max(WINDOW_BYTES, 4 * widest)


def _sample(log: str, sample: int, *, packed: bool) -> list[tuple[dict, int, int]] | None:
    """The records of the log's first ``sample`` bytes (packed ones as they are, or as the
    events they stand for), numpy values left out, each with where the record before it
    ended and where it ends; None if they cannot be read or are not maps."""
    reader = EventLogReader(log, arrays=False, packed=packed)
    records = reader.records()
    found: list[tuple[dict, int, int]] = []
    previous = 0
    try:
        for record in records:
            if type(record) is not dict:
                return None
            found.append((record, previous, reader.position))
            previous = reader.position
            if previous >= sample:
                break
    except (CodecError, EventError):
        return None
    finally:
        records.close()
    return found


def _ranges(log: str, parts: int, window: int, path: str) -> list[Part] | None:
    """The log cut into ``parts`` ranges of about equal size, each cut at a record, and the
    records from ``window`` bytes before each cut; None if it has too few records for that,
    or cannot be stepped through to a cut."""
    size = os.path.getsize(log)
    cuts = [size * index // parts for index in range(1, parts)]
    targets = sorted({offset for cut in cuts for offset in (max(cut - window, 0), cut)})
    try:
        found = dict(zip(targets, record_starts(log, targets)))
    except CodecError:  # damaged before a cut: one replay says where, in its words
        return None
    starts = [0] + [found[cut] for cut in cuts]
    if any(later <= earlier for earlier, later in zip(starts, starts[1:])) or starts[-1] >= size:
        return None
    stops: list[int | None] = [*starts[1:], None]
    return [Part(path if index == 0 else f"{path}.part{index}", start, stop,
                 found[max(cuts[index - 1] - window, 0)] if index else 0)
            for index, (start, stop) in enumerate(zip(starts, stops))]


def _replay_part(log: str, trajectories_spec: RecorderSpec, stats_spec: RecorderSpec,
                 part: Part) -> dict[str, Any]:
    """In a part's process: its range replayed; what :func:`_joined` needs of it."""
    trajectories = trajectories_spec.factory(**{**trajectories_spec.kwargs, "path": part.path})
    stats = stats_spec.factory(**stats_spec.kwargs)
    primed = None
    if part.start:
        head = read_events(log, array_kinds=trajectories.array_kinds)
        trajectories.handle(next(head))  # run.start: the spaces, the file opened
        head.close()
        reader = EventLogReader(log, array_kinds=trajectories.array_kinds,
                                packed=trajectories.takes_packed)
        for item in reader.events(plain=True, start=part.window, stop=part.start):
            trajectories.prime(item)
        primed = trajectories.state
    try:
        count, steps = replayed((trajectories, stats), log, part.start, part.stop)
        state = trajectories.state
    finally:
        closed = trajectories.close_part()
    return {"events": count, "steps": steps, "primed": primed, "state": state,
            "trajectories": closed, "stats": stats.aggregator.portable()}


def _joined(answers: list[dict[str, Any]], ranges: list[Part], trajectories: RecorderSpec,
            stats: RecorderSpec) -> dict[str, Any] | None:
    """The parts' answers joined, their files appended to the first; None if they cannot be
    (a part failed, or one part would have taken what follows otherwise)."""
    if any("error" in answer for answer in answers) or any(
            earlier["state"] != later["primed"] for earlier, later in zip(answers, answers[1:])):
        return None
    recorder = stats.factory(**stats.kwargs)
    if not all(recorder.aggregator.join(answer["stats"]) for answer in answers):
        return None
    for part in ranges[1:]:
        append_file(ranges[0].path, part.path)
    closed = functools.reduce(join, [answer["trajectories"] for answer in answers])
    return {"recorders": {"trajectories": report(trajectories.kwargs["path"], closed),
                          "stats": recorder.close()},
            "events": sum(answer["events"] for answer in answers),
            "steps": sum(answer["steps"] for answer in answers), "parts": len(ranges)}

"""The durable-subscriber process loop that every recorder runs in."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Union

from eventroll import codec, events, packing
from eventroll.bus import Delivery, DurableSubscription
from eventroll.errors import CodecError, EventError, write_error
from eventroll.memory import collect_rarely
from eventroll.stream import SequenceChecker

IDLE_TICK = 0.05


@dataclass(frozen=True)
class RecorderSpec:
    """A durable recorder, built in its recorder process: ``factory(**kwargs)``."""

    name: str
    factory: Any
    kwargs: dict[str, Any]


class Recorder(Protocol):
    """Builds one artifact from typed events; the same object serves live and replay.

    A recorder that reads the numpy values (observations, actions, ...) of some kinds
    only names them in ``array_kinds``; events of other kinds then come with their
    arrays undecoded (:class:`~eventroll.codec.RawArray`), which spares decoding
    them: a recorder that copies them into columns joins their bytes. Without
    ``array_kinds`` every event comes whole.

    A recorder whose ``takes_plain`` is true gets plain records
    (:func:`eventroll.events.is_plain`) as their maps, in :meth:`handle_plain`,
    untyped; they are most of a run's records. One whose ``takes_packed`` is true gets
    packed episodes (:mod:`eventroll.packing`) whole, as an
    :class:`~eventroll.events.Episodes` event, checked, its arrays undecoded; any other
    gets the events such a record stands for, one by one.
    """

    array_kinds: frozenset[str] | None

    def handle(self, event: events.Event) -> None:
        """Take one checked event (``seq`` set)."""

    def handle_plain(self, record: dict) -> None:
        """Take one plain record, checked (``seq`` set), its arrays undecoded."""

    def tick(self) -> None:
        """Called after each message and when idle, for time-based flushing."""

    def close(self) -> dict[str, Any]:
        """Finish the artifact; return a short report."""


@dataclass(frozen=True)
class Records:
    """What a message brings a :class:`RecordRecorder`: its records whose envelopes were
    checked, each with ``seq`` added; their bytes are ``parts`` one after the other (views
    of the message's own bytes, and the headers that add ``seq``: nothing is copied);
    ``count`` is the number of events they stand for (a packed record, several)."""

    first_seq: int
    count: int
    parts: list[bytes | memoryview]


class RecordRecorder(Protocol):
    """Stores events as they were encoded (the event log): it gets a message's records
    at once, their bytes with ``seq`` added; the numpy values are never decoded for it.
    Its class sets ``takes_records = True``."""

    takes_records: bool

    def handle_records(self, records: Records) -> None:
        """Take the checked records of one message."""

    def tick(self) -> None: ...

    def close(self) -> dict[str, Any]: ...


class Rejections:
    """What a recorder refused: counted, and the first ``KEPT`` described (a flood of
    garbage must not grow memory)."""

    KEPT = 100

    def __init__(self) -> None:
        self.count = 0
        self.first: list[str] = []

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.first) < self.KEPT:
            self.first.append(message)


def record_deliveries(recorder: Recorder | RecordRecorder,
                      subscription: DurableSubscription) -> dict[str, Any]:
    """Feed every delivered event to ``recorder`` until the hub says the run is over."""
    checker = SequenceChecker()
    rejected = Rejections()
    failure: str | None = None
    takes_records = getattr(recorder, "takes_records", False)
    reading = Reading(getattr(recorder, "array_kinds", None), takes_plain(recorder),
                      takes_packed(recorder))
    parent = os.getppid()
    while subscription.total is None:
        try:
            delivery = subscription.receive(IDLE_TICK)
        except CodecError as exc:
            rejected.add(f"message: {exc}")
            continue
        if delivery is None:
            if failure is None:
                failure = _handle(recorder, None)
            if os.getppid() != parent:  # the driver died: keep what was recorded, stop
                rejected.add("the run's driver process died before the end of the run")
                break
            continue
        if takes_records:
            records = _checked_records(delivery, checker, rejected)
            if failure is None and records.count:
                failure = _handle(recorder, records)
        elif failure is None:
            for event in _checked(delivery, reading, checker, rejected):
                try:
                    take(recorder, event)
                except Exception as exc:  # the artifact is incomplete from here; keep draining
                    failure = _failure(recorder, event, exc)
                    break
        else:
            _checked(delivery, reading, checker, rejected)
        if failure is None:
            failure = _handle(recorder, None)
    checker.finish(subscription.total)
    return _report(recorder, failure, checker.errors + rejected.first,
                   events=checker.next_seq, rejected=rejected.count)


Item = Union[events.Event, dict, Records]


def takes_plain(recorder: Any) -> bool:
    """Whether ``recorder`` takes plain records as their maps (:meth:`Recorder.handle_plain`)."""
    return getattr(recorder, "takes_plain", False) is True


def takes_packed(recorder: Any) -> bool:
    """Whether ``recorder`` takes packed episodes whole (an :class:`~eventroll.events.Episodes`
    event, in :meth:`Recorder.handle`)."""
    return getattr(recorder, "takes_packed", False) is True


@dataclass(frozen=True)
class Reading:
    """How a recorder takes a stream's records: the kinds whose arrays it reads
    (``array_kinds``, None: all), whether it takes plain records as their maps
    (``plain``) and packed episodes whole (``packed``)."""

    array_kinds: frozenset[str] | None = None
    plain: bool = False
    packed: bool = False


def take(recorder: Any, item: events.Event | dict) -> None:
    """Hand ``recorder`` a typed event, or a plain record (a map) if it takes those."""
    if type(item) is dict:
        recorder.handle_plain(item)
    else:
        recorder.handle(item)


def _split(delivery: Delivery, arrays: bool | str,
           rejected: Rejections) -> list[tuple[Any, int]]:
    """The delivery's records in order (a packed one stands for several events), each
    decoded with the offset where its bytes end; none (and told in ``rejected``) when the
    message is malformed."""
    try:
        return codec.split_records(delivery.body, delivery.n_events, arrays=arrays,
                                   counted=packing.event_count)
    except CodecError as exc:
        last = delivery.first_seq + delivery.n_events - 1
        rejected.add(f"the message of seq {delivery.first_seq} to {last}: {exc}")
        return []


def _checked(delivery: Delivery, reading: Reading, checker: SequenceChecker,
             rejected: Rejections) -> list[events.Event | dict]:
    """The delivery's events in order, ``seq`` set, as ``reading`` says the recorder takes
    them. What fails its checks is left out and told in ``rejected``."""
    taken: list[events.Event | dict] = []
    arrays = events.decoding(reading.array_kinds)
    seq = delivery.first_seq
    for record, _ in _split(delivery, arrays, rejected):
        count = packing.event_count(record)
        if packing.is_packed(record) and not reading.packed:
            try:
                maps = packing.unpacked(record, arrays)
            except (CodecError, EventError) as exc:
                rejected.add(f"seq {seq}: {exc}")
                maps = []
            for item_seq, item in enumerate(maps, seq):
                _take_record(item, item_seq, reading, checker, rejected, taken)
        else:
            _take_record(record, seq, reading, checker, rejected, taken, count)
        seq += count
    return taken


def _take_record(record: Any, seq: int, reading: Reading, checker: SequenceChecker,
                 rejected: Rejections, taken: list[events.Event | dict], count: int = 1) -> None:
    """Check one record (of ``count`` events, a packed one), give it ``seq`` and add it to
    ``taken``: a plain one as its map if ``reading`` says so, any other typed."""
    if reading.plain and events.is_plain(record):
        record["seq"] = seq
        checker.observe(seq, record["worker"], record["wseq"])
        taken.append(record)
        return
    try:
        event = (packing.checked(record, arrays=False) if packing.is_packed(record) else
                 events.from_raw_record(record, reading.array_kinds))
    except (CodecError, EventError) as exc:
        rejected.add(f"seq {seq}: {exc}")
        return
    event.seq = seq
    checker.observe(seq, event.worker, event.wseq, count)
    taken.append(event)


def _checked_records(delivery: Delivery, checker: SequenceChecker,
                     rejected: Rejections) -> Records:
    """The delivery's records whose envelopes check, each with its seq added: the numpy
    values are not decoded. What fails is left out and told in ``rejected``."""
    parts, first, start, count = [], -1, 0, 0
    view = memoryview(delivery.body)
    seq = delivery.first_seq
    for record, end in _split(delivery, False, rejected):
        raw, start, events_in = view[start:end], end, packing.event_count(record)
        try:
            _, worker, wseq = events.envelope(record)
        except EventError as exc:
            rejected.add(f"seq {seq}: {exc}")
        else:
            checker.observe(seq, worker, wseq, events_in)
            prefix, header_len = codec.seq_prefix(raw, seq)
            parts += (prefix, raw[header_len:])
            first = seq if first < 0 else first
            count += events_in
        seq += events_in
    return Records(first, count, parts)


def _handle(recorder: Any, item: Item | None) -> str | None:
    """Hand one message's records or a tick (None) to the recorder; return the error that
    stops it."""
    try:
        if item is None:
            recorder.tick()
        else:
            recorder.handle_records(item)
    except Exception as exc:  # the artifact is incomplete from here; keep draining the bus
        return _failure(recorder, item, exc)
    return None


def _failure(recorder: Any, item: Item | None, exc: Exception) -> str:
    """What stopped a recorder that raised ``exc`` taking ``item`` (None: a tick)."""
    where = "" if item is None else (
        f" at seq {item.first_seq} ({item.count} records)" if isinstance(item, Records) else
        f" at seq {item['seq']} ({item['kind']})" if type(item) is dict else
        f" at seq {item.seq} ({item.KIND})")
    path = getattr(recorder, "path", None)
    rebuild = ("" if getattr(recorder, "takes_records", False) else
               "; `eventroll replay` rebuilds it from the event log")
    return (f"stopped writing {path or 'its artifact'}{where}: {write_error(exc)}; it holds "
            f"what was written before{rebuild}")


def _report(recorder: Recorder, failure: str | None, errors: list[str],
            **counts: Any) -> dict[str, Any]:
    try:
        report = recorder.close()
    except Exception as exc:  # after a failure, closing fails as well: the failure says it
        report = {"errors": [] if failure else [f"closing failed: {write_error(exc)}"]}
    errors = errors + ([failure] if failure else []) + report.pop("errors", [])
    return {**report, **counts, "errors": errors}


def array_kinds(recorders: Iterable[Any]) -> frozenset[str] | None:
    """The kinds whose arrays some of ``recorders`` read (None: every kind's)."""
    kinds = [getattr(recorder, "array_kinds", None) for recorder in recorders]
    return None if None in kinds else frozenset().union(*kinds)


class RecorderGroup:
    """Typed recorders sharing one process: each event is decoded once and handed to
    every member in turn. A member that raises stops alone, and the others go on, as
    if each had its own process. Its report holds one report per member
    (:func:`member_reports`)."""

    takes_records = False

    def __init__(self, members: dict[str, Recorder]) -> None:
        self._members = dict(members)
        self._active = tuple(self._members.items())
        self._failures: dict[str, str] = {}
        self.array_kinds = array_kinds(self._members.values())
        self.takes_plain = all(map(takes_plain, self._members.values()))
        self.takes_packed = all(map(takes_packed, self._members.values()))

    def handle(self, event: events.Event) -> None:
        for name, member in self._active:
            try:
                member.handle(event)
            except Exception as exc:  # this member's artifact is incomplete; the others go on
                self._stop(name, _failure(member, event, exc))

    def handle_plain(self, record: dict) -> None:
        for name, member in self._active:
            try:
                member.handle_plain(record)
            except Exception as exc:  # this member's artifact is incomplete; the others go on
                self._stop(name, _failure(member, record, exc))

    def tick(self) -> None:
        for name, member in self._active:
            failure = _handle(member, None)
            if failure is not None:
                self._stop(name, failure)

    def _stop(self, name: str, failure: str) -> None:
        self._failures[name] = failure
        self._active = tuple(item for item in self._active if item[0] != name)

    def close(self) -> dict[str, Any]:
        return {"recorders": {name: _report(member, self._failures.get(name), [])
                              for name, member in self._members.items()}}


def process_groups(specs: list[RecorderSpec]) -> list[tuple[str, list[RecorderSpec]]]:
    """Which recorders share a process, and its name: the event log (the run's record,
    from which every other artifact can be rebuilt) alone; the typed recorders together,
    so that each event is decoded once for all of them and two cores are not shared by
    more processes than needed."""
    alone = [spec for spec in specs if getattr(spec.factory, "takes_records", False)]
    together = [spec for spec in specs if spec not in alone]
    groups = [(spec.name, [spec]) for spec in alone]
    if together:
        groups.append(("+".join(spec.name for spec in together), together))
    return groups


def member_reports(name: str, report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The reports of a recorder process, by recorder: a group's report split into its
    members' (each with the process's counts and errors), another's as it is."""
    members = report.pop("recorders", None)
    if members is None:
        return {name: report}
    shared = report.pop("errors", [])
    return {member: {**report, **own, "errors": shared + own.get("errors", [])}
            for member, own in members.items()}


def recorder_main(specs: list[RecorderSpec], endpoint: str, name: str,
                  register_timeout: float) -> None:
    """Process entry point: build the recorders, register with the hub as ``name``, record.
    Python's cyclic collector runs rarely here (:func:`eventroll.memory.collect_rarely`)."""
    collect_rarely()
    recorders = {spec.name: spec.factory(**spec.kwargs) for spec in specs}
    recorder = RecorderGroup(recorders) if len(recorders) > 1 else recorders[specs[0].name]
    subscription = DurableSubscription(endpoint, name, timeout=register_timeout)
    try:
        report = record_deliveries(recorder, subscription)
        subscription.done(report)
    finally:
        subscription.close()


def replay(recorder: Recorder, event_log: str) -> dict[str, Any]:
    """Build a recorder's artifact offline from an event log."""
    try:
        for _ in fed((recorder,), event_log):
            pass
    finally:
        report = recorder.close()
    return report


def fed(members: Sequence[Any], event_log: str, start: int = 0,
        stop: int | None = None) -> Iterator[events.Event | dict]:
    """Each event of ``event_log`` (from the record at ``start`` up to ``stop``: see
    :meth:`~eventroll.recorders.eventlog.EventLogReader.records`), read once and yielded once
    every one of ``members`` has taken it: plain records as their maps if every member takes
    those."""
    from eventroll.recorders.eventlog import EventLogReader

    plain = all(map(takes_plain, members))
    reader = EventLogReader(event_log, array_kinds=array_kinds(members),
                            packed=all(map(takes_packed, members)))
    typed = [member.handle for member in members]
    maps = [member.handle_plain for member in members] if plain else []
    for event in reader.events(plain=plain, start=start, stop=stop):
        for handle in maps if type(event) is dict else typed:
            handle(event)
        yield event

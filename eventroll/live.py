"""Live subscribers: every event of a run from its start, exactly once, running or finished.

A subscriber catches up from the run's event log, then takes the hub's live
fan-out (a ZeroMQ PUB socket), and keeps the two apart by sequence number: the
ZeroMQ Guide's "Clone" pattern, with the event log as the snapshot. What the
fan-out sent before the subscriber attached, or dropped because the subscriber
was too slow for it, is read from the log; what both hold is taken once. The
fan-out never waits for a subscriber, so a slow one never slows the run.

While a run is live its directory holds ``bus.json`` (:data:`BUS_FILE`): where the
fan-out listens and the pid of the run's driver. A run directory is all a
subscriber needs.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from eventroll import codec, events, packing
from eventroll.bus import Delivery, LiveSubscription
from eventroll.errors import BusError, CodecError, EventError, EventrollError
from eventroll.files import process_exists, write_atomic
from eventroll.recorders.eventlog import FILE_NAME as EVENT_LOG, EventLogReader

BUS_FILE = "bus.json"
POLL_INTERVAL = 0.05  # s: the longest a subscriber sleeps between looks at the log
PENDING_MESSAGES = 64  # live messages held while the log catches up; older ones are read there
SILENCE_TIMEOUT = 5.0  # s without a word from a hub (it sends progress every 0.1 s): it is gone


@dataclass(frozen=True)
class BusInfo:
    """What ``bus.json`` says of a live run."""

    live: str  # the hub's PUB endpoint
    pid: int  # the run's driver process
    run_id: str

    def running(self) -> bool:
        """Whether the run's driver process is still there."""
        return process_exists(self.pid)


def announce(run_dir: str, live: str, run_id: str) -> str:
    """Write ``bus.json`` into ``run_dir``, for subscribers to find the run; return its path
    (for the run to remove when it ends)."""
    path = os.path.join(run_dir, BUS_FILE)
    write_atomic(path, json.dumps(asdict(BusInfo(live, os.getpid(), run_id))), durable=False)
    return path


def read_bus_info(run_dir: str) -> BusInfo | None:
    """The live run's ``bus.json``, or None when the run is not (or no longer) live."""
    try:
        with open(os.path.join(run_dir, BUS_FILE), encoding="utf-8") as file:
            info = BusInfo(**json.load(file))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise EventrollError(f"{os.path.join(run_dir, BUS_FILE)} is damaged ({exc}); "
                             "the event log still holds the run") from None
    return info if info.running() else None


def subscribe(source: str | os.PathLike[str], kinds: Collection[str] | None = None, *,
              from_start: bool = True, follow: bool = True, arrays: bool = True,
              curve: tuple[str, str] | None = None) -> Iterator[events.Event]:
    """Yield a run's events in ``seq`` order, each once, with ``seq`` set.

    ``source`` is a run directory (or an event log in one); while the run is live the
    events go on until its ``run.end``, or until its driver is gone. ``kinds``
    keeps only those kinds. ``from_start=False`` skips what was recorded before
    the call (of a run that has ended, then, nothing comes). ``follow=False``
    stops at the end of what is recorded now.
    ``arrays=False`` leaves numpy values out (None), which reads a log about four
    times faster, for summaries that need no observations.

    ``source`` may also be the hub's live endpoint (``ipc://`` or ``tcp://``): then
    only events from now on arrive, and a gap (a subscriber too slow for the
    fan-out, which has no log to fill it from) raises :class:`BusError`, and so does
    a hub silent for :data:`SILENCE_TIMEOUT` seconds (the run is over or gone). A
    ``tcp://`` endpoint beyond loopback needs ``curve``: (the run's public server key
    file, this client's secret key file), see :mod:`eventroll.remote`.
    """
    wanted = None if kinds is None else frozenset(kinds)
    unknown = set(wanted or ()) - set(events.STREAM_KINDS)
    if unknown:
        raise EventrollError(f"unknown event kinds {sorted(unknown)}; known kinds: "
                             f"{', '.join(events.STREAM_KINDS)}")
    source = os.fspath(source)
    if "://" in source:
        stream = _live_only(source, arrays, curve)
    else:
        stream = _run_events(_run_dir(source), from_start, follow, arrays)
    for event in stream:
        if wanted is None or event.KIND in wanted:
            yield event


def _run_dir(source: str) -> str:
    if os.path.isdir(source):
        return source
    if os.path.basename(source) == EVENT_LOG:
        return os.path.dirname(source) or "."
    raise EventrollError(f"{source} is neither a run directory nor its {EVENT_LOG}; give the "
                         "directory `eventroll run` wrote (hydra.run.dir)")


def _run_events(run_dir: str, from_start: bool, follow: bool,
                arrays: bool) -> Iterator[events.Event]:
    info = read_bus_info(run_dir) if follow else None
    log_path = os.path.join(run_dir, EVENT_LOG)
    has_log = os.path.exists(log_path)
    if not has_log and (info is None or from_start):
        raise EventrollError(
            f"{run_dir} has no {EVENT_LOG} (runner.record_event_logs=false): "
            + ("only new events can be followed (from_start=False; tail --new)"
               if info is not None else "there is nothing to read"))
    # no log: live only, and gaps cannot be filled
    tail = EventLogReader(log_path, arrays=arrays) if has_log else None
    if info is None:
        return _stream(tail, None, _never, from_start, arrays)
    return _stream(tail, info.live, info.running, from_start, arrays)


def _live_only(endpoint: str, arrays: bool,
               curve: tuple[str, str] | None) -> Iterator[events.Event]:
    return _stream(None, endpoint, _always, False, arrays, curve)


def _always() -> bool:
    return True


def _never() -> bool:
    return False


def _stream(tail: EventLogReader | None, endpoint: str | None, running: Any, from_start: bool,
            arrays: bool, curve: tuple[str, str] | None = None) -> Iterator[events.Event]:
    """The log's events, then those of the live messages that continue them, gaps filled
    from the log, until run.end, or until the end of the log once ``running()`` is false."""
    live = LiveSubscription(endpoint, curve=curve) if endpoint is not None else None
    pending: deque[Delivery] = deque(maxlen=PENDING_MESSAGES)
    heard = time.monotonic()
    try:
        next_seq = 0 if from_start else _recorded_end(tail)
        if next_seq is None:  # only new events asked for, and the log holds run.end
            return
        while True:
            was_running = running()  # before reading: then the read holds all it wrote
            for event in _from_log(tail, next_seq, arrays):
                yield event
                next_seq = event.seq + 1
                if event.KIND == "run.end":
                    return
            for event in _from_live(pending, next_seq, arrays, fillable=tail is not None):
                yield event
                next_seq = event.seq + 1
                if event.KIND == "run.end":
                    return
            if not was_running:
                return
            if _wait(live, pending):
                heard = time.monotonic()
            elif time.monotonic() - heard > SILENCE_TIMEOUT and tail is None:
                raise BusError(f"no word from the hub at {endpoint} for {SILENCE_TIMEOUT:g} s: "
                               "its run is over or gone")
    finally:
        if tail is not None:
            tail.close()
        if live is not None:
            live.close()


def _recorded_end(tail: EventLogReader | None) -> int | None:
    """One past the last seq recorded so far (-1: none; take the first live message); None
    if the log holds the run's end (no event is new)."""
    last = -1
    for record in tail.appended() if tail is not None else ():
        if isinstance(record.get("seq"), int):
            last = record["seq"]
        if record.get("kind") == "run.end":
            return None
    return last + 1 if last >= 0 else -1


def _from_log(tail: EventLogReader | None, next_seq: int,
              arrays: bool) -> Iterator[events.Event]:
    for record in tail.appended() if tail is not None else ():
        seq = record.get("seq")
        if isinstance(seq, int) and seq >= next_seq:
            yield events.from_record(record, arrays=arrays)


def _from_live(pending: deque[Delivery], next_seq: int, arrays: bool,
               fillable: bool) -> Iterator[events.Event]:
    """The events of held live messages from ``next_seq`` on, as far as they continue
    without a gap (a gap waits for the log, or raises when there is no log)."""
    while pending:
        first, n = pending[0].first_seq, pending[0].n_events
        if next_seq < 0:
            next_seq = first
        if first > next_seq:
            if fillable:
                return
            raise BusError(f"the live fan-out dropped events {next_seq} to {first - 1} (too "
                           "slow a subscriber); subscribe through the run directory, whose "
                           "event log fills such gaps")
        body = pending.popleft().body
        if first + n <= next_seq:
            continue
        try:
            records = [record for record, _ in codec.split_records(
                body, n, arrays=arrays, counted=packing.event_count)]
            taken = [events.from_record(record, arrays=arrays) for record in
                     packing.expanded(records, arrays)[next_seq - first:]]
        except (CodecError, EventError) as exc:
            if fillable:
                continue  # malformed on the bus: the log holds what the recorders accepted
            raise BusError(f"a live message (seq {first} to {first + n - 1}) is malformed: "
                           f"{exc}") from None
        for seq, event in enumerate(taken, start=next_seq):
            event.seq = seq
            yield event
        next_seq = first + n


def _wait(live: LiveSubscription | None, pending: deque[Delivery]) -> bool:
    """Take the live messages that arrive within POLL_INTERVAL (or just sleep); return
    whether the hub said anything (events or progress)."""
    if live is None:
        time.sleep(POLL_INTERVAL)
        return False
    frames = live.receive(POLL_INTERVAL)
    heard = frames is not None
    while frames is not None:
        if frames[0] == b"events":
            pending.append(Delivery.from_frames(frames))
        frames = live.receive(0)
    return heard

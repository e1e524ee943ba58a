#!/usr/bin/env python
"""Throughput of the recorders on their own, and the bytes they write per step.

What it measures
----------------
One CartPole-v1 event log of at least ``--steps`` steps is recorded first
(``SequentialRunner``, random policy, fixed seeds, event log only), a record an event
(``recording.pack_episodes=false``), and the same log with its whole episodes packed
(:mod:`eventroll.packing`, as runs record by default). Then, for ``--repeats``
rounds, each recorder builds its artifact from the first log in this process, timed
with ``time.perf_counter``:

* ``flat HDF5, recorder alone``: the events are decoded into memory before
  the clock starts; the clock covers ``TrajectoryRecorder.handle`` for every
  event and ``close`` (assembling episodes, appending blocks, flushing).
* ``flat HDF5, decode + record``: the same, with decoding the log
  (``read_events``: msgpack, numpy extension types, event checks) inside the
  clock, as a recorder process does for every message.
* ``decode only``: ``read_events`` over the log, for reference.
* ``minari layout, recorder alone`` and ``stats, recorder alone``, when those
  recorders are present in this checkout.
* ``process loop, trajectories+stats`` and ``process loop, event log``: the
  loop a recorder process runs (``record_deliveries``), fed the log's records
  as the hub delivers them (a message once ``BusSink.MESSAGE_STEPS`` steps are in
  it, as a worker sends them), through a stand-in for the subscription
  socket; timed in CPU seconds of this process (``time.process_time``), so
  that the machine's other load counts less; ``, packed``: fed the packed log's.
  Run it with ``PYTHONPATH`` set to another checkout to compare two versions side
  by side.
* ``replay, trajectories+stats``: ``eventroll.recording.replay_run`` over the
  log's run directory in one process (``parts=1``; ``eventroll replay`` cuts a
  large log into one part a core, each in a process of its own), in CPU seconds;
  ``, packed``: over the packed log's.
* ``floor, decode + columns``: what a replay of this design cannot do without,
  in CPU seconds: decode every record (msgpack, arrays undecoded), check each
  step array's head against the one its field and row count must have, keep a
  view of its data, and write the columns and an episode index to HDF5 in
  blocks of 65,536 steps. No typed events, no general path (CartPole's single
  arrays only, no infos, every record in order): the floor of the replay in
  Python, to compare the replay with.

It prints the median steps/s of each, the spread of the repeats and the bytes
per step of each artifact (file size / steps).

How to run
----------
    python tools/bench_recorders.py                      # 1,000,000 steps, 3 repeats
    python tools/bench_recorders.py --steps 200000 --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from eventroll import SequentialRunner, read_events
from eventroll.recorders.base import record_deliveries
from eventroll.recorders.trajectories import TrajectoryRecorder
from eventroll.recording import replay_run

STEPS_PER_EPISODE = 22.2


def record_log(workdir: str, steps: int, pack: bool = False) -> tuple[str, int]:
    """A CartPole event log of at least ``steps`` steps, and its step count; with ``pack``,
    its whole episodes packed (:mod:`eventroll.packing`), else a record an event."""
    n_episodes = int(steps / STEPS_PER_EPISODE * 1.03) + 1
    runner = SequentialRunner(n_episodes=n_episodes, record_trajectory=False, console=None,
                              recording={"stats": False, "pack_episodes": pack},
                              env_base_seed=1, agent_base_seed=2)
    result = runner.run_with("CartPole-v1", run_dir=os.path.join(
        workdir, "source-packed" if pack else "source"))
    if not result.ok:
        sys.exit(f"recording the source log failed: {result.errors}")
    return result.event_log, result.steps


def size_of(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, name))
                   for root, _, names in os.walk(path) for name in names)
    return os.path.getsize(path)


def feed(recorder: Any, events: Any) -> None:
    for event in events:
        recorder.handle(event)
    recorder.close()


def recorders(workdir: str) -> dict[str, Callable[[str], tuple[Any, str]]]:
    """name -> factory(round tag) returning (recorder, artifact path)."""
    def flat(tag: str) -> tuple[Any, str]:
        path = os.path.join(workdir, f"flat-{tag}.h5")
        return TrajectoryRecorder(path), path

    found = {"flat HDF5": flat}
    if importlib.util.find_spec("eventroll.trajectories.minari"):
        def minari(tag: str) -> tuple[Any, str]:
            path = os.path.join(workdir, f"minari-{tag}")
            return TrajectoryRecorder(path, layout="minari", dataset_id="bench/cartpole-v0"), path
        found["minari layout"] = minari
    if importlib.util.find_spec("eventroll.recorders.stats"):
        from eventroll.recorders.stats import StatsRecorder

        def stats(tag: str) -> tuple[Any, str]:
            path = os.path.join(workdir, f"stats-{tag}.json")
            return StatsRecorder(path, []), path
        found["stats"] = stats
    return found


class Deliveries:
    """Stands in for a recorder's subscription: hands out the messages, then the total."""

    def __init__(self, messages: list[Any], total: int) -> None:
        self._messages = iter(messages)
        self._total = total
        self.total: int | None = None

    def receive(self, timeout: float) -> Any:
        message = next(self._messages, None)
        if message is None:
            self.total = self._total
        return message


def messages_of(log: str) -> tuple[list[Any], int]:
    """The log's records as the hub delivers them (as they are stored: packed ones whole),
    a message once ``BusSink.MESSAGE_STEPS`` steps are in it, and the number of events."""
    from eventroll import codec, packing
    from eventroll.bus import Delivery
    from eventroll.recorders.eventlog import EventLogReader
    from eventroll.runners.loop import BusSink

    messages, body, events, steps, seq = [], [], 0, 0, 0
    for record in EventLogReader(log, packed=True).records():
        body.append(codec.encode({key: value for key, value in record.items() if key != "seq"}))
        events += packing.event_count(record)
        kind = record["kind"]
        steps += (record["n"] if kind == "step.batch" else
                  sum(record["length"]) if kind == packing.KIND else 0)
        if steps >= BusSink.MESSAGE_STEPS:
            messages.append(Delivery(seq, events, b"".join(body)))
            body, seq, events, steps = [], seq + events, 0, 0
    if body:
        messages.append(Delivery(seq, events, b"".join(body)))
    return messages, seq + events


def process_loops(workdir: str) -> dict[str, Callable[[str], Any]]:
    """name -> factory(round tag) of the recorder a recorder process runs."""
    from eventroll.recorders.base import RecorderGroup
    from eventroll.recorders.eventlog import EventLogRecorder
    from eventroll.recorders.stats import StatsRecorder

    def trajectories_and_stats(tag: str) -> Any:
        return RecorderGroup({
            "trajectories": TrajectoryRecorder(os.path.join(workdir, f"loop-{tag}.h5")),
            "stats": StatsRecorder(os.path.join(workdir, f"loop-{tag}.json"), [])})

    def event_log(tag: str) -> Any:
        return EventLogRecorder(os.path.join(workdir, f"loop-{tag}.msgpack"), run_id="bench")

    return {"process loop, trajectories+stats": trajectories_and_stats,
            "process loop, event log": event_log}


class FloorColumns:
    """The floor loop's columns: views of undecoded arrays, checked by their heads, joined
    and appended to HDF5 datasets once a block is full."""

    FIELDS = ("observation", "action", "reward", "terminated", "truncated")

    def __init__(self, path: str) -> None:
        import h5py

        self.file = h5py.File(path, "w")
        self.parts: dict[str, list[Any]] = {name: [] for name in self.FIELDS + ("final",)}
        self.index: dict[str, list[Any]] = {"episode": [], "length": [], "return": []}
        self.heads: dict[tuple[str, int | None], tuple[bytes, int]] = {}  # (field, n) -> head
        self.layout: dict[str, tuple[Any, tuple]] = {}  # field -> (dtype, row shape)
        self.rows = 0

    def view(self, field: str, value: Any, n: int | None) -> memoryview:
        """The data of an undecoded array whose head says ``n`` rows of ``field``'s dtype."""
        from eventroll import codec

        head = self.heads.get((field, n))
        if head is None:
            array = value.decode()
            self.layout[field] = array.dtype, array.shape if n is None else array.shape[1:]
            head = self.heads[(field, n)] = codec.array_head(array.dtype.str, array.shape)
        payload = value.payload
        if len(payload) != head[1] or not payload.startswith(head[0]):
            raise ValueError(f"{field}: an array of another dtype or shape")
        return memoryview(payload)[len(head[0]):]

    def flush(self) -> None:
        for name, parts in self.parts.items():
            if parts:
                dtype, shape = self.layout["observation" if name == "final" else name]
                self.append(name, np.frombuffer(b"".join(parts), dtype).reshape(-1, *shape))
                parts.clear()
        for name, values in self.index.items():
            self.append(f"episodes/{name}", np.array(values))
            values.clear()
        self.file.flush()
        self.rows = 0

    def append(self, name: str, data: Any) -> None:
        if name not in self.file:
            self.file.create_dataset(name, data=data, maxshape=(None, *data.shape[1:]),
                                     chunks=True)
            return
        dataset = self.file[name]
        dataset.resize(len(dataset) + len(data), axis=0)
        dataset[-len(data):] = data


def floor(log: str, path: str) -> None:
    """See ``floor, decode + columns`` in the module's docstring."""
    from eventroll import codec

    columns, open_ = FloorColumns(path), {}
    view, parts, index = columns.view, columns.parts, columns.index
    with open(log, "rb") as file:
        unpacker = codec.stream_unpacker(arrays=codec.RAW)
        unpacker.feed(file.read())
    next(unpacker)  # the header
    for record in unpacker:
        kind = record["kind"]
        if kind == "step.batch":
            open_[record["episode"]][1].append(record)
        elif kind == "episode.start":
            open_[record["episode"]] = (record, [])
        elif kind == "episode.end":
            start, batches = open_.pop(record["episode"])
            before = view("observation", start["observation"], None)
            length = 0
            for batch in batches:
                n = batch["n"]
                observed = view("observation", batch["observation"], n)
                cut = len(observed) // n * (n - 1)
                parts["observation"] += (before, observed[:cut])
                before = observed[cut:]
                for name in FloorColumns.FIELDS[1:]:
                    parts[name].append(view(name, batch[name], n))
                length += n
            parts["final"].append(before)
            index["episode"].append(record["episode"])
            index["length"].append(length)
            index["return"].append(record["return"])
            columns.rows += length
            if columns.rows >= 65536:
                columns.flush()
    columns.flush()
    columns.file.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from eventroll import memory

    if hasattr(memory, "collect_rarely"):  # as the recorder processes do (absent before b0fed8c)
        memory.collect_rarely()
    workdir = tempfile.mkdtemp(prefix="eventroll-bench-")
    try:
        log, steps = record_log(workdir, args.steps)
        packed_log, _ = record_log(workdir, args.steps, pack=True)
        print(f"source log: {steps:,} steps, {size_of(log) / steps:.1f} bytes/step "
              f"({size_of(packed_log) / steps:.1f} packed)", file=sys.stderr)
        decoded = list(read_events(log))
        deliveries = {"": messages_of(log), ", packed": messages_of(packed_log)}
        factories = recorders(workdir)
        loops = process_loops(workdir)
        times: dict[str, list[float]] = {}
        sizes: dict[str, float] = {}
        for round_index in range(args.repeats):
            started = time.perf_counter()
            for _ in read_events(log):
                pass
            times.setdefault("decode only", []).append(time.perf_counter() - started)
            for name, factory in factories.items():
                recorder, path = factory(f"{round_index}a")
                started = time.perf_counter()
                feed(recorder, decoded)
                times.setdefault(f"{name}, recorder alone", []).append(time.perf_counter() - started)
                sizes[f"{name}, recorder alone"] = size_of(path) / steps
                if name == "flat HDF5":
                    recorder, path = factory(f"{round_index}b")
                    started = time.perf_counter()
                    feed(recorder, read_events(log))
                    times.setdefault(f"{name}, decode + record", []).append(
                        time.perf_counter() - started)
            for (name, factory), (suffix, (messages, n_events)) in itertools.product(
                    loops.items(), deliveries.items()):
                recorder = factory(f"{round_index}{suffix.strip(', ')}")
                started = time.process_time()
                report = record_deliveries(recorder, Deliveries(messages, n_events))
                times.setdefault(name + suffix, []).append(time.process_time() - started)
                if report["errors"]:
                    sys.exit(f"{name}{suffix}: {report['errors'][:3]}")
            for suffix, source in (("", log), (", packed", packed_log)):
                started = time.process_time()
                replay_run(os.path.dirname(source),
                           os.path.join(workdir, f"replay-{round_index}{suffix.strip(', ')}"),
                           parts=1)
                times.setdefault("replay, trajectories+stats" + suffix, []).append(
                    time.process_time() - started)
            started = time.process_time()
            floor(log, os.path.join(workdir, f"floor-{round_index}.h5"))
            times.setdefault("floor, decode + columns", []).append(time.process_time() - started)
            print(f"round {round_index + 1}/{args.repeats} done", file=sys.stderr)
        print(f"| measure ({steps:,} CartPole steps, {args.repeats} repeats) | median steps/s "
              "| spread | bytes/step |")
        print("|:---|---:|---:|---:|")
        for name, values in times.items():
            rates = [steps / t for t in values]
            spread = (max(rates) - min(rates)) / statistics.median(rates)
            size = f"{sizes[name]:.1f}" if name in sizes else "-"
            print(f"| {name} | {statistics.median(rates):,.0f} | {spread:.0%} | {size} |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Plain records: the trajectory (flat) and statistics recorders take most records as the
maps they were decoded to (``events.is_plain``), and build the same artifacts as from
typed events, whatever mix of plain and other records a log holds."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import h5py
import numpy as np
import pytest

from eventroll import ParallelRunner, SequentialRunner, codec, events
from eventroll.errors import EventError
from eventroll.recorders.base import RecorderGroup, replay
from eventroll.recorders.eventlog import EventLogReader
from eventroll.recorders.stats import StatsRecorder
from eventroll.recorders.trajectories import TrajectoryRecorder
from eventroll.recording import replay_run
from eventroll.testing import failing_env

SEEDS = dict(env_base_seed=5, agent_base_seed=6)


@pytest.fixture(scope="module")
def cartpole_log(tmp_path_factory) -> str:
    """A parallel CartPole run: terminated and truncated episodes, two workers interleaved,
    every event a record of its own (unpacked: these are the plain records)."""
    run_dir = str(tmp_path_factory.mktemp("cartpole") / "run")
    ParallelRunner(n_episodes=60, n_processes=2, max_episode_steps=20, console=None,
                   recording={"pack_episodes": False}, **SEEDS).run_with(
        "CartPole-v1", run_dir=run_dir)
    return f"{run_dir}/events.msgpack"


@pytest.fixture(scope="module")
def packed_log(tmp_path_factory) -> str:
    """The same run, its episodes packed."""
    run_dir = str(tmp_path_factory.mktemp("packed") / "run")
    ParallelRunner(n_episodes=60, n_processes=2, max_episode_steps=20, console=None,
                   **SEEDS).run_with("CartPole-v1", run_dir=run_dir)
    return f"{run_dir}/events.msgpack"


@pytest.fixture(scope="module")
def failing_log(tmp_path_factory) -> str:
    """A run whose env fails in a third of its episodes: aborted episodes."""
    run_dir = str(tmp_path_factory.mktemp("failing") / "run")
    ParallelRunner(n_episodes=24, n_processes=2, console=None, **SEEDS).run_with(
        lambda **kw: failing_env(length=6, fail_step=3, fail_every=3, **kw), run_dir=run_dir)
    return f"{run_dir}/events.msgpack"


def records(log: str) -> list[dict]:
    return list(EventLogReader(log, array_kinds=frozenset()).records())


def stored(log: str) -> list[dict]:
    """The records as the log stores them, packed ones as they are."""
    return list(EventLogReader(log, array_kinds=frozenset(), packed=True).records())


def write_log(source: str, target: str, kept: list[dict]) -> str:
    """``kept`` (records, arrays undecoded) as an event log with ``source``'s header."""
    reader = EventLogReader(source)
    list(reader.records())
    with open(target, "wb") as file:
        file.write(codec.encode(reader.header))
        for record in kept:
            file.write(codec.encode(codec.decoded(record)))
    return target


def build(log: str, directory: Any, plain: bool, **options: Any) -> tuple[dict, dict, dict]:
    """The flat file's datasets, stats.json and the reports, built from ``log`` by one
    group of both recorders, taking plain records as maps or not."""
    path, stats = str(directory / "trajectories.h5"), str(directory / "stats.json")
    members = {"trajectories": TrajectoryRecorder(path, **options), "stats": StatsRecorder(stats)}
    if not plain:
        for member in members.values():
            member.takes_plain = member.takes_packed = False
    reports = replay(RecorderGroup(members), log)["recorders"]
    for report in reports.values():  # the same but for the directory
        assert report.pop("path").startswith(str(directory))
        report["errors"] = [error.replace(str(directory), "DIR") for error in report["errors"]]
    with open(stats) as file:
        statistics = json.load(file)
    return datasets(path), statistics, reports


def datasets(path: str) -> dict[str, Any]:
    """Every dataset of an HDF5 file (values) and every attribute but the creation time."""
    found: dict[str, Any] = {}
    with h5py.File(path, "r") as file:
        def visit(name: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset):
                found[name] = item[()]
            found[f"{name}@"] = {k: (v.tobytes() if isinstance(v, np.void) else v)
                                 for k, v in item.attrs.items() if k != "created"}
        file.visititems(visit)
    return found


def assert_same_datasets(found: dict[str, Any], expected: dict[str, Any]) -> None:
    """Two files' :func:`datasets` hold the same names, values and attributes."""
    assert found.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, dict):
            assert found[name].keys() == value.keys(), name
            for key in value:
                assert np.array_equal(found[name][key], value[key]), (name, key)
        else:
            assert np.array_equal(found[name], value), name


def assert_same_artifacts(log: str, tmp_path: Any, **options: Any) -> tuple[dict, dict, dict]:
    """The datasets, statistics and reports built from plain records, checked equal to
    those built from typed events."""
    (tmp_path / "plain").mkdir()
    (tmp_path / "typed").mkdir()
    plain = build(log, tmp_path / "plain", True, **options)
    typed = build(log, tmp_path / "typed", False, **options)
    assert_same_datasets(plain[0], typed[0])
    assert plain[1] == typed[1]
    assert plain[2] == typed[2]
    return plain


class TestIsPlain:
    def test_a_runs_episode_records_are_plain_and_read_as_typed_events(self, cartpole_log):
        """Every episode.start, step.batch and episode.end of a CartPole run is plain, and
        nothing else is; each plain one also reads as its typed event."""
        for record in records(cartpole_log):
            hot = record["kind"] in ("episode.start", "step.batch", "episode.end")
            assert events.is_plain(record) == hot, record["kind"]
            if hot:
                events.from_record(record, arrays=False)

    @pytest.mark.parametrize("kind, change", [
        ("step.batch", {"n": 0}), ("step.batch", {"t0": -1}), ("step.batch", {"n": True}),
        ("step.batch", {"info": [{}]}), ("step.batch", {"logits": None, "x": 1}),
        ("step.batch", {"observation": np.zeros((1, 4), np.float32)}),
        ("step.batch", {"reward": [1.0]}), ("step.batch", {"episode": 1.0}),
        ("step.batch", {"worker": False}), ("step.batch", {"wseq": "3"}),
        ("step.batch", {"time": 3}), ("step.batch", {"seq": 2.0}),
        ("episode.start", {"info": {"lives": 3}}), ("episode.start", {"env_seed": 1.5}),
        ("episode.start", {"agent_seed": "1"}), ("episode.start", {"observation": None}),
        ("episode.end", {"return": 10}), ("episode.end", {"aborted": 0}),
        ("episode.end", {"length": np.int64(3)}), ("episode.end", {"wall_time": None}),
        ("episode.end", {"kind": "episode.ends"}), ("episode.end", {"kind": ["episode.end"]}),
    ])
    def test_any_other_form_is_typed(self, cartpole_log, kind, change):
        """A record of another form (a field of another type or value, one more or one
        fewer) is not plain: it is typed, and from_record says what is wrong with it."""
        original = next(r for r in records(cartpole_log) if r["kind"] == kind)
        assert events.is_plain(original)
        record = {**original, **change}
        assert not events.is_plain(record)
        missing = dict(original)
        missing.pop(next(iter(set(change) & set(original) - {"seq"}), "episode"))
        assert not events.is_plain(missing)

    def test_not_a_map(self):
        assert not events.is_plain([("kind", "step.batch")])
        assert not events.is_plain(None)


class TestSameArtifacts:
    def test_a_parallel_run(self, cartpole_log, tmp_path):
        """Trajectories and statistics built from plain records equal those built from
        typed events, dataset for dataset."""
        found = assert_same_artifacts(cartpole_log, tmp_path)[0]
        assert len(found["episodes/index"]) == 60
        assert {0, 1} <= set(found["episodes/status"].tolist())  # terminated and truncated

    def test_packed_episodes(self, packed_log, tmp_path):
        """Trajectories and statistics built from packed records taken whole equal those
        built from the typed events they stand for, next observations and infos included."""
        found = assert_same_artifacts(packed_log, tmp_path, next_observations=True,
                                      infos=True)[0]
        assert len(found["episodes/index"]) == 60
        assert any(record["kind"] == "episodes" for record in stored(packed_log))

    def test_aborted_episodes(self, failing_log, tmp_path):
        found = assert_same_artifacts(failing_log, tmp_path, next_observations=True,
                                      infos=True)[0]
        assert (found["episodes/status"] == events.STATUS_CODES["aborted"]).sum() > 0

    def test_episodes_whose_records_stop_or_start_being_plain(self, cartpole_log, tmp_path):
        """Episodes that mix plain records and others (an info in a batch, an info at the
        reset, a return written as an int, a batch split in two) are recorded as from typed
        events alone, infos included."""
        kept, changed = [], set()
        for record in records(cartpole_log):
            index = record.get("episode")
            if record["kind"] == "step.batch" and index == 3:
                record["info"] = [{"t": t} for t in range(record["n"])]
            elif record["kind"] == "episode.start" and index == 5:
                record["info"] = {"lives": 3}
            elif record["kind"] == "episode.end" and index == 7:
                record["return"] = int(record["return"])
            elif record["kind"] == "step.batch" and index == 9 and record["n"] > 1:
                kept += split_batch(record)
                changed.add(index)
                continue
            else:
                kept.append(record)
                continue
            assert not events.is_plain(record)
            changed.add(index)
            kept.append(record)
        assert changed == {3, 5, 7, 9}
        log = write_log(cartpole_log, str(tmp_path / "mixed.msgpack"), kept)
        found = assert_same_artifacts(log, tmp_path, infos=True)[0]
        assert len(found["episodes/index"]) == 60

    @pytest.mark.parametrize("damage, message", [
        ("first step gone", "a step.batch from step 1 does not continue it (steps 0..0 missing)"),
        ("no start", "a step.batch from step 0 does not continue it (no episode.start before it)"),
    ])
    def test_an_episode_whose_steps_do_not_fit_together(self, cartpole_log, tmp_path, damage,
                                                        message):
        """An episode whose first step is gone, or that has no episode.start, is left out
        and named; the recorder goes on with the others (it used to stop, and `eventroll
        replay` ended in a traceback)."""
        kept = []
        for record in records(cartpole_log):
            if record["kind"] == "step.batch" and record["episode"] == 4 and damage != "no start":
                kept.append(split_batch(record)[1])  # its first step is gone
            elif record["kind"] != "episode.start" or record["episode"] != 4 or damage != "no start":
                kept.append(record)
        log = write_log(cartpole_log, str(tmp_path / "gap.msgpack"), kept)
        found, _, reports = assert_same_artifacts(log, tmp_path)
        assert sorted(found["episodes/index"].tolist()) == [i for i in range(60) if i != 4]
        [error] = reports["trajectories"]["errors"]
        assert error.endswith(f"episode 4: {message}"), error

    @pytest.mark.parametrize("field, value, message", [
        ("worker", 2**40, "its worker id 1099511627776 does not fit the int32"),
        ("env_seed", 2**63 + 5, "its env seed 9223372036854775813 does not fit the int64"),
        ("agent_seed", -1, "its agent seed -1 is negative (seeds are >= 0; the file stores "
                           "none as -1)"),
    ])
    def test_index_values_the_file_cannot_hold(self, cartpole_log, tmp_path, field, value,
                                               message):
        """An episode whose worker id or seed does not fit the file's integer columns is
        left out of it, and the report names it and why (it used to stop the recorder
        with an OverflowError; a seed of -1 read back as none); the statistics keep it."""
        kept = [{**record, field: value}
                if record["kind"] == "episode.start" and record["episode"] == 5 else record
                for record in records(cartpole_log)]
        log = write_log(cartpole_log, str(tmp_path / "wide.msgpack"), kept)
        found, statistics, reports = assert_same_artifacts(log, tmp_path)
        assert sorted(found["episodes/index"].tolist()) == [i for i in range(60) if i != 5]
        [error] = reports["trajectories"]["errors"]
        assert "episode 5: " + message in error
        assert statistics["episode_count"] == 60

    def test_the_minari_layout_leaves_such_an_episode_out_too(self, cartpole_log, tmp_path):
        kept = [{**record, "worker": 2**40}
                if record["kind"] == "episode.start" and record["episode"] == 5 else record
                for record in records(cartpole_log)]
        log = write_log(cartpole_log, str(tmp_path / "wide.msgpack"), kept)
        recorder = TrajectoryRecorder(str(tmp_path / "datasets"), layout="minari",
                                      dataset_id="bench/wide-v0")
        report = replay(recorder, log)
        assert report["episodes"] == 59
        [error] = report["errors"]
        assert "episode 5: its worker id 1099511627776 does not fit the int32" in error

    def test_a_length_beyond_int64_is_a_problem_of_the_statistics(self, cartpole_log,
                                                                  tmp_path):
        """An episode.end whose length no int64 holds is left out of the statistics and
        counted as a problem (it used to stop the recorder as it wrote stats.json)."""
        kept = [{**record, "length": 2**63 + 5}
                if record["kind"] == "episode.end" and record["episode"] == 5 else record
                for record in records(cartpole_log)]
        log = write_log(cartpole_log, str(tmp_path / "long.msgpack"), kept)
        found, statistics, reports = assert_same_artifacts(log, tmp_path)
        assert statistics["problems"] == {
            "an episode.end whose length is beyond int64: left out": 1}
        assert statistics["episode_count"] == 59
        assert len(found["episodes/index"]) == 60 and reports["stats"]["errors"] == []


def split_batch(record: dict) -> list[dict]:
    """A step.batch as two, its first step and the rest."""
    columns = ("action", "observation", "reward", "terminated", "truncated")
    decoded = {name: record[name].decode() for name in columns}
    first, rest = copy.copy(record), copy.copy(record)
    first.update(n=1, **{name: decoded[name][:1] for name in columns})
    rest.update(t0=record["t0"] + 1, n=record["n"] - 1,
                **{name: decoded[name][1:] for name in columns})
    return [first, rest]


def test_replay_takes_plain_records_and_rebuilds_the_run(cartpole_log, tmp_path):
    """`replay_run` (both recorders, one reading of the log) builds what the live run did."""
    run_dir = cartpole_log.rsplit("/", 1)[0]
    report = replay_run(run_dir, str(tmp_path / "replay"))
    assert report["steps"] == sum(r["n"] for r in records(cartpole_log)
                                  if r["kind"] == "step.batch")
    live = datasets(f"{run_dir}/trajectories.h5")
    rebuilt = datasets(str(tmp_path / "replay/trajectories.h5"))
    order = np.argsort(live["episodes/index"]), np.argsort(rebuilt["episodes/index"])
    for name in ("index", "length", "return", "status", "env_seed", "worker"):
        assert np.array_equal(live[f"episodes/{name}"][order[0]], rebuilt[f"episodes/{name}"][order[1]])
    with open(f"{run_dir}/stats.json") as a, open(tmp_path / "replay/stats.json") as b:
        assert json.load(a) == json.load(b)


def test_replay_of_a_log_with_a_damaged_episode(cartpole_log, tmp_path):
    """`eventroll replay` of a log with an episode whose first step is gone rebuilds the
    others, names that one on one line and exits 1, without a traceback."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    kept = [split_batch(record)[1] if record["kind"] == "step.batch" and record["episode"] == 4
            else record for record in records(cartpole_log)]
    write_log(cartpole_log, str(run_dir / "events.msgpack"), kept)
    done = subprocess.run([sys.executable, "-m", "eventroll.cli", "replay", str(run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("replayed ")
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: trajectories: left out of ") and "episode 4: " in line
    with open(run_dir / "replay/stats.json") as file:
        assert json.load(file)["episode_count"] == 60


def test_a_member_failing_on_a_plain_record_stops_alone(cartpole_log, tmp_path):
    """In a group, a recorder that raises on a plain record stops; the other goes on, and
    the failure names the record's seq and kind."""
    class Breaks(StatsRecorder):
        def handle_plain(self, record: dict) -> None:
            raise EventError("broken")

    breaks = Breaks(str(tmp_path / "stats.json"))
    group = RecorderGroup({"trajectories": TrajectoryRecorder(str(tmp_path / "t.h5")),
                           "stats": breaks})
    report = replay(group, cartpole_log)["recorders"]
    assert report["trajectories"]["episodes"] == 60
    assert report["trajectories"]["errors"] == []
    assert len(report["stats"]["errors"]) == 1
    assert "(episode.start)" in report["stats"]["errors"][0] and "broken" in report["stats"]["errors"][0]


def test_a_member_failing_on_packed_episodes_stops_alone(packed_log, tmp_path):
    """In a group, a recorder that raises on a packed record stops; the other goes on, and
    the failure names the record's seq and kind."""
    class Breaks(StatsRecorder):
        def handle(self, event) -> None:
            if event.KIND == "episodes":
                raise EventError("broken")
            super().handle(event)

    group = RecorderGroup({"trajectories": TrajectoryRecorder(str(tmp_path / "t.h5")),
                           "stats": Breaks(str(tmp_path / "stats.json"))})
    report = replay(group, packed_log)["recorders"]
    assert report["trajectories"]["episodes"] == 60
    assert report["trajectories"]["errors"] == []
    assert len(report["stats"]["errors"]) == 1
    assert "(episodes)" in report["stats"]["errors"][0] and "broken" in report["stats"]["errors"][0]


def test_a_run_packed_and_unpacked_records_the_same(tmp_path):
    """The same sequential run with its episodes packed and not: the same events of its
    worker (but for their times), trajectories dataset for dataset, and statistics."""
    results = {pack: SequentialRunner(
        n_episodes=40, max_episode_steps=30, recording={"pack_episodes": pack}, console=None,
        **SEEDS).run_with("CartPole-v1", run_dir=str(tmp_path / str(pack))) for pack in (True, False)}
    assert all(result.ok for result in results.values())
    logs = {pack: [{k: v for k, v in codec.decoded(record).items() if k not in ("time", "wall_time")}
                   for record in EventLogReader(result.event_log).records()
                   if record["worker"] == 0]
            for pack, result in results.items()}
    assert len(logs[True]) == 2 + 3 * 40  # worker.start, worker.end, the episodes
    assert len(logs[True]) == len(logs[False])
    for packed, plain in zip(logs[True], logs[False]):
        assert packed.keys() == plain.keys()
        for key, value in plain.items():
            assert np.array_equal(packed[key], value), (plain["seq"], key)
    assert len(stored(results[True].event_log)) < len(logs[False]) / 10
    assert_same_datasets(*(datasets(f"{r.run_dir}/trajectories.h5") for r in results.values()))
    stats = [json.load(open(f"{r.run_dir}/stats.json")) for r in results.values()]
    for key in ("episode_count", "step_count", "aborted_episode_count", "episode_return",
                "episode_length"):
        assert stats[0][key] == stats[1][key], key

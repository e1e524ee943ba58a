"""``eventroll inspect`` and ``eventroll validate`` on real runs and on real damaged copies
of their event logs: a truncated tail, a flipped byte, a record removed or changed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from PIL import Image

from eventroll import codec, read_events
from eventroll.errors import CodecError
from eventroll.inspection import PLOT_SIZE, LINE, plot_returns
from eventroll.seeding import episode_seeds
from eventroll.stats import Statistics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def eventroll(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eventroll.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Record:
    """A value of an event log as plain msgpack reads it: where its bytes are, and it."""

    offset: int
    end: int
    value: dict[str, Any]


def read_raw(path: Path) -> list[Record]:
    """The header and every record of a log, with their byte ranges (no eventroll code)."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(path.read_bytes())
    found, offset = [], 0
    for value in unpacker:
        found.append(Record(offset, unpacker.tell(), value))
        offset = unpacker.tell()
    return found


def without(path: Path, record: Record, out: Path) -> Path:
    """A copy of the log at ``path`` with ``record``'s bytes removed."""
    data = path.read_bytes()
    out.write_bytes(data[:record.offset] + data[record.end:])
    return out


def nearest_middle(records: list[Record], kind: str, size: int) -> Record:
    return min((r for r in records if r.value.get("kind") == kind),
               key=lambda r: abs(r.offset - size // 2))


def validate_lines(path: Path) -> tuple[int, list[str]]:
    done = eventroll("validate", path, "--max-problems", "0")
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout.splitlines()


def inspect_json(path: Path, *options: str) -> dict[str, Any]:
    done = eventroll("inspect", path, "--json", *options)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three real runs: parallel CartPole (20 episodes, 2 workers), its events a record each
    (the damage below is to single events), the same run with its episodes packed, and a
    sequential run of an env that fails in two of its four episodes."""
    base = tmp_path_factory.mktemp("inspect")
    for name, pack in (("cartpole", "false"), ("packed", "true")):
        cartpole = eventroll("run", "runner.n_processes=2", "runner.n_episodes=20",
                             "runner.max_episode_steps=30", "seeding.env_base_seed=1",
                             "seeding.agent_base_seed=2", f"recording.pack_episodes={pack}",
                             f"hydra.run.dir={base / name}")
        assert cartpole.returncode == 0, cartpole.stderr
    failing = eventroll("run", "runner=sequential", "env.name=eventroll.testing:failing_env",
                        "+env.fail_every=2", "seeding.explicit_env_seeds=[1,2,3,4]",
                        "runner.n_episodes=4", f"hydra.run.dir={base / 'failing'}")
    assert failing.returncode == 1, failing.stderr  # aborted episodes
    return {"cartpole": base / "cartpole", "packed": base / "packed", "failing": base / "failing"}


@pytest.fixture
def log(runs, tmp_path) -> Path:
    """A copy of the CartPole run's event log, to damage."""
    return Path(shutil.copy(runs["cartpole"] / "events.msgpack", tmp_path / "events.msgpack"))


def lost_episode_end(records: list[Record], end: Record, shift: int) -> list[str]:
    """The problems a log has once the (not aborted) episode.end ``end`` is gone; records
    after it moved ``shift`` bytes towards the start."""
    seq, worker, episode = end.value["seq"], end.value["worker"], end.value["episode"]
    after = [r for r in records[1:] if r.offset > end.offset]
    where = {id(r): f"byte {r.offset - shift}, seq {r.value['seq']}" for r in after}
    same_worker = next(r for r in after if r.value["worker"] == worker)
    start = next(r for r in records[1:] if r.value["kind"] == "episode.start"
                 and r.value["episode"] == episode)
    worker_end = next(r for r in after if r.value["kind"] == "worker.end"
                      and r.value["worker"] == worker)
    run_end = records[-1]
    played = worker_end.value["episodes"]
    return [
        f"{where[id(after[0])]}: seq {seq + 1} follows seq {seq - 1}: 1 missing (seq {seq})",
        f"{where[id(same_worker)]}: worker {worker}: wseq {end.value['wseq'] + 1} follows wseq "
        f"{end.value['wseq'] - 1}: 1 missing (wseq {end.value['wseq']})",
        f"byte {start.offset}, seq {start.value['seq']}: episode {episode} has an episode.start "
        "but no episode.end",
        f"{where[id(worker_end)]}: worker {worker}: worker.end says episodes={played}, the log "
        f"holds {played - 1} episode.end records of worker {worker}",
        f"{where[id(run_end)]}: run.end says episodes={run_end.value['episodes']}, the log holds "
        f"{run_end.value['episodes'] - 1} episode.end records not aborted",
    ]


class TestValidate:
    @pytest.mark.parametrize("run", ["cartpole", "packed", "failing"])
    def test_a_recorded_log_is_valid(self, runs, run):
        """A run's log, aborted episodes included, is valid: exit 0 and a one-line verdict
        with its record count and size."""
        path = runs[run] / "events.msgpack"
        code, lines = validate_lines(runs[run])
        records, events = len(read_raw(path)) - 1, len(list(read_events(path)))
        read = f"{records:,} records, {path.stat().st_size:,} bytes"
        assert code == 0
        assert lines == [f"{path}: valid ({read})" if events == records else
                         f"{path}: valid ({events:,} events in {read})"]
        assert events > records if run == "packed" else events >= records

    def test_truncated_tail(self, log):
        """A log cut in the middle of its last record: the tail's offset and size, and the
        missing run.end."""
        records = read_raw(log)
        last = records[-1]
        cut = last.offset + (last.end - last.offset) // 2
        log.write_bytes(log.read_bytes()[:cut])
        code, lines = validate_lines(log)
        assert code == 1
        assert lines == [
            f"byte {last.offset}: truncated tail: the last {cut - last.offset} bytes are a record "
            "cut short (the run crashed, or the log is still being written)",
            "no run.end: the run did not finish (it crashed or is still running), or the log is "
            "cut short",
            f"{log}: INVALID: 2 problems ({len(records) - 2:,} records, {cut:,} bytes; "
            f"{cut - last.offset} bytes could not be read)",
        ]

    def test_flipped_byte_in_the_middle(self, log):
        """A flipped first byte of the episode.end nearest the middle of the file: the bytes
        that could not be read, where reading resumed, and what the lost record leaves
        missing (seq, wseq, the episode's end, the counts of worker.end and run.end)."""
        records = read_raw(log)
        data = bytearray(log.read_bytes())
        hit = nearest_middle(records, "episode.end", len(data))
        data[hit.offset] ^= 0xFF  # a map header (0x8N) becomes a positive int (0x7N)
        log.write_bytes(data)
        code, lines = validate_lines(log)
        assert code == 1
        assert lines[:-1] == [
            f"byte {hit.offset}: a msgpack int ({data[hit.offset]}) where a record map starts: "
            f"bytes {hit.offset}..{hit.end} ({hit.end - hit.offset} bytes) could not be read; "
            f"reading resumed at byte {hit.end}",
            *lost_episode_end(records, hit, shift=0),
        ]
        assert lines[-1].endswith(f"INVALID: 6 problems ({len(records) - 2:,} records, "
                                  f"{len(data):,} bytes; {hit.end - hit.offset} bytes could not "
                                  "be read)")

    def test_flipped_byte_in_a_string(self, log):
        """A flipped byte inside a record's kind (no longer UTF-8) is reported with the
        decoder's error, and reading resumes at the next record."""
        records = read_raw(log)
        data = bytearray(log.read_bytes())
        hit = nearest_middle(records, "episode.end", len(data))
        kind_at = data.index(b"\xa4kind\xabepisode.end", hit.offset) + len(b"\xa4kind\xab")
        data[kind_at] ^= 0xFF
        log.write_bytes(data)
        code, lines = validate_lines(log)
        assert code == 1
        assert lines[0].startswith(f"byte {hit.offset}: undecodable bytes (UnicodeDecodeError: ")
        assert lines[0].endswith(f": bytes {hit.offset}..{hit.end} ({hit.end - hit.offset} bytes) "
                                 f"could not be read; reading resumed at byte {hit.end}")
        assert lines[1:-1] == lost_episode_end(records, hit, shift=0)

    def test_missing_episode_end(self, log, tmp_path):
        """An episode.end removed: the seq and wseq gaps, the episode started without an end,
        and the counts of worker.end and run.end that no longer match."""
        records = read_raw(log)
        gone = nearest_middle(records, "episode.end", log.stat().st_size)
        damaged = without(log, gone, tmp_path / "damaged.msgpack")
        code, lines = validate_lines(damaged)
        assert code == 1
        assert lines[:-1] == lost_episode_end(records, gone, shift=gone.end - gone.offset)
        assert lines[-1] == (f"{damaged}: INVALID: 5 problems ({len(records) - 2:,} records, "
                             f"{damaged.stat().st_size:,} bytes)")

    def test_missing_step_batch(self, log, tmp_path):
        """A step.batch removed: the episode's length disagrees with its batches, and
        run.end's step count with the log's."""
        records = read_raw(log)
        gone = nearest_middle(records, "step.batch", log.stat().st_size)
        episode, steps = gone.value["episode"], gone.value["n"]
        end = next(r for r in records[1:] if r.value["kind"] == "episode.end"
                   and r.value["episode"] == episode)
        run_end = records[-1]
        shift = gone.end - gone.offset
        code, lines = validate_lines(without(log, gone, tmp_path / "damaged.msgpack"))
        assert code == 1
        assert f"byte {end.offset - shift}, seq {end.value['seq']}: episode {episode}: " \
               f"episode.end says length {end.value['length']}, its step.batch records hold " \
               f"{end.value['length'] - steps} steps" in lines
        assert lines[-2] == (f"byte {run_end.offset - shift}, seq {run_end.value['seq']}: "
                             f"run.end says steps={run_end.value['steps']}, the log holds "
                             f"{run_end.value['steps'] - steps} steps in its step.batch records")

    def test_record_against_its_schema(self, log):
        """An episode.end rewritten with a negative wall_time and an unknown key: both schema
        violations are named with the record's offset and seq (the episode still ends)."""
        records = read_raw(log)
        changed = nearest_middle(records, "episode.end", log.stat().st_size)
        bad = dict(changed.value, wall_time=-1.0, surprise=1)
        data = log.read_bytes()
        log.write_bytes(data[:changed.offset] + msgpack.packb(bad) + data[changed.end:])
        code, lines = validate_lines(log)
        where = f"byte {changed.offset}, seq {changed.value['seq']}"
        assert code == 1
        assert sorted(lines[:-1]) == [
            f"{where}: episode.end record at wall_time: -1.0 is less than the minimum of 0",
            f"{where}: episode.end record: Additional properties are not allowed ('surprise' "
            "was unexpected)",
        ]


    def test_packed_episodes_are_checked_as_the_events_they_stand_for(self, runs, tmp_path):
        """A packed record whose lengths do not add up to its steps is named, with its offset
        and seq, and so is what its lost episodes leave missing; the records after it are
        read on."""
        log = Path(shutil.copy(runs["packed"] / "events.msgpack", tmp_path / "events.msgpack"))
        records = read_raw(log)
        changed = nearest_middle(records, "episodes", log.stat().st_size)
        value = changed.value
        lengths = [value["length"][0] + 1] + value["length"][1:]
        data = log.read_bytes()
        log.write_bytes(data[:changed.offset] + msgpack.packb(dict(value, length=lengths))
                        + data[changed.end:])
        code, lines = validate_lines(log)
        assert code == 1
        assert lines[0] == (f"byte {changed.offset}, seq {value['seq']}: episodes column "
                            f"'action' does not hold a row for each of its "
                            f"{sum(lengths)} steps")
        first, after = value["seq"] + 1, value["seq"] + 3 * value["n"]
        assert any(f"seq {after} follows seq {value['seq']}: {after - first} missing (seq "
                   f"{first}..{after - 1})" in line for line in lines)
        with pytest.raises(CodecError, match=f"malformed record before byte {changed.end}: "
                           "episodes column 'action' does not hold a row"):
            list(read_events(log))  # a reader of events one by one stops there, and says why

    def test_a_packed_log_reads_as_the_same_events(self, runs):
        """The packed run's log validates, and inspect finds in it what it finds in the same
        run recorded a record an event: the same episodes, steps, returns and seeds."""
        packed, plain = (inspect_json(runs[name] / "events.msgpack", "--no-plot")
                         for name in ("packed", "cartpole"))
        for key in ("episodes", "steps", "statuses", "return", "length", "seeds",
                    "observation_space", "action_space", "problems"):
            assert packed[key] == plain[key], key
        kinds = {record.value["kind"] for record in read_raw(runs["packed"] / "events.msgpack")[1:]}
        assert "episodes" in kinds


class TestInspect:
    def test_run_directory_summary(self, runs):
        """The summary of a run directory agrees with its event log and its stats.json."""
        run = runs["cartpole"]
        summary = inspect_json(run, "--no-plot")
        events = list(read_events(run / "events.msgpack"))
        start, end = events[0], events[-1]
        ends = [e for e in events if e.KIND == "episode.end"]
        stats = Statistics.load(run / "stats.json")
        assert summary["artifact"] == "run directory" and summary["problems"] == []
        assert (summary["run_id"], summary["env"], summary["run_status"]) == (
            start.run_id, "CartPole-v1", "completed")
        assert summary["episodes"] == len(ends) == end.episodes == 20
        assert summary["steps"] == end.steps == sum(e.length for e in ends)
        assert summary["statuses"] == {
            status: sum(e.status == status for e in ends)
            for status in ("terminated", "truncated", "aborted", "incomplete")}
        assert summary["return"]["mean"] == pytest.approx(
            stats.get_stats_value("episode_return", name="mean"))
        assert summary["seeds"]["env"] == {"count": 20, "distinct": 20, "none": 0,
                                           "min": min(episode_seeds(start.env_seeds)),
                                           "max": max(episode_seeds(start.env_seeds))}
        assert summary["observation_space"].startswith("Box(")
        assert summary["action_space"] == "Discrete(2)"
        assert {w: c["episodes"] for w, c in summary["per_worker"].items()} == {
            str(w): sum(e.worker == w for e in ends) for w in (0, 1)}
        assert set(summary["files"]) == {"config.yaml", "events.msgpack", "trajectories.h5",
                                         "stats.json", "run.jsonl"}

    def test_trajectories_agree_with_the_event_log(self, runs):
        """trajectories.h5 alone gives the same episodes, statuses, returns, seeds and
        per-worker counts as the event log."""
        run = runs["cartpole"]
        from_log = inspect_json(run / "events.msgpack", "--no-plot")
        from_file = inspect_json(run / "trajectories.h5", "--no-plot")
        assert from_file["artifact"] == "trajectories" and from_log["artifact"] == "event log"
        for key in ("run_id", "episodes", "steps", "statuses", "return", "length", "seeds",
                    "per_worker", "observation_space", "action_space", "problems"):
            assert from_file[key] == from_log[key], key

    def test_aborted_episodes(self, runs):
        """A run with aborted episodes: its status counts, seeds and run status."""
        summary = inspect_json(runs["failing"], "--no-plot")
        assert summary["run_status"] == "failed" and summary["problems"] == []
        assert summary["statuses"] == {"terminated": 2, "truncated": 0, "aborted": 2,
                                       "incomplete": 0}
        assert summary["per_worker"] == {"0": {"episodes": 4, "steps": 14, "aborted": 2}}
        assert summary["seeds"]["env"] == {"count": 4, "distinct": 4, "none": 0, "min": 1,
                                           "max": 4}

    def test_tables_and_the_default_plot(self, runs, tmp_path):
        """Without options: readable tables, and returns.png in the run directory, a real PNG
        of the plot's size with the line drawn."""
        run = Path(shutil.copytree(runs["cartpole"], tmp_path / "run"))
        done = eventroll("inspect", run)
        assert done.returncode == 0, done.stderr
        for text in ("run directory", "CartPole-v1", "20 ended of 20", "terminated",
                     "per worker", "no problems found", str(run / "returns.png")):
            assert text in done.stdout, text
        plot = run / "returns.png"
        assert plot.read_bytes()[:8] == PNG_SIGNATURE and plot.stat().st_size > 5000
        with Image.open(plot) as image:
            assert image.format == "PNG" and image.size == PLOT_SIZE
            colours = dict((colour, n) for n, colour in image.convert("RGB").getcolors(1 << 20))
        assert colours.get(LINE, 0) > 100  # the line and its points

    def test_plot_option(self, runs, tmp_path):
        """--plot writes where asked; --no-plot writes nothing."""
        plot = tmp_path / "plots" / "cartpole.png"
        plot.parent.mkdir()
        summary = inspect_json(runs["failing"] / "events.msgpack", "--plot", plot)
        assert summary["plot"] == str(plot)
        with Image.open(plot) as image:
            image.verify()
        log = Path(shutil.copy(runs["failing"] / "events.msgpack", tmp_path / "events.msgpack"))
        assert "plot" not in inspect_json(log, "--no-plot")
        assert not (tmp_path / "returns.png").exists()

    def test_plot_of_many_episodes_spans_their_returns(self, tmp_path):
        """100,000 returns alternating 0 and 100, given as an array: every column of the line
        spans from 0 to 100 (each pixel column's lowest and highest return)."""
        import numpy as np

        index = np.arange(100_000)
        plot_returns(np.column_stack([index, np.where(index % 2, 100.0, 0.0)]),
                     tmp_path / "many.png")
        with Image.open(tmp_path / "many.png") as image:
            pixels = np.asarray(image.convert("RGB"))
        line = np.all(pixels == LINE, axis=2)
        rows = np.flatnonzero(line[:, PLOT_SIZE[0] // 2])
        assert image.size == PLOT_SIZE and rows.max() - rows.min() > 300  # 0 to 100: 342 px

    def test_plot_without_episodes(self, tmp_path):
        """The plot of no returns is still a PNG of the plot's size."""
        plot_returns([], tmp_path / "empty.png")
        with Image.open(tmp_path / "empty.png") as image:
            assert image.size == PLOT_SIZE

    def test_damaged_log(self, log, tmp_path):
        """A log that lost an episode.end is summarised as far as it reads, with the same
        problems validate finds."""
        records = read_raw(log)
        gone = nearest_middle(records, "episode.end", log.stat().st_size)
        damaged = without(log, gone, tmp_path / "damaged.msgpack")
        summary = inspect_json(damaged, "--no-plot")
        _, lines = validate_lines(damaged)
        assert summary["problems"] == lines[:-1]
        assert summary["episodes"] == 19 and summary["episodes_without_end"] == 1
        done = eventroll("inspect", damaged, "--no-plot")
        assert "19 ended of 20, 1 started without an end" in done.stdout
        assert "problems (5):" in done.stdout

    def test_truncated_log(self, log):
        """A log cut inside its last record: every episode is there, the run unfinished."""
        last = read_raw(log)[-1]
        log.write_bytes(log.read_bytes()[:last.offset + 3])
        summary = inspect_json(log, "--no-plot")
        assert summary["run_status"] == "unfinished" and summary["episodes"] == 20
        assert summary["unread_bytes"] == 3
        assert summary["problems"][0].startswith(f"byte {last.offset}: truncated tail: the last "
                                                 "3 bytes")


def test_a_log_of_format_1_with_its_seeds_as_arrays_still_reads(runs, tmp_path):
    """Logs written before run.start carried derived seeds as a map (format 1: an array of
    a seed an episode) validate, inspect and replay as before."""
    path = runs["cartpole"] / "events.msgpack"
    records, data = read_raw(path), path.read_bytes()
    header, start = records[0].value, records[1].value
    seeds = {key: np.asarray(episode_seeds(start[key])) for key in ("env_seeds", "agent_seeds")}
    assert seeds["env_seeds"].dtype == np.uint32 and len(seeds["env_seeds"]) == 20
    old = tmp_path / "old"
    old.mkdir()
    (old / "events.msgpack").write_bytes(
        codec.encode({**header, "version": 1}) + codec.encode({**start, **seeds})
        + data[records[1].end:])
    code, lines = validate_lines(old)
    assert code == 0 and lines[-1].startswith(f"{old / 'events.msgpack'}: valid")
    assert inspect_json(old, "--no-plot")["seeds"] == inspect_json(runs["cartpole"],
                                                                     "--no-plot")["seeds"]
    [start_again] = [e for e in read_events(old / "events.msgpack") if e.KIND == "run.start"]
    assert list(episode_seeds(start_again.env_seeds)) == seeds["env_seeds"].tolist()
    done = eventroll("replay", old, "--out", tmp_path / "replayed")
    assert done.returncode == 0, done.stderr


class TestBadInput:
    @pytest.mark.parametrize("command", ["inspect", "validate"])
    def test_missing_path(self, tmp_path, command):
        """A path that does not exist: one line naming it, exit 2."""
        done = eventroll(command, tmp_path / "nowhere")
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.splitlines() == [
            f"eventroll {command}: error: {tmp_path / 'nowhere'}: no such file or directory; "
            "pass a run directory" + (", an event log (events.msgpack) or a trajectory file "
                                      "(trajectories.h5)" if command == "inspect"
                                      else " or an event log (events.msgpack)")]

    @pytest.mark.parametrize("command", ["inspect", "validate"])
    @pytest.mark.parametrize("name, content", [
        ("config.yaml", b"runner:\n  n_episodes: 2\n"),
        ("empty.msgpack", b""),
        ("other.msgpack", msgpack.packb({"format": "something-else", "version": 1})),
    ], ids=["yaml", "empty", "another-format"])
    def test_not_an_event_log(self, tmp_path, command, name, content):
        """A file that is not an event log: one line naming it and what to pass, exit 2."""
        path = tmp_path / name
        path.write_bytes(content)
        done = eventroll(command, path)
        assert done.returncode == 2
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"eventroll {command}: error: {path} ")
        assert "not an eventroll event log" in line or "is empty: not an event log" in line
        assert "pass an events.msgpack file" in line

    def test_validate_an_hdf5_file(self, runs):
        """validate names an HDF5 file as such and points to inspect."""
        path = runs["cartpole"] / "trajectories.h5"
        done = eventroll("validate", path)
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"eventroll validate: error: {path} is not an eventroll event log but an HDF5 file; "
            "pass an events.msgpack file that eventroll wrote (eventroll inspect summarises "
            "trajectory files)"]

    @pytest.mark.parametrize("command", ["inspect", "validate"])
    def test_directory_without_artifacts(self, tmp_path, command):
        """A directory that holds no run: one line, exit 2."""
        done = eventroll(command, tmp_path)
        assert done.returncode == 2
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"eventroll {command}: error: {tmp_path} holds ")

    def test_unwritable_plot(self, runs, tmp_path):
        """A plot path in a missing directory: one line naming it and the options, exit 2."""
        plot = tmp_path / "missing" / "plot.png"
        done = eventroll("inspect", runs["failing"], "--plot", plot)
        assert done.returncode == 2
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"eventroll inspect: error: cannot write the plot to {plot}: ")
        assert line.endswith("pass --plot PNG or --no-plot")

    @pytest.mark.parametrize("command, text", [("inspect", "--no-plot"),
                                               ("validate", "--max-problems")])
    def test_help(self, command, text):
        """--help prints the usage and exits 0."""
        done = eventroll(command, "--help")
        assert done.returncode == 0
        assert done.stdout.startswith(f"usage: eventroll {command} PATH") and text in done.stdout


def _drop(name: str):
    return lambda file: file.__delitem__(name)


def _status_code(code: int):
    def change(file: Any) -> None:
        status = file["episodes/status"][()]
        status[1] = code
        del file["episodes/status"]
        file.create_dataset("episodes/status", data=status)
    return change


@pytest.mark.parametrize("damage, inspect_says, export_says", [
    (_drop("episodes/length"), "it lacks the dataset episodes/length", None),
    (_drop("observations"), "it lacks the dataset observations", None),
    (lambda file: file.attrs.__setitem__("action_space", "x"), "damaged trajectory file: ", None),
    (_status_code(9), None, "has the status code 9, none of the 4 known"),
], ids=["index-dataset", "step-dataset", "space-attribute", "status-code"])
def test_a_damaged_trajectory_file(runs, tmp_path, damage, inspect_says, export_says):
    """A flat file that lacks a dataset, holds an attribute of the wrong type or a status
    code beyond the known ones: `inspect` and `export minari` say so on one line naming the
    file (exit 2), or `inspect` lists the problem; none ends in a traceback."""
    import h5py

    run = tmp_path / "run"
    run.mkdir()
    path = run / "trajectories.h5"
    shutil.copy(runs["cartpole"] / "trajectories.h5", path)
    with h5py.File(path, "a") as file:
        damage(file)
    inspected = eventroll("inspect", path, "--no-plot")
    exported = eventroll("export", "minari", run, "--dataset-id", "tt/damaged-v0",
                         "--out", tmp_path / "datasets")
    for done, says, command in ((inspected, inspect_says or export_says, "inspect"),
                                (exported, export_says or inspect_says, "export")):
        if command == "inspect" and inspect_says is None:  # listed among the problems
            assert done.returncode == 0, done.stderr
            assert "episode status codes [9] are none of the 4 known" in done.stdout
            continue
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"eventroll {command}: error: {path} is a damaged trajectory "
                               "file: ") and says in line, line


def test_validation_keeps_little_of_each_ended_episode(tmp_path):
    """What the checks keep of an ended episode is a row of columns: 111 bytes an episode in
    all here (run.start's seeds included), 474 when they kept a record object an episode.
    validate and inspect of a long log stay small."""
    import tracemalloc

    from eventroll import SequentialRunner
    from eventroll.validation import LogChecker, Report, read_log

    n = 4000
    result = SequentialRunner(n_episodes=n, console=None, env_base_seed=1, agent_base_seed=2) \
        .run_with({"name": "eventroll.testing:failing_env", "length": 1},
                  run_dir=str(tmp_path / "run"))
    assert result.ok
    report = Report(result.event_log)
    tracemalloc.start()
    try:
        checker = LogChecker(report, schemas=False)
        for offset, record in read_log(result.event_log, report):
            checker.check(offset, record)
        checker.finish()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert report.valid and len(checker.ended) == n and not checker.episodes
    assert held / n < 200, f"{held / n:.0f} bytes an episode"

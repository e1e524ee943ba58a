"""A replay in parts (``eventroll.replay_parts``): the log cut at records, each range
replayed in a forked process, the parts joined; what it builds is what one replay builds,
or it steps aside and the log is replayed whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from eventroll import ParallelRunner, SequentialRunner, codec
from eventroll.errors import CodecError
from eventroll.recorders.eventlog import EventLogReader, record_starts
from eventroll.recording import RecordingOptions, recorder_specs, replay_run
from eventroll.replay_parts import replay_in_parts
from eventroll.stats import StatsAggregator
from tests.integration.test_plain_records import (assert_same_datasets, datasets, records,
                                                  write_log)

RECORDING = dict(infos=True, next_observations=True, logits=True)


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> str:
    """Two workers interleaved, every option that adds a dataset or a heap."""
    run_dir = str(tmp_path_factory.mktemp("cartpole") / "run")
    ParallelRunner(n_episodes=300, n_processes=2, max_episode_steps=40, console=None,
                   env_base_seed=5, agent_base_seed=6, recording=RECORDING).run_with(
        "CartPole-v1", agent="eventroll.testing:LogitsPolicy", run_dir=run_dir)
    return run_dir


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> str:
    """Aborted episodes, and a worker killed twice: an episode lost, then aborted."""
    run_dir = str(tmp_path_factory.mktemp("killed") / "run")
    env = {"name": "eventroll.testing:failing_env", "length": 5, "fail_step": 2,
           "fail_every": 3, "kill_seed": 10}
    ParallelRunner(n_episodes=200, n_processes=2, retries=1, console=None,
                   explicit_env_seeds=list(range(1, 201)), agent_base_seed=0).run_with(
        env, run_dir=run_dir)
    return run_dir


def artifacts(out_dir: str) -> tuple[dict, dict]:
    with open(os.path.join(out_dir, "stats.json")) as file:
        return datasets(os.path.join(out_dir, "trajectories.h5")), json.load(file)


def assert_same(found: tuple[dict, dict], expected: tuple[dict, dict]) -> None:
    """The same datasets (values and attributes) and the same statistics."""
    assert_same_datasets(found[0], expected[0])
    assert found[1] == expected[1]


def same_reports(report: dict, out_dir: str) -> dict:
    """The recorders' reports with ``out_dir`` written as DIR."""
    return json.loads(json.dumps(report["recorders"]).replace(out_dir, "DIR"))


def specs_for(run_dir: str, out_dir: str, **options: Any) -> list:
    [start] = (record for record in records(os.path.join(run_dir, "events.msgpack"))
               if record["kind"] == "run.start")
    os.makedirs(out_dir, exist_ok=True)
    recording = RecordingOptions.from_config(start["config"]["recording"], event_log=False,
                                             **options)
    return recorder_specs(recording, out_dir, start["run_id"], start["env"])


def replay_both(run_dir: str, tmp_path: Any, parts: int) -> tuple[dict, dict]:
    """One replay and one in ``parts`` parts, checked equal in artifacts and reports."""
    whole, cut = str(tmp_path / "whole"), str(tmp_path / f"parts{parts}")
    expected = replay_run(run_dir, whole, parts=1)
    found = replay_run(run_dir, cut, parts=parts)
    assert_same(artifacts(cut), artifacts(whole))
    assert same_reports(found, cut) == same_reports(expected, whole)
    assert (found["events"], found["steps"]) == (expected["events"], expected["steps"])
    assert sorted(os.listdir(cut)) == ["stats.json", "trajectories.h5"]
    return expected, found


class TestSameAsOneReplay:
    @pytest.mark.parametrize("parts", [2, 3, 5])
    def test_a_parallel_run_with_every_option(self, cartpole_run, tmp_path, parts):
        """Heaps (infos, logits, reset infos), next and final observations, the index:
        the file built in parts equals the one built whole, and both the live one."""
        _, found = replay_both(cartpole_run, tmp_path, parts)
        assert found["parts"] == parts
        assert_same(artifacts(str(tmp_path / f"parts{parts}")), artifacts(cartpole_run))

    @pytest.mark.parametrize("parts", [2, 4, 7])
    def test_aborted_and_lost_episodes(self, killed_run, tmp_path, parts):
        _, found = replay_both(killed_run, tmp_path, parts)
        assert found["parts"] == parts

    def test_a_cut_inside_every_kind_of_state(self, killed_run, tmp_path):
        """With a small window, each of many cuts either joins (the parts agree on the
        episodes open there) or steps aside; the result is the same either way."""
        log = os.path.join(killed_run, "events.msgpack")
        expected = replay_run(killed_run, str(tmp_path / "whole"), parts=1)
        joined = 0
        for window in (0, 600, 4000, 1 << 20):  # the last holds the whole log: they join
            out = str(tmp_path / f"window{window}")
            result = replay_in_parts(log, specs_for(killed_run, out), 6, window=window)
            if result is None:
                assert os.listdir(out) == []  # nothing left behind
                continue
            joined += 1
            assert_same(artifacts(out), artifacts(str(tmp_path / "whole")))
            assert same_reports(result, out) == same_reports(expected, str(tmp_path / "whole"))
        assert joined >= 1

    def test_an_episode_open_before_the_window_steps_aside(self, tmp_path):
        """Three episodes of 3,000 steps, one after the other: the middle one is open at
        the cut. Without a window the later part cannot know it, the parts disagree, and
        the log is left to a whole replay; with one, they join."""
        run_dir = str(tmp_path / "run")
        SequentialRunner(n_episodes=3, console=None, env_base_seed=1, agent_base_seed=2).run_with(
            {"name": "eventroll.testing:failing_env", "length": 3000}, run_dir=run_dir)
        log = os.path.join(run_dir, "events.msgpack")
        out = str(tmp_path / "out")
        assert replay_in_parts(log, specs_for(run_dir, out), 2, window=0) is None
        assert os.listdir(out) == []
        assert replay_in_parts(log, specs_for(run_dir, out), 2)["parts"] == 2
        assert_same(artifacts(out), artifacts(run_dir))

    def test_the_window_from_the_log_s_first_records(self, cartpole_run, tmp_path):
        """Episodes that end within the sample: a window of four times their widest spread,
        2 MiB at least. An episode that began in the sample's first half and is still open
        at its end (long episodes of large observations, whose parts would not join): no
        window, and no parts."""
        from eventroll.replay_parts import WINDOW_BYTES, sampled_window

        assert sampled_window(os.path.join(cartpole_run, "events.msgpack")) == WINDOW_BYTES
        run_dir = str(tmp_path / "run")
        SequentialRunner(n_episodes=2, console=None, env_base_seed=1, agent_base_seed=2).run_with(
            {"name": "eventroll.testing:failing_env", "length": 3000}, run_dir=run_dir)
        log = os.path.join(run_dir, "events.msgpack")
        assert sampled_window(log) == WINDOW_BYTES  # the whole log: both episodes ended
        assert sampled_window(log, sample=os.path.getsize(log) // 4) is None

    def test_custom_statistics_and_the_minari_layout_are_replayed_whole(self, cartpole_run,
                                                                        tmp_path):
        log = os.path.join(cartpole_run, "events.msgpack")
        custom = {"score": {"event": "score", "field": "value"}}
        for out, options in ((str(tmp_path / "custom"), {"custom_stats": custom}),
                             (str(tmp_path / "minari"), {"layout": "minari"})):
            assert replay_in_parts(log, specs_for(cartpole_run, out, **options), 2) is None
            assert os.listdir(out) == []


class TestOddLogs:
    def test_a_truncated_tail(self, cartpole_run, tmp_path):
        """A log cut mid-record (a crash): the same episodes, and the same ones never ended."""
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        with open(os.path.join(cartpole_run, "events.msgpack"), "rb") as source:
            data = source.read()
        (run_dir / "events.msgpack").write_bytes(data[:len(data) - 700])
        expected, _ = replay_both(str(run_dir), tmp_path, 2)
        assert "never ended" in expected["recorders"]["trajectories"]["errors"][-1]

    def test_an_episode_that_ends_in_both_parts(self, cartpole_run, tmp_path):
        """An episode.end repeated in the second half: the statistics leave the second out,
        which a part cannot know, so the log is replayed whole."""
        log = os.path.join(cartpole_run, "events.msgpack")
        kept = records(log)
        [end] = [record for record in kept[:50] if record["kind"] == "episode.end"][:1]
        kept.insert(len(kept) - 20, end)
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        write_log(log, str(run_dir / "events.msgpack"), kept)
        expected, found = replay_both(str(run_dir), tmp_path, 2)
        assert found["parts"] == 1
        assert "an episode.end for an episode that had ended: left out" in \
            json.loads((tmp_path / "whole/stats.json").read_text())["problems"]

    @pytest.mark.parametrize("where", [1, 3])
    def test_a_malformed_record_fails_as_one_replay_fails(self, cartpole_run, tmp_path, where):
        """A record's first byte made one msgpack never uses, in the first quarter (before
        the cut, which the cutting steps through) or the last: the same one-line error at
        the same offset."""
        log = os.path.join(cartpole_run, "events.msgpack")
        offset = record_starts(log, [os.path.getsize(log) * where // 4])[0]
        data = bytearray(open(log, "rb").read())
        data[offset] = 0xC1
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        (run_dir / "events.msgpack").write_bytes(bytes(data))
        messages = []
        for parts in (1, 2):
            with pytest.raises(CodecError) as raised:
                replay_run(str(run_dir), str(tmp_path / f"out{parts}"), parts=parts)
            messages.append(str(raised.value))
        assert messages[0] == messages[1] and f"at byte {offset}" in messages[0]


class TestReadingARange:
    def test_record_starts_and_records_between(self, cartpole_run):
        log = os.path.join(cartpole_run, "events.msgpack")
        reader = EventLogReader(log, arrays=False)
        offsets = []
        for _ in reader.records():
            offsets.append(reader._consumed)
        offsets = [offsets[0] - len(codec.encode(records(log)[0]))] + offsets[:-1]
        every = list(EventLogReader(log, arrays=False).records())
        size = os.path.getsize(log)
        assert record_starts(log, [0, offsets[3], offsets[3] + 1, size]) == \
            [offsets[0], offsets[3], offsets[4], size]
        for first, last in ((0, 10), (5, 17), (6, 6), (100, len(every))):
            stop = offsets[last] if last < len(every) else None
            got = list(EventLogReader(log, arrays=False).records(offsets[first], stop))
            assert got == every[first:last]


def test_the_command_says_how_many_processes(cartpole_run, tmp_path):
    done = subprocess.run([sys.executable, "-m", "eventroll.cli", "replay", cartpole_run,
                           "--out", str(tmp_path / "out"), "--parts", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "steps/s, 2 processes) into" in done.stdout
    done = subprocess.run([sys.executable, "-m", "eventroll.cli", "replay", cartpole_run,
                           "--parts", "none"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("eventroll replay: error: argument --parts: takes a number "
                                   "of processes from 1 to 64, got 'none' (see `eventroll "
                                   "replay --help`)")


def test_statistics_joined_at_every_cut(killed_run):
    """An aggregator of a log's first records joined with one of the rest (through msgpack)
    gives what one aggregator of all of them gives, at every cut where it joins; where it
    does not, an episode ended on both sides."""
    from eventroll.recorders.eventlog import read_events

    typed = list(read_events(os.path.join(killed_run, "events.msgpack")))
    assert any(event.KIND == "episode.lost" for event in typed)
    whole = StatsAggregator()
    for event in typed:
        whole.handle(event)
    for cut in range(0, len(typed) + 1, 7):
        first, later = StatsAggregator(), StatsAggregator()
        for event in typed[:cut]:
            first.handle(event)
        for event in typed[cut:]:
            later.handle(event)
        joined = StatsAggregator()
        assert joined.join(codec.decode(codec.encode(first.portable())))
        assert joined.join(codec.decode(codec.encode(later.portable())))
        assert joined.result() == whole.result(), cut


def test_a_log_of_packed_episodes_takes_parts_when_large(tmp_path):
    """A log of packed episodes is replayed in one process below ``min_packed_bytes`` (one
    is faster there), in parts above; the same run a record an event, in parts above
    ``min_bytes``; in parts, a packed log replays as it does whole."""
    import threading

    from eventroll.replay_parts import MAX_PARTS, default_parts, mostly_packed

    runs = {}
    for pack in (True, False):
        runs[pack] = str(tmp_path / f"run-{pack}")
        ParallelRunner(n_episodes=3000, n_processes=2, console=None, env_base_seed=1,
                       agent_base_seed=2, recording={"pack_episodes": pack}).run_with(
            "CartPole-v1", run_dir=runs[pack])
    logs = {pack: os.path.join(run, "events.msgpack") for pack, run in runs.items()}
    assert mostly_packed(logs[True]) and not mostly_packed(logs[False])
    packed_size, smallest = os.path.getsize(logs[True]), min(map(os.path.getsize, logs.values()))
    cores = min(len(os.sched_getaffinity(0)), MAX_PARTS) if threading.active_count() == 1 else 1
    assert default_parts(logs[False], min_bytes=smallest) == cores
    assert default_parts(logs[True], min_bytes=smallest) == 1
    assert default_parts(logs[True], min_bytes=smallest, min_packed_bytes=packed_size) == cores
    for parts in (2, 3):
        (tmp_path / f"packed{parts}").mkdir()
        assert replay_both(runs[True], tmp_path / f"packed{parts}", parts)[1]["parts"] == parts


def test_parts_by_default(tmp_path):
    """One a core for a log of MIN_BYTES or more, in a process without threads; one
    otherwise (a forked child could wait forever for a lock another thread held)."""
    import threading

    from eventroll.replay_parts import MAX_PARTS, MIN_BYTES, default_parts

    small, large = tmp_path / "small.msgpack", tmp_path / "large.msgpack"
    small.write_bytes(b"\x80")
    with open(large, "wb") as file:
        file.truncate(MIN_BYTES)
    cores = min(len(os.sched_getaffinity(0)), MAX_PARTS)
    assert default_parts(str(small)) == 1
    assert default_parts(str(large)) == (cores if threading.active_count() == 1 else 1)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(30,))
    thread.start()
    try:
        assert default_parts(str(large)) == 1
    finally:
        stop.set()
        thread.join(5)

"""The HDF5 trajectory recorder, flat layout: live runs, every space kind, crashes, readers."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
from typing import Any

import h5py
import numpy as np
import pytest

from eventroll import ParallelRunner, SequentialRunner, codec, read_events
from eventroll.episodes import assemble
from eventroll.errors import ConfigError, EventError
from eventroll.recorders.base import replay
from eventroll.recorders.trajectories import TrajectoryRecorder
from eventroll.runners.session import RecorderSpec, Timeouts
from eventroll.stats import Statistics
from eventroll.testing import sample_spaces
from eventroll.trajectories import flat, open_trajectories
from eventroll.trajectories.record import prepend

SEEDS = dict(env_base_seed=5, agent_base_seed=6)


def assert_same(a: Any, b: Any) -> None:
    """Nested maps/lists of arrays are equal, leaf by leaf."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind in "OU" or b.dtype.kind in "OU":
            assert a.astype(str).tolist() == b.astype(str).tolist()
        else:
            assert a.shape == b.shape and np.array_equal(a, b)


def assert_matches_log(trajectories, event_log: str) -> int:
    """Every episode of the log is in the file with the same values; returns the steps."""
    episodes = assemble(read_events(event_log))
    assert sorted(trajectories.indices) == sorted(episodes)
    steps = 0
    for index, episode in episodes.items():
        recorded = trajectories[index]
        assert (recorded.env_seed, recorded.agent_seed, recorded.worker) == \
            (episode.env_seed, episode.agent_seed, episode.worker)
        assert recorded.status == episode.end.status and recorded.length == episode.length
        assert recorded.return_ == pytest.approx(episode.end.return_)
        assert_same(recorded.observations,
                    prepend(episode.reset_observation, episode.column("observation")))
        assert_same(recorded.actions, episode.column("action"))
        assert np.array_equal(recorded.rewards, episode.column("reward"))
        assert np.array_equal(recorded.terminations, episode.column("terminated"))
        assert np.array_equal(recorded.truncations, episode.column("truncated"))
        steps += recorded.length
    return steps


def assert_iterates_as_indexed(path: str, monkeypatch, window_bytes: int) -> None:
    """Iterating the file, windows of about ``window_bytes`` of step rows at a time, gives
    every episode in index order, field for field as reading each by its index does."""
    monkeypatch.setattr(flat, "WINDOW_BYTES", window_bytes)
    with open_trajectories(path) as trajectories:
        listed = list(trajectories)
        assert [t.index for t in listed] == sorted(trajectories.indices)
        for iterated in listed:
            indexed = trajectories[iterated.index]
            for field in dataclasses.fields(indexed):
                assert_same(getattr(iterated, field.name), getattr(indexed, field.name))


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("traj") / "run"
    runner = ParallelRunner(n_episodes=150, n_processes=2, recording={"next_observations": True,
                                                                      "infos": True}, **SEEDS)
    return runner.run_with("CartPole-v1", run_dir=str(run_dir))


class TestFlatLayout:
    def test_parallel_run_file_equals_event_log(self, parallel_run):
        """A 2-worker run's trajectories.h5 holds every episode of its event log, value for value."""
        assert parallel_run.ok
        with open_trajectories(parallel_run.run_dir) as trajectories:
            assert len(trajectories) == 150
            assert assert_matches_log(trajectories, parallel_run.event_log) == parallel_run.steps

    def test_file_log_and_statistics_agree(self, parallel_run):
        """trajectories.h5, events.msgpack and stats.json hold the same episodes and steps, and
        the returns in stats.json are those of the sums of rewards in the HDF5 file."""
        stats = Statistics.load(parallel_run.stats)
        with open_trajectories(parallel_run.run_dir) as trajectories:
            returns = np.array([episode.rewards.sum() for episode in trajectories])
            lengths = np.array([episode.length for episode in trajectories])
        assert stats.get_stats_value("episode_count") == len(returns) == 150
        assert stats.get_stats_value("step_count") == lengths.sum() == parallel_run.steps
        assert stats.get_stats_value("aborted_episode_count") == 0
        for name, value in (("mean", returns.mean()), ("std", returns.std()), ("min", returns.min()),
                            ("max", returns.max()), ("median", np.median(returns))):
            assert stats.get_stats_value("episode_return", "epoch", name) == pytest.approx(value)
        assert stats.get_stats_value("episode_length", "epoch", "mean") == pytest.approx(lengths.mean())

    @pytest.mark.parametrize("window_bytes", [1, 2000, 1 << 24])
    def test_iterating_reads_windows_equal_to_each_episode(self, parallel_run, monkeypatch,
                                                           window_bytes):
        """Two workers' episodes are stored in the order they ended, not in index order:
        windows of one episode, of a few, and of all give what reading each alone gives."""
        assert_iterates_as_indexed(parallel_run.run_dir, monkeypatch, window_bytes)

    def test_returns_equal_sums_of_rewards(self, parallel_run):
        """Each episode's recorded return is the sum of its recorded rewards."""
        with open_trajectories(parallel_run.trajectories) as trajectories:
            for episode in trajectories:
                assert episode.return_ == pytest.approx(episode.rewards.sum())
                assert episode.status == "terminated" or episode.status == "truncated"

    def test_next_observations_and_infos_when_asked(self, parallel_run):
        """next_observations are the following observations; infos hold one map per step."""
        with h5py.File(parallel_run.trajectories, "r") as file:
            assert file["next_observations"].shape == file["observations"].shape
        with open_trajectories(parallel_run.trajectories) as trajectories:
            episode = trajectories[7]
            assert np.array_equal(episode.next_observations, episode.observations[1:])
            assert len(episode.infos) == episode.length and episode.reset_info == {}

    def test_flat_datasets_are_columns_with_an_episode_index(self, parallel_run):
        """Rows of the step datasets, cut by episodes/start and length, are the episodes."""
        with h5py.File(parallel_run.trajectories, "r") as file:
            starts, lengths = file["episodes/start"][:], file["episodes/length"][:]
            assert lengths.sum() == file["rewards"].shape[0] == parallel_run.steps
            assert np.array_equal(starts[1:], np.cumsum(lengths)[:-1])
            assert sorted(file["episodes/index"][:]) == list(range(150))
            assert file["observations"].shape[1:] == (4,)
            assert file["actions"].dtype == np.uint8  # Discrete(2) stored narrow
        with open_trajectories(parallel_run.trajectories) as trajectories:
            assert trajectories[0].actions.dtype == np.int64  # and read as the space's dtype

    def test_a_short_run_makes_a_small_file(self, parallel_run):
        """Chunks are small: 150 episodes take well under a kilobyte a step (HDF5 stores
        whole chunks; 512 KiB ones took 2,400 bytes a step here)."""
        # next observations and infos included; 150 bytes a step at 16 KiB chunks
        assert os.path.getsize(parallel_run.trajectories) < 300 * parallel_run.steps

    def test_offline_build_equals_live(self, parallel_run, tmp_path):
        """Rebuilding the file from the event log gives the same episodes as the live one."""
        path = str(tmp_path / "rebuilt.h5")
        replay(TrajectoryRecorder(path, next_observations=True, infos=True), parallel_run.event_log)
        with open_trajectories(path) as rebuilt, open_trajectories(parallel_run.run_dir) as live:
            assert rebuilt.indices == live.indices
            for index in live.indices:
                a, b = rebuilt[index], live[index]
                assert_same(a.observations, b.observations)
                assert_same(a.actions, b.actions)
                assert (a.status, a.return_, a.env_seed) == (b.status, b.return_, b.env_seed)

    def test_undecoded_arrays_give_the_same_file(self, parallel_run, tmp_path):
        """The recorder joins the bytes of arrays it was given undecoded (as live and
        in replay); fed the same events decoded, it writes the same datasets."""
        raw, whole = str(tmp_path / "raw.h5"), str(tmp_path / "whole.h5")
        options = dict(next_observations=True, infos=True)
        replay(TrajectoryRecorder(raw, **options), parallel_run.event_log)
        recorder = TrajectoryRecorder(whole, **options)
        for event in read_events(parallel_run.event_log):
            recorder.handle(event)
        recorder.close()
        assert datasets(raw) == datasets(whole)
        assert len(datasets(raw)) == 20  # infos, reset infos and next observations too


def datasets(path: str) -> dict[str, tuple[str, bytes]]:
    """Every dataset of an HDF5 file: its dtype and bytes."""
    found = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, item: found.update({name: (
            item.dtype.str, item[()].tobytes())}) if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.mark.parametrize("damage", ["a row short", "not an array"])
def test_an_episode_whose_batch_is_damaged_is_left_out_and_named(damage, tmp_path):
    """A step.batch whose observations do not hold its n rows, or are no array at all
    (the recorder does not decode them; it checks their head), leaves its episode out,
    whole, with the episode and column named in the report; the recorder goes on with
    the others."""
    runner = SequentialRunner(n_episodes=4, console=None, **SEEDS)
    result = runner.run_with("CartPole-v1", run_dir=str(tmp_path / "run"))
    recorder = TrajectoryRecorder(str(tmp_path / "t.h5"))
    taken = list(read_events(result.event_log, frozenset({"run.start"})))
    batches = [event for event in taken if event.KIND == "step.batch"]
    damaged = batches[1]
    damaged.observation = (codec.split_records(codec.encode(
        damaged.observation.decode()[:-1]), 1, arrays=codec.RAW)[0][0]
        if damage == "a row short" else codec.RawArray(b"\x93\xa3<f4"))
    for event in taken:
        recorder.handle(event)
    report = recorder.close()
    assert report["episodes"] == 3
    [error] = report["errors"]
    assert re.search(rf"episode {damaged.episode}: observation holds an array of shape "
                     r"\(\d+, 4\), expected" if damage == "a row short" else
                     rf"episode {damaged.episode}: malformed", error), error
    episodes = assemble(read_events(result.event_log))
    with open_trajectories(tmp_path / "t.h5") as trajectories:
        assert trajectories.indices == sorted(set(episodes) - {damaged.episode})
        for index in trajectories.indices:
            assert_same(trajectories[index].actions, episodes[index].column("action"))


@pytest.mark.parametrize("kind", sorted(sample_spaces()))
def test_every_space_kind_round_trips(kind, tmp_path, monkeypatch):
    """Observations and actions of every space kind come back from the flat file unchanged."""
    runner = SequentialRunner(n_episodes=3, recording={"infos": True}, console=None, **SEEDS)
    result = runner.run_with({"name": "eventroll.testing:space_env", "kind": kind},
                             run_dir=str(tmp_path / "run"))
    assert result.ok
    with open_trajectories(result.run_dir) as trajectories:
        assert trajectories.observation_space == sample_spaces()[kind]
        assert assert_matches_log(trajectories, result.event_log) == 12
        assert trajectories[2].infos[0] == {"t": 1} and trajectories[2].reset_info["seed"] > 0
    assert_iterates_as_indexed(result.run_dir, monkeypatch, 100)


def test_aborted_episodes_are_recorded_as_aborted(tmp_path):
    """Episodes whose env failed are in the file with status aborted and their steps so far."""
    runner = SequentialRunner(n_episodes=6, explicit_env_seeds=[0, 1, 2, 3, 4, 5], console=None)
    result = runner.run_with({"name": "eventroll.testing:failing_env", "fail_every": 2,
                              "fail_step": 2}, run_dir=str(tmp_path / "run"))
    assert not result.ok and result.aborted == 3
    with open_trajectories(result.run_dir) as trajectories:
        statuses = {i: trajectories[i].status for i in trajectories.indices}
        assert statuses == {0: "aborted", 1: "terminated", 2: "aborted", 3: "terminated",
                            4: "aborted", 5: "terminated"}
        assert trajectories[2].length == 2 and trajectories[3].length == 5
        assert_matches_log(trajectories, result.event_log)


class KillingTrajectoryRecorder(TrajectoryRecorder):
    """Writes how many episodes it has flushed to ``marker``, then SIGKILLs itself."""

    def __init__(self, path: str, marker: str, after: int, **options: Any) -> None:
        super().__init__(path, **options)
        self._marker, self._after = marker, after

    def handle(self, event) -> None:
        super().handle(event)
        self._kill_after(event.KIND)

    def handle_plain(self, record) -> None:
        super().handle_plain(record)
        self._kill_after(record["kind"])

    def _kill_after(self, kind: str) -> None:
        writer = self._writer
        if writer is not None and writer.episodes >= self._after and kind == "episode.end":
            with open(self._marker, "w") as file:
                file.write(str(writer.episodes))
            os.kill(os.getpid(), signal.SIGKILL)


class KillingRunner(ParallelRunner):
    def __init__(self, marker: str, **options: Any) -> None:
        super().__init__(**options)
        self._marker = marker

    def _recorders(self, plan):
        specs = [s for s in super()._recorders(plan) if s.name != "trajectories"]
        return specs + [RecorderSpec("trajectories", KillingTrajectoryRecorder, {
            "path": os.path.join(plan.run_dir, "trajectories.h5"), "marker": self._marker,
            "after": 40, "block_rows": 256, "flush_interval": 10.0})]


def test_sigkill_of_the_recorder_leaves_every_flushed_episode(tmp_path):
    """After a SIGKILL of the HDF5 recorder mid-run, the file opens and holds every episode
    flushed before the kill, each equal to the event log's; the run says what was lost."""
    marker = str(tmp_path / "flushed")
    runner = KillingRunner(marker, n_episodes=300, n_processes=2,
                           timeouts=Timeouts(stall=5.0, finish=10.0), **SEEDS)
    result = runner.run_with("CartPole-v1", run_dir=str(tmp_path / "run"))
    flushed = int(open(marker).read())
    assert any("trajectories" in error for error in result.errors), result.errors
    assert result.status == "failed"
    episodes = assemble(read_events(result.event_log))
    assert len(episodes) == 300  # the event log is whole
    with open_trajectories(result.run_dir) as trajectories:
        assert len(trajectories) == flushed >= 40
        for index in trajectories.indices:
            assert np.array_equal(trajectories[index].actions, episodes[index].column("action"))


def test_reader_sees_the_file_grow(tmp_path):
    """A reader opened on a file being written sees new episodes after refresh()."""
    source = SequentialRunner(n_episodes=20, record_trajectory=False, console=None, **SEEDS)
    log = source.run_with("CartPole-v1", run_dir=str(tmp_path / "src")).event_log
    path = str(tmp_path / "live.h5")
    recorder = TrajectoryRecorder(path, block_rows=1)
    events = iter(read_events(log))
    for event in events:  # up to and including the first flushed episode
        recorder.handle(event)
        if event.KIND == "episode.end":
            break
    reader = open_trajectories(path)
    assert len(reader) == 1
    for event in events:
        recorder.handle(event)
    recorder.close()
    reader.refresh()
    assert len(reader) == 20 and reader.indices == list(range(20))
    reader.close()


def test_reader_errors_name_the_file(tmp_path):
    """Opening something that is not a trajectory file says so and names it."""
    bad = tmp_path / "not.h5"
    bad.write_bytes(b"hello")
    with pytest.raises(EventError, match="not.h5"):
        open_trajectories(bad)
    with h5py.File(tmp_path / "other.h5", "w", libver="latest") as file:
        file["x"] = 1
    with pytest.raises(EventError, match="not an eventroll flat trajectory file"):
        open_trajectories(tmp_path / "other.h5")
    with pytest.raises(KeyError, match="episode 3"):
        source = SequentialRunner(n_episodes=2, console=None, **SEEDS)
        open_trajectories(source.run_with("CartPole-v1", run_dir=str(tmp_path / "r")).run_dir)[3]


def test_logits_recorded_when_asked(tmp_path):
    """With recording.logits the policy's logits of each step are in the file; a policy
    without compute_action_with_logits is refused in one line."""
    runner = ParallelRunner(n_episodes=6, recording={"logits": True}, **SEEDS)
    result = runner.run_with("CartPole-v1", agent="eventroll.testing:LogitsPolicy",
                             run_dir=str(tmp_path / "run"))
    assert result.ok
    with open_trajectories(result.run_dir) as trajectories:
        for episode in trajectories:
            assert episode.logits.shape == (episode.length, 2)
            assert np.array_equal(episode.logits.argmax(axis=1), episode.actions)
    with pytest.raises(ConfigError, match="compute_action_with_logits"):
        runner.run_with("CartPole-v1", run_dir=str(tmp_path / "random"))


def test_image_blocks_are_bounded_in_bytes(tmp_path):
    """A block of 84x84x3 frames is written once it holds about BLOCK_BYTES, not 65,536
    rows (460 MB of frames): memory stays bounded with large observations."""
    from gymnasium import spaces

    from eventroll.trajectories.flat import BLOCK_BYTES, FlatWriter, row_bytes

    frames = spaces.Box(0, 255, (84, 84, 3), np.uint8)
    writer = FlatWriter(str(tmp_path / "t.h5"), frames, spaces.Discrete(4))
    try:
        assert row_bytes(frames, spaces.Discrete(4)) >= 84 * 84 * 3
        assert writer.block_rows * 84 * 84 * 3 <= BLOCK_BYTES
        assert writer.block_rows >= 64
    finally:
        writer.close()



def test_episodes_are_found_by_index_whatever_order_they_were_written_in(tmp_path):
    """The reader finds each episode by its run index (written 7, 2, 5: read 2, 5, 7), says
    which are not there, and refuses a missing one by name."""
    from gymnasium import spaces

    from eventroll.trajectories.flat import FlatWriter
    from eventroll.trajectories.record import Trajectory

    box = spaces.Box(-1.0, 1.0, (2,), np.float32)
    path = str(tmp_path / "t.h5")
    writer = FlatWriter(path, box, spaces.Discrete(2))
    for index, length in ((7, 3), (2, 1), (5, 2)):
        observations = np.full((length + 1, 2), index / 10, np.float32)
        writer.add(Trajectory(
            index=index, worker=0, env_seed=100 + index, agent_seed=200 + index,
            status="terminated", return_=float(length), reset_observation=observations[0],
            next_observations=observations[1:], actions=np.zeros(length, np.int64),
            rewards=np.ones(length), terminations=np.arange(length) == length - 1,
            truncations=np.zeros(length, bool), infos=None, reset_info=None, logits=None))
    writer.close()
    with open_trajectories(path) as trajectories:
        assert (len(trajectories), trajectories.indices) == (3, [2, 5, 7])
        assert [(t.index, t.length, t.env_seed) for t in trajectories] == \
            [(2, 1, 102), (5, 2, 105), (7, 3, 107)]
        assert trajectories[np.int64(5)].agent_seed == 205
        assert 7 in trajectories and np.int32(2) in trajectories
        assert 3 not in trajectories and 8 not in trajectories and "7" not in trajectories
        with pytest.raises(KeyError, match=r"episode 4 is not in .*t\.h5 \(3 episodes\)"):
            trajectories[4]

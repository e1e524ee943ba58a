"""The Minari layout: real runs and files, loaded back with Minari (a test-only dependency)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from gymnasium import spaces

from eventroll import ParallelRunner, SequentialRunner, read_events
from eventroll.episodes import assemble
from eventroll.errors import ConfigError
from eventroll.recorders.base import replay
from eventroll.recorders.trajectories import TrajectoryRecorder
from eventroll.recording import MINARI_DIR
from eventroll.testing import sample_spaces
from eventroll.trajectories.flat import FlatWriter, open_trajectories
from eventroll.trajectories.minari import MinariWriter, export_minari
from eventroll.trajectories.record import Trajectory

minari = pytest.importorskip("minari", reason="minari[hdf5] (and pillow) are test dependencies")
pytest.importorskip("PIL", reason="minari's HDF5 storage imports pillow")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = dict(env_base_seed=5, agent_base_seed=6)
LIVE_ID = "eventroll/cartpole-v0"


# -- helpers ---------------------------------------------------------------------------------
def load(monkeypatch, root, dataset_id):
    """Open a dataset the way a Minari user does: by id, under MINARI_DATASETS_PATH."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return minari.load_dataset(dataset_id)


def stack(first, column):
    """One row ``first`` followed by the rows of ``column``, nested maps and tuples included."""
    if isinstance(first, dict):
        return {key: stack(first[key], column[key]) for key in first}
    if isinstance(first, (list, tuple)) and not isinstance(column, np.ndarray):
        return [stack(item, column[i]) for i, item in enumerate(first)]
    return np.concatenate([np.asarray(first)[None], np.asarray(column)])


def assert_same(actual, expected, where="value"):
    """Equal nested values: dict keys match, tuples/lists elementwise, leaves as arrays."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, (list, tuple)) and not isinstance(actual, list):
        assert len(actual) == len(expected), where
        for i, item in enumerate(expected):
            assert_same(actual[i], item, f"{where}/{i}")
    else:
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected), err_msg=where)


def metadatas(dataset):
    return list(dataset.storage.get_episode_metadata(dataset.episode_indices))


def assert_matches_events(dataset, episodes):
    """Every Minari episode equals the recorded episode its ``eventroll`` attribute names."""
    for episode, meta in zip(dataset.iterate_episodes(), metadatas(dataset)):
        expected = episodes[int(meta["eventroll"]["index"])]
        assert episode.id == meta["id"] and meta["total_steps"] == expected.length
        assert meta.get("seed") == expected.env_seed
        assert meta["eventroll"]["agent_seed"] == expected.agent_seed
        assert_same(episode.observations,
                    stack(expected.reset_observation, expected.column("observation")), "obs")
        assert_same(episode.actions, expected.column("action"), "actions")
        assert_same(episode.rewards, expected.column("reward"), "rewards")
        assert_same(episode.terminations, expected.column("terminated"), "terminations")
        assert_same(episode.truncations, expected.column("truncated"), "truncations")


def assert_matches_trajectory(episode, trajectory):
    assert_same(episode.observations, trajectory.observations, "obs")
    assert_same(episode.actions, trajectory.actions, "actions")
    for name in ("rewards", "terminations", "truncations"):
        assert_same(getattr(episode, name), getattr(trajectory, name), name)


def synthetic_trajectory(index: int) -> Trajectory:
    """A small deterministic terminated episode over Box(3,) float32 and Discrete(4)."""
    length = 1 + index % 9
    observations = (index + np.arange((length + 1) * 3, dtype=np.float32)).reshape(length + 1, 3)
    terminations = np.arange(length) == length - 1
    return Trajectory(index=index, worker=index % 2, env_seed=100 + index, agent_seed=200 + index,
                      status="terminated", return_=float(length), reset_observation=observations[0],
                      next_observations=observations[1:],
                      actions=np.arange(length, dtype=np.int64) % 4,
                      rewards=np.full(length, float(index)), terminations=terminations,
                      truncations=np.zeros(length, bool))


SYNTHETIC_SPACES = (spaces.Box(-np.inf, np.inf, (3,), np.float32), spaces.Discrete(4))


# -- a live run ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    """A 2-worker CartPole run of 24 episodes (limit 30 steps) recorded live as a Minari dataset."""
    run_dir = tmp_path_factory.mktemp("minari") / "run"
    result = ParallelRunner(n_episodes=24, n_processes=2, max_episode_steps=30, console=None,
                            recording={"layout": "minari", "dataset_id": LIVE_ID},
                            **SEEDS).run_with("CartPole-v1", run_dir=str(run_dir))
    assert result.ok, result.errors
    return result, assemble(read_events(result.event_log))


class TestLiveRun:
    def test_live_dataset_loads_and_equals_the_events(self, cartpole, monkeypatch):
        """minari.load_dataset opens the live-recorded dataset; every episode equals its events."""
        result, episodes = cartpole
        dataset = load(monkeypatch, os.path.join(result.run_dir, MINARI_DIR), LIVE_ID)
        assert dataset.id == LIVE_ID and len(dataset) == 24 and dataset.total_steps == result.steps
        assert sorted(int(m["eventroll"]["index"]) for m in metadatas(dataset)) == list(range(24))
        assert_matches_events(dataset, episodes)
        first = dataset[0]
        assert first.observations.dtype == np.float32 and first.actions.dtype == np.int64
        assert len(first.observations) == len(first.rewards) + 1
        assert first.infos == {}
        assert any(episode.truncations[-1] for episode in dataset)  # the 30-step limit

    def test_metadata_and_env_spec(self, cartpole, monkeypatch):
        """metadata.json carries the id, spaces and totals; the env spec recovers the env."""
        result, _ = cartpole
        dataset = load(monkeypatch, os.path.join(result.run_dir, MINARI_DIR), LIVE_ID)
        assert dataset.observation_space == spaces.Box(
            np.array([-4.8, -np.inf, -0.41887903, -np.inf], np.float32),
            np.array([4.8, np.inf, 0.41887903, np.inf], np.float32), dtype=np.float32)
        assert dataset.action_space == spaces.Discrete(2)
        env = dataset.recover_environment()
        assert env.spec.id == "CartPole-v1"
        env.close()
        listed = minari.list_local_datasets()
        assert listed[LIVE_ID]["total_episodes"] == 24

    def test_replay_builds_the_same_dataset(self, cartpole, tmp_path, monkeypatch):
        """Replaying the event log gives the live dataset again: same ids, same arrays."""
        result, _ = cartpole
        report = replay(TrajectoryRecorder(str(tmp_path), layout="minari", dataset_id=LIVE_ID),
                        result.event_log)
        assert (report["episodes"], report["steps"]) == (24, result.steps)
        replayed = load(monkeypatch, tmp_path, LIVE_ID)
        live = minari.MinariDataset(os.path.join(result.run_dir, MINARI_DIR, LIVE_ID, "data"))
        assert [int(m["eventroll"]["index"]) for m in metadatas(replayed)] == \
            [int(m["eventroll"]["index"]) for m in metadatas(live)]
        for a, b in zip(replayed, live):
            assert_matches_trajectory(a, b)


# -- every space kind ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(sample_spaces()))
def test_every_space_kind_round_trips(kind, tmp_path, monkeypatch):
    """Every sample space kind (Dict, Tuple, Text, nested) comes back from Minari equal."""
    runner = SequentialRunner(n_episodes=3, record_trajectory=False, console=None, **SEEDS)
    result = runner.run_with({"name": "eventroll.testing:space_env", "kind": kind},
                             run_dir=str(tmp_path / "run"))
    dataset_id = f"spaces/{kind}-v0"
    report = replay(TrajectoryRecorder(str(tmp_path / "root"), layout="minari",
                                       dataset_id=dataset_id, infos=True), result.event_log)
    assert (report["episodes"], report["steps"]) == (3, 12)
    dataset = load(monkeypatch, tmp_path / "root", dataset_id)
    assert dataset.observation_space == sample_spaces()[kind]
    assert dataset.action_space == sample_spaces()[kind]
    assert_matches_events(dataset, assemble(read_events(result.event_log)))
    if kind == "text":
        assert all(isinstance(text, str) for text in dataset[0].observations)
    # SpaceEnv's reset info has "seed", its step infos "t": no key is in every row
    assert report["infos_dropped"] == {"infos/seed": 3, "infos/t": 3}


def test_image_observations_round_trip_losslessly(tmp_path, monkeypatch):
    """Image spaces (uint8, 0-255, 32x32 or more) go as PNG frames that Minari decodes exactly."""
    observation_space = spaces.Dict({
        "rgb": spaces.Box(0, 255, (32, 40, 3), np.uint8),
        "grey": spaces.Box(0, 255, (33, 32), np.uint8)})
    rng = np.random.default_rng(0)
    frames = {"rgb": rng.integers(0, 256, (6, 32, 40, 3), dtype=np.uint8),
              "grey": rng.integers(0, 256, (6, 33, 32), dtype=np.uint8)}
    trajectory = Trajectory(
        index=0, worker=0, env_seed=1, agent_seed=2, status="truncated", return_=0.0,
        reset_observation={k: v[0] for k, v in frames.items()},
        next_observations={k: v[1:] for k, v in frames.items()},
        actions=np.array([0, 1, 2, 0, 1]), rewards=np.zeros(5),
        terminations=np.zeros(5, bool), truncations=np.array([0, 0, 0, 0, 1], bool))
    writer = MinariWriter(tmp_path, observation_space, spaces.Discrete(3), dataset_id="img/rgb-v0")
    writer.add(trajectory)
    writer.close()
    episode = load(monkeypatch, tmp_path, "img/rgb-v0")[0]
    assert episode.observations["rgb"].dtype == np.uint8
    assert_matches_trajectory(episode, trajectory)


def test_infos_follow_minari_convention(tmp_path, monkeypatch):
    """infos=True writes per-row arrays, reset info first; keys missing from a row are dropped."""
    trajectory = synthetic_trajectory(3)
    length = trajectory.length
    trajectory.reset_info = {"t": 0, "name": "start", "nested": {"x": [0.0, 0.5]}}
    trajectory.infos = [{"t": t + 1, "name": f"step{t}", "nested": {"x": [t, 0.5]}, "late": t}
                        for t in range(length)]
    writer = MinariWriter(tmp_path, *SYNTHETIC_SPACES, dataset_id="info/steps-v0", infos=True)
    writer.add(trajectory)
    report = writer.close()
    assert report["infos_dropped"] == {"infos/late": 1}
    infos = load(monkeypatch, tmp_path, "info/steps-v0")[0].infos
    np.testing.assert_array_equal(infos["t"], np.arange(length + 1))
    names = [name.decode() for name in infos["name"]]  # Minari reads strings back as bytes
    assert names == ["start"] + [f"step{t}" for t in range(length)]
    assert infos["nested"]["x"].shape == (length + 1, 2)


# -- aborted episodes -------------------------------------------------------------------------
def test_aborted_episodes_are_left_out_and_counted(tmp_path, monkeypatch):
    """Episodes aborted by an env failure are not in the dataset; report and metadata count them."""
    result = SequentialRunner(n_episodes=6, record_trajectory=False, console=None,
                              explicit_env_seeds=[1, 2, 3, 4, 5, 6]).run_with(
        {"name": "eventroll.testing:failing_env", "fail_every": 2}, run_dir=str(tmp_path / "run"))
    assert result.aborted == 3
    report = replay(TrajectoryRecorder(str(tmp_path / "root"), layout="minari",
                                       dataset_id="faults/failing-v0"), result.event_log)
    assert report["episodes"] == 3 and report["skipped"] == {"aborted": 3}
    dataset = load(monkeypatch, tmp_path / "root", "faults/failing-v0")
    assert [m["seed"] for m in metadatas(dataset)] == [1, 3, 5]
    assert_matches_events(dataset, assemble(read_events(result.event_log)))
    with open(os.path.join(dataset.storage.data_path, "metadata.json")) as file:
        assert json.load(file)["eventroll"]["skipped_episodes"] == {"aborted": 3}


# -- export from the flat layout --------------------------------------------------------------
def test_export_from_flat_file(cartpole, tmp_path, monkeypatch):
    """A flat file exports (from its run directory, path or open file) to a dataset equal to it."""
    result, _ = cartpole
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(result.event_log, run_dir)
    replay(TrajectoryRecorder(str(run_dir / "trajectories.h5")), result.event_log)
    root = tmp_path / "datasets"
    report = export_minari(run_dir, root, "export/from-run-v0")
    assert (report["episodes"], report["steps"]) == (24, result.steps)
    export_minari(run_dir / "trajectories.h5", root, "export/from-path-v0")
    with open_trajectories(run_dir) as flat:
        export_minari(flat, root, "export/from-file-v0")
        for dataset_id in ("export/from-run-v0", "export/from-path-v0", "export/from-file-v0"):
            dataset = load(monkeypatch, root, dataset_id)
            assert len(dataset) == 24
            indices = [int(m["eventroll"]["index"]) for m in metadatas(dataset)]
            assert indices == list(range(24))  # export writes in episode index order
            for episode, index in zip(dataset, indices):
                assert_matches_trajectory(episode, flat[index])
    spec = load(monkeypatch, root, "export/from-run-v0").recover_environment().spec
    assert spec.max_episode_steps == 30  # taken from the run's event log
    assert not [name for name in os.listdir(root / "export") if name.startswith(".")]


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset_id", ["cartpole", "cartpole-v", "a/cartpole-v0", "ns//cart-v0",
                                        "../cart-v0", "ns/cart-v0/", "", None])
def test_bad_dataset_id_is_refused(dataset_id, tmp_path):
    """A dataset id other than [namespace/]name-vN is refused in one line; nothing is made."""
    with pytest.raises(ConfigError, match=r"write it as \[namespace/\]name-vN"):
        MinariWriter(tmp_path / "root", *SYNTHETIC_SPACES, dataset_id=dataset_id)
    with pytest.raises(ConfigError, match="dataset id"):
        export_minari(tmp_path / "no-such-run", tmp_path / "root", dataset_id)
    assert not (tmp_path / "root").exists()


def test_existing_dataset_is_never_overwritten(tmp_path, monkeypatch):
    """Writing or exporting to an existing dataset id fails clearly; the dataset stays as it was."""
    writer = MinariWriter(tmp_path, *SYNTHETIC_SPACES, dataset_id="keep/me-v1")
    writer.add(synthetic_trajectory(0))
    writer.close()
    with pytest.raises(ConfigError, match="keep/me-v1 already exists .* another dataset id"):
        MinariWriter(tmp_path, *SYNTHETIC_SPACES, dataset_id="keep/me-v1")
    flat_path = tmp_path / "flat.h5"
    FlatWriter(str(flat_path), *SYNTHETIC_SPACES).close()
    with pytest.raises(ConfigError, match="already exists"):
        export_minari(flat_path, tmp_path, "keep/me-v1")
    assert sorted(os.listdir(tmp_path / "keep")) == ["me-v1", "namespace_metadata.json"]
    assert len(load(monkeypatch, tmp_path, "keep/me-v1")) == 1


def test_unsupported_options_are_refused(tmp_path):
    """Logits and 1-channel image spaces have no Minari encoding: a one-line error says so."""
    with pytest.raises(ConfigError, match="no place for policy logits"):
        MinariWriter(tmp_path, *SYNTHETIC_SPACES, dataset_id="xx/logits-v0", logits=True)
    with pytest.raises(ConfigError, match="cannot give back 1-channel frames"):
        MinariWriter(tmp_path, spaces.Box(0, 255, (64, 64, 1), np.uint8), spaces.Discrete(2),
                     dataset_id="xx/grey-v0")
    assert not os.path.exists(tmp_path / "xx")


# -- crash consistency and the dependency rule --------------------------------------------------
WRITER_SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
from tests.integration.test_minari import SYNTHETIC_SPACES, synthetic_trajectory
from eventroll.trajectories.minari import MinariWriter
writer = MinariWriter(sys.argv[1], *SYNTHETIC_SPACES, dataset_id="crash/writer-v0",
                      block_rows=40, flush_interval=60)
index = 0
while True:
    writer.add(synthetic_trajectory(index))
    index += 1
"""


@pytest.mark.parametrize("kill_after", [50, 400])
def test_sigkill_leaves_every_flushed_episode(kill_after, tmp_path, monkeypatch):
    """A writer killed mid-write leaves a dataset Minari loads, every flushed episode intact."""
    metadata = tmp_path / "crash" / "writer-v0" / "data" / "metadata.json"
    child = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT.format(repo=REPO), str(tmp_path)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            written = json.loads(metadata.read_text())["total_episodes"] if metadata.exists() else 0
            if written >= kill_after:
                break
            assert child.poll() is None, "the writer process died on its own"
            time.sleep(0.002)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    dataset = load(monkeypatch, tmp_path, "crash/writer-v0")
    assert len(dataset) >= kill_after
    assert dataset.total_steps == sum(synthetic_trajectory(i).length for i in range(len(dataset)))
    for index, episode in enumerate(dataset):
        assert_matches_trajectory(episode, synthetic_trajectory(index))


def test_metadata_cache_is_trimmed_at_each_flush(tmp_path):
    """Changed HDF5 metadata is held until a flush, then let go: memory does not grow with it."""
    writer = MinariWriter(tmp_path, *SYNTHETIC_SPACES, dataset_id="mem/bounded-v0", block_rows=200)
    cache_bytes = []
    for index in range(1500):
        writer.add(synthetic_trajectory(index))
        if index % 250 == 249:
            cache_bytes.append(writer._file.id.get_mdc_size()[2])  # (max, min clean, current, n)
    writer.close()
    assert max(cache_bytes) < 1.5e6  # held for all 1,500 episodes it would be about 3 MB


def test_eventroll_does_not_import_minari(tmp_path):
    """Writing and exporting a Minari dataset never imports the minari package."""
    script = f"""
import sys
sys.path.insert(0, {REPO!r})
from eventroll.trajectories.minari import MinariWriter
from eventroll.trajectories.record import Trajectory
import numpy as np
from gymnasium import spaces
writer = MinariWriter({str(tmp_path)!r}, spaces.Discrete(2), spaces.Discrete(2),
                      dataset_id="dep/free-v0")
writer.add(Trajectory(index=0, worker=0, env_seed=0, agent_seed=0, status="terminated",
                      return_=1.0, reset_observation=0, next_observations=np.array([1]),
                      actions=np.array([1]), rewards=np.ones(1), terminations=np.ones(1, bool),
                      truncations=np.zeros(1, bool)))
writer.close()
assert "minari" not in sys.modules, "eventroll imported minari"
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

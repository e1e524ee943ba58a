"""The ``eventroll`` command as a user types it: real processes, real files."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest
import yaml

from eventroll import open_trajectories, read_events
from eventroll.stats import Statistics


def eventroll(*args: str, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eventroll.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


class TestRun:
    def test_parallel_run_writes_the_run_directory(self, tmp_path):
        """`eventroll run` with overrides records every episode and exits 0."""
        run_dir = tmp_path / "run1"
        done = eventroll("run", "runner.n_processes=3", "runner.n_episodes=20",
                         "runner.max_episode_steps=50", "seeding.env_base_seed=1",
                         "seeding.agent_base_seed=2", f"hydra.run.dir={run_dir}")
        assert done.returncode == 0, done.stderr
        assert "completed" in done.stderr and "20 completed, 0 aborted, of 20" in done.stderr
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["runner"]["n_processes"] == 3 and config["seeding"]["env_base_seed"] == 1
        counts = Counter(e.KIND for e in read_events(run_dir / "events.msgpack"))
        assert counts["episode.end"] == 20 and counts["worker.start"] == 3
        assert (run_dir / "run.jsonl").stat().st_size > 0
        with open_trajectories(run_dir) as trajectories:
            assert len(trajectories) == 20
        stats = Statistics.load(run_dir / "stats.json")
        assert stats.get_stats_value("episode_count") == 20
        assert "episode_return" in done.stderr  # the statistics table

    def test_recording_options_from_the_command_line(self, tmp_path):
        """recording.* keys choose what is recorded: no stats, next observations, custom stats."""
        run_dir = tmp_path / "run"
        done = eventroll("run", "runner=sequential", "runner.n_episodes=3", "recording.stats=false",
                         "recording.next_observations=true", f"hydra.run.dir={run_dir}")
        assert done.returncode == 0, done.stderr
        assert not (run_dir / "stats.json").exists() and "episode_return" not in done.stderr
        with open_trajectories(run_dir) as trajectories:
            assert trajectories.options["next_observations"]
        bad = eventroll("run", "runner.n_episodes=1", "recording.layout=columns",
                        f"hydra.run.dir={tmp_path / 'bad'}")
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines()[-1].startswith("eventroll run: error: recording.layout")

    def test_default_run_directory_is_outputs_date_time(self, tmp_path):
        """Without hydra.run.dir the run goes to outputs/DATE/TIME under the working directory."""
        done = eventroll("run", "runner=sequential", "runner.n_episodes=2", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        (run_dir,) = (tmp_path / "outputs").glob("*/*")
        assert time.strftime("%Y-%m-%d") == run_dir.parent.name
        assert (run_dir / "events.msgpack").exists()
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert isinstance(config["seeding"]["env_base_seed"], int)  # drawn, then recorded

    def test_failed_episodes_give_exit_status_1(self, tmp_path):
        """A run with aborted episodes exits 1 and says so."""
        done = eventroll("run", "env.name=eventroll.testing:failing_env", "+env.fail_every=2",
                         "seeding.explicit_env_seeds=[1,2,3,4]", "runner.n_episodes=4",
                         f"hydra.run.dir={tmp_path / 'run'}")
        assert done.returncode == 1
        assert "2 completed, 2 aborted, of 4" in done.stderr


def one_line_error(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert done.returncode == 2
    return lines[0]


class TestBadInput:
    def test_zero_processes(self, tmp_path):
        """runner.n_processes=0 fails at once with one line naming the key."""
        started = time.monotonic()
        line = one_line_error(eventroll("run", "runner.n_processes=0", cwd=tmp_path))
        assert "runner.n_processes must be an integer >= 1, got 0" in line
        assert time.monotonic() - started < 30
        assert not (tmp_path / "outputs").exists()

    def test_unknown_key_names_close_matches(self, tmp_path):
        """A misspelt key is named, with the close matches."""
        line = one_line_error(eventroll("run", "runner.n_episode=5", cwd=tmp_path))
        assert "unknown config key 'runner.n_episode'" in line and "runner.n_episodes" in line

    def test_unknown_group_option(self, tmp_path):
        """A misspelt group option lists the options."""
        line = one_line_error(eventroll("run", "runner=paralel", cwd=tmp_path))
        assert "unknown runner 'paralel'" in line and "did you mean parallel" in line

    def test_unknown_env_fails_once(self, tmp_path):
        """An unknown env fails once, in one line, before any worker starts."""
        line = one_line_error(eventroll("run", "env.name=CartPol-v1", "runner.n_processes=3",
                                        cwd=tmp_path))
        assert "env.name='CartPol-v1'" in line and "CartPole" in line

    @pytest.mark.parametrize("override, message", [
        ("runner.n_episodes=abc", "runner.n_episodes must be a positive integer, got 'abc'"),
        ("runner.n_episodes=-3", "runner.n_episodes must be a positive integer, got -3"),
        ("runner.n_episodes=true", "runner.n_episodes must be a positive integer, got True"),
        ("runner.max_episode_steps=x", "runner.max_episode_steps must be an integer >= 0 (0 or "
                                       "null: the env's own limit), got 'x'"),
        ("runner.max_episode_steps=[1]", "runner.max_episode_steps must be an integer >= 0"),
        ("seeding.explicit_env_seeds=3", "seeding.explicit_env_seeds must be a non-empty list "
                                         "of non-negative integers, got 3"),
        ("runner.retries=-1", "runner.retries must be an integer >= 0"),
        ("runner.deterministic=maybe", "runner.deterministic must be true or false, got 'maybe'"),
        ("runner.render=yes", "runner.render must be true or false, got 'yes'"),
        ("+runner.bogus=1", "unknown config key runner.bogus for the parallel runner; its keys: "
                            "n_episodes"),
        ("seeding.env_base_seed=-1", "seeding.env_base_seed must be a non-negative integer"),
        ("recording.layout=zarr", "recording.layout must be one of flat, minari, got 'zarr'"),
        ("policy.name=nope.module:X", "cannot import module 'nope.module' of 'nope.module:X'"),
        ("policy.name=eventroll.testing:Missing", "module 'eventroll.testing' has no attribute "
                                                  "'Missing'"),
        ("wrappers={nope.mod.Wrap: {}}", "cannot import module 'nope.mod' of 'nope.mod.Wrap'"),
        ("live.listen=tcp://0.0.0.0:5599", "listens beyond loopback: set live.server_key"),
    ])
    def test_bad_configuration_is_one_line(self, tmp_path, override, message):
        """Wrong types, negative counts, unknown keys, unimportable policies or wrappers:
        one line naming the key, exit status 2, no traceback, no run directory."""
        line = one_line_error(eventroll("run", override, cwd=tmp_path))
        assert message in line
        assert not (tmp_path / "outputs").exists()

    def test_help(self):
        """`eventroll run --help` lists groups, keys and examples."""
        done = eventroll("run", "--help")
        assert done.returncode == 0
        for text in ("runner.n_processes", "seeding.env_base_seed", "hydra.run.dir", "Examples"):
            assert text in done.stdout

    @pytest.mark.parametrize("args", [["nope"], []])
    def test_unknown_or_missing_command(self, args):
        """An unknown or missing command exits 2 with usage."""
        done = eventroll(*args)
        assert done.returncode == 2

"""Re-execution, rendering of recorded episodes, and live rendering in the parallel runner:
real runs, real processes, real files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from PIL import Image

from eventroll import ParallelRunner, SequentialRunner, codec, read_events
from eventroll.episodes import assemble
from eventroll.errors import ConfigError
from eventroll.recorders.eventlog import EventLogReader
from eventroll.reexecution import reexecute

SEEDS = dict(env_base_seed=5, agent_base_seed=6)
HEADLESS = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


def eventroll(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eventroll.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=HEADLESS)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    return lines[0]


def rewrite_log(source: Any, target: Any, change) -> None:
    """Copy an event log, header first, passing every event record through ``change``."""
    reader = EventLogReader(source)
    records = [change(record) for record in reader.records()]
    with open(target, "wb") as file:
        file.write(codec.encode(reader.header))
        for record in records:
            file.write(codec.encode(record))


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """A small CartPole run by `eventroll run` (parallel, 2 workers), and its episodes."""
    run_dir = tmp_path_factory.mktemp("cartpole") / "run"
    done = eventroll("run", "runner.n_processes=2", "runner.n_episodes=6",
                     "runner.max_episode_steps=30", "seeding.env_base_seed=3",
                     "seeding.agent_base_seed=4", f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr
    return run_dir, assemble(read_events(run_dir / "events.msgpack"))


class TestRerun:
    def test_clean_run_reexecutes_identically(self, cartpole_run):
        """Every recorded episode re-executes to the last step with no difference: exit 0,
        one ok line per episode."""
        run_dir, episodes = cartpole_run
        done = eventroll("rerun", str(run_dir))
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        assert len(lines) == len(episodes) == 6
        for line, index in zip(lines, sorted(episodes)):
            assert line.startswith(f"episode {index} ") and line.endswith("ok, re-executed identically")
        for check in reexecute(run_dir):
            assert check.ok and check.reexecuted_steps == episodes[check.episode].end.length

    def test_one_altered_action_is_found_at_its_step(self, cartpole_run, tmp_path):
        """A copy of the log with one action flipped: rerun names that episode and step (the
        observation after it differs) and exits 1; the other episodes are ok."""
        run_dir, episodes = cartpole_run
        target = max(episodes.values(), key=lambda e: e.length)
        t = target.length // 2

        def flip(record: dict) -> dict:
            if record["kind"] == "step.batch" and record["episode"] == target.index \
                    and record["t0"] <= t < record["t0"] + record["n"]:
                record["action"][t - record["t0"]] ^= 1
            return record

        altered = tmp_path / "events.msgpack"
        rewrite_log(run_dir / "events.msgpack", altered, flip)
        done = eventroll("rerun", str(altered))
        assert done.returncode == 1, done.stderr
        differing = [line for line in done.stdout.splitlines() if "differs" in line]
        assert len(differing) == 1 and done.stdout.count("ok, re-executed identically") == 5
        assert differing[0].startswith(f"episode {target.index} ")
        assert f"differs at step {t}: observation recorded [" in differing[0]
        (check,) = reexecute(altered, [target.index])
        assert not check.ok and check.step == t and check.reexecuted_steps == t + 1
        assert check.mismatches[0].what == "observation"
        assert np.array_equal(check.mismatches[0].recorded,
                              target.column("observation")[t])

    def test_an_episode_whose_recorded_actions_are_no_column(self, cartpole_run, tmp_path):
        """An episode of a damaged log whose batch holds no column of actions is reported as
        one that cannot be re-executed, and the others are re-executed (it used to stop
        rerun with a TypeError)."""
        run_dir, episodes = cartpole_run
        damaged = min(episodes)

        def alter(record: dict) -> dict:
            if record["kind"] == "step.batch" and record["episode"] == damaged:
                record["action"] = None
            return record

        rewrite_log(run_dir / "events.msgpack", tmp_path / "damaged.msgpack", alter)
        checks = reexecute(tmp_path / "damaged.msgpack")
        assert [check.ok for check in checks] == [False] + [True] * (len(episodes) - 1)
        length = episodes[damaged].length
        assert str(checks[0].mismatches[0]) == (
            f"action recorded 'no column of {length} steps', re-executed None")
        assert checks[0].reexecuted_steps == 0

    def test_nested_observation_compared_exactly(self, tmp_path):
        """Dict/Tuple/Text observations re-execute identically; one altered leaf of one recorded
        observation is named by its path."""
        result = ParallelRunner(n_episodes=3, n_processes=2, **SEEDS).run_with(
            {"name": "eventroll.testing:space_env", "kind": "nested", "length": 4},
            run_dir=str(tmp_path / "run"))
        assert result.ok and all(check.ok for check in reexecute(result.run_dir))

        def alter(record: dict) -> dict:  # step 2 of episode 1, in whichever batch holds it
            # (a loaded machine may send an episode's steps in more than one batch)
            if record["kind"] == "step.batch" and record["episode"] == 1 \
                    and record["t0"] <= 2 < record["t0"] + record["n"]:
                leaf = record["observation"]["inner"][1]["k"]
                leaf[2 - record["t0"]] = 1 - leaf[2 - record["t0"]]
            return record

        rewrite_log(result.event_log, tmp_path / "altered.msgpack", alter)
        checks = reexecute(tmp_path / "altered.msgpack")
        assert [check.ok for check in checks] == [True, False, True]
        assert checks[1].step == 2 and checks[1].mismatches[0].what == "observation['inner'][1]['k']"

    def test_aborted_episodes_reexecute_up_to_where_they_stopped(self, tmp_path):
        """Episodes the env aborted re-execute their recorded steps, and no more; with a
        wrapper (ClipReward) and the run's time limit rebuilt from run.start."""
        result = SequentialRunner(n_episodes=4, max_episode_steps=4,
                                  explicit_env_seeds=[1, 2, 3, 4], agent_base_seed=1).run_with(
            {"name": "eventroll.testing:failing_env", "fail_every": 2, "fail_step": 2},
            wrappers={"gymnasium.wrappers.ClipReward": {"min_reward": 0.0, "max_reward": 0.5}},
            run_dir=str(tmp_path / "run"))
        assert result.aborted == 2
        checks = reexecute(result.run_dir)
        assert all(check.ok for check in checks)
        assert [(c.recorded_status, c.reexecuted_steps) for c in checks] == \
            [("truncated", 4), ("aborted", 2), ("truncated", 4), ("aborted", 2)]


class TestRerunBadInput:
    def test_missing_run_and_episode(self, cartpole_run, tmp_path):
        """A missing run directory or episode: one line naming it, exit 2."""
        run_dir, _ = cartpole_run
        assert str(tmp_path / "nope") in one_line_error(eventroll("rerun", str(tmp_path / "nope")))
        line = one_line_error(eventroll("rerun", str(run_dir), "--episode", "40"))
        assert "no episode 40" in line and "0..5" in line
        assert "--episode" in one_line_error(eventroll("rerun", str(run_dir), "--episode", "x"))

    def test_env_object_cannot_be_rebuilt(self, tmp_path):
        """A run of an env object passed in Python: rerun says why it cannot rebuild it."""
        result = SequentialRunner(n_episodes=1, max_episode_steps=3).run_with(
            gym.make("CartPole-v1"), run_dir=str(tmp_path / "run"))
        line = one_line_error(eventroll("rerun", result.run_dir))
        assert "env object passed to run_with" in line and "cannot be rebuilt" in line

    def test_help(self):
        for name in ("rerun", "render"):
            done = eventroll(name, "--help")
            assert done.returncode == 0 and done.stdout.startswith(f"usage: eventroll {name}")


class TestRender:
    def test_episode_to_gif(self, cartpole_run, tmp_path):
        """`eventroll render` writes a GIF that Pillow opens: the env's frame size, lasting one
        frame per state (reset + each step) at the given fps."""
        run_dir, episodes = cartpole_run
        episode = max(episodes.values(), key=lambda e: e.length)
        out = tmp_path / "episode.gif"
        done = eventroll("render", str(run_dir), "--episode", str(episode.index),
                         "--out", str(out), "--fps", "10")
        assert done.returncode == 0, done.stderr
        assert f"{episode.length + 1} frames" in done.stdout
        assert out.read_bytes()[:6] == b"GIF89a" and out.stat().st_size > 1000
        env = gym.make("CartPole-v1", render_mode="rgb_array")
        env.reset(seed=0)
        height, width = env.render().shape[:2]
        env.close()
        with Image.open(out) as gif:
            assert gif.format == "GIF" and gif.size == (width, height)
            assert 1 < gif.n_frames <= episode.length + 1  # identical frames are merged
            durations = []
            for index in range(gif.n_frames):
                gif.seek(index)
                durations.append(gif.info["duration"])
        assert sum(durations) == (episode.length + 1) * 100

    def test_bad_render_input(self, cartpole_run, tmp_path):
        run_dir, _ = cartpole_run
        line = one_line_error(eventroll("render", str(run_dir), "--episode", "0",
                                        "--out", str(tmp_path / "a.mp4")))
        assert "a.mp4" in line and ".gif" in line
        assert "--episode" in one_line_error(eventroll("render", str(run_dir)))
        assert not list(tmp_path.iterdir())


class RenderLogEnv(gym.Env):
    """Episodes of ``length`` steps; each ``render()`` appends 'PID RENDER_MODE' to the file
    ``log``, slowly (``delay`` seconds), so that rendering is observable and costly."""

    metadata: dict[str, Any] = {"render_modes": ["human"], "render_fps": 30}

    def __init__(self, log: str, length: int = 4, delay: float = 0.02,
                 render_mode: str | None = None) -> None:
        self.observation_space = spaces.Box(0, np.inf, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.log, self.length, self.delay, self.render_mode = log, length, delay, render_mode
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action: Any):
        time.sleep(self.delay / 2)  # every worker takes time per episode: both get episodes
        self._t += 1
        return np.array([self._t], dtype=np.float32), 1.0, self._t >= self.length, False, {}

    def render(self) -> None:
        time.sleep(self.delay)
        with open(self.log, "a", encoding="utf-8") as file:
            file.write(f"{os.getpid()} {self.render_mode}\n")


class TestLiveRender:
    def test_parallel_runner_renders_in_worker_0_only(self, tmp_path):
        """runner.render in the parallel runner: worker 0 builds its env in human mode and
        renders after each reset and step of its episodes; the other worker never renders."""
        log = tmp_path / "renders.txt"
        result = ParallelRunner(n_episodes=16, n_processes=2, render=True, **SEEDS).run_with(
            {"name": f"{__name__}:RenderLogEnv", "log": str(log), "length": 4},
            run_dir=str(tmp_path / "run"))
        assert result.ok
        events = list(read_events(result.event_log))
        pids = {e.worker: e.pid for e in events if e.KIND == "worker.start"}
        played = {w: [e for e in events if e.KIND == "episode.start" and e.worker == w]
                  for w in pids}
        assert played[0] and played[1]  # both workers played; worker 0 was slowed
        assert log.read_text().splitlines() == [f"{pids[0]} human"] * (len(played[0]) * (4 + 1))

    def test_env_without_human_mode_fails_before_the_run(self, tmp_path):
        with pytest.raises(ConfigError, match="no 'human' render mode"):
            ParallelRunner(n_episodes=2, render=True).run_with(
                "eventroll.testing:failing_env", run_dir=str(tmp_path / "run"))
        assert not (tmp_path / "run").exists()

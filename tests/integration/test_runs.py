"""Whole runs with real processes, sockets and files: nothing lost, deterministic, repeatable."""

from __future__ import annotations

import os
from collections import Counter, defaultdict

import numpy as np
import pytest

from eventroll import ParallelRunner, SequentialRunner, read_events
from eventroll.episodes import assemble
from eventroll.errors import ConfigError
from eventroll.seeding import episode_seeds

SEEDS = dict(env_base_seed=11, agent_base_seed=22)


def kinds(events) -> Counter:
    return Counter(event.KIND for event in events)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-worker parallel run of 200 CartPole episodes, and its events."""
    run_dir = tmp_path_factory.mktemp("parallel") / "run"
    result = ParallelRunner(n_episodes=200, n_processes=2, **SEEDS).run_with(
        "CartPole-v1", run_dir=str(run_dir))
    return result, list(read_events(result.event_log))


class TestParallelRunRecordsEverything:
    def test_run_completes(self, run):
        """A 2-worker run of 200 CartPole episodes completes with exit status 0."""
        result, _ = run
        assert result.ok and result.exit_code == 0 and result.errors == []
        assert (result.episodes, result.aborted) == (200, 0)

    def test_every_episode_starts_and_ends_once(self, run):
        """The log holds exactly 200 episode.start and 200 episode.end, one per index."""
        _, events = run
        counts = kinds(events)
        assert counts["episode.start"] == counts["episode.end"] == 200
        assert sorted(e.episode for e in events if e.KIND == "episode.end") == list(range(200))
        assert counts["run.start"] == counts["run.end"] == 1
        assert counts["worker.start"] == counts["worker.end"] == 2

    def test_every_step_once(self, run):
        """Each episode's steps are contiguous, and their count equals the recorded length."""
        result, events = run
        episodes = assemble(events)
        assert all(ep.length == ep.end.length for ep in episodes.values())
        assert sum(ep.length for ep in episodes.values()) == result.steps
        assert all(ep.column("terminated")[-1] or ep.column("truncated")[-1]
                   for ep in episodes.values())

    def test_sequence_numbers_are_contiguous(self, run):
        """Global seq runs 0..N-1 in file order; each worker's wseq runs 0..n-1."""
        _, events = run
        assert [e.seq for e in events] == list(range(len(events)))
        per_worker = defaultdict(list)
        for event in events:
            per_worker[event.worker].append(event.wseq)
        assert set(per_worker) == {-1, 0, 1}
        for wseqs in per_worker.values():
            assert wseqs == list(range(len(wseqs)))

    def test_worker_end_carries_last_wseq(self, run):
        """worker.end is each worker's last event and names its own wseq."""
        _, events = run
        for end in (e for e in events if e.KIND == "worker.end"):
            last = max(e.wseq for e in events if e.worker == end.worker)
            assert end.last_wseq == end.wseq == last

    def test_seeds_are_recorded(self, run):
        """run.start names the seeds; episode i used env seed i and agent seed i."""
        _, events = run
        start = events[0]
        assert start.KIND == "run.start"
        # derived seeds travel as their base seed and count, however long the run
        assert start.env_seeds == {"seed_sequence": start.config["seeding"]["env_base_seed"],
                                   "n": 200}
        env_seeds, agent_seeds = episode_seeds(start.env_seeds), episode_seeds(start.agent_seeds)
        for event in (e for e in events if e.KIND == "episode.start"):
            assert event.env_seed == env_seeds[event.episode]
            assert event.agent_seed == agent_seeds[event.episode]

    def test_run_dir_files(self, run):
        """The run directory holds config.yaml with the seeds, events.msgpack and run.jsonl."""
        import json
        import os

        import yaml

        result, _ = run
        config = yaml.safe_load(open(os.path.join(result.run_dir, "config.yaml")))
        assert config["seeding"]["env_base_seed"] == 11
        assert config["runner"]["n_episodes"] == 200
        lines = [json.loads(line) for line in open(os.path.join(result.run_dir, "run.jsonl"))]
        assert {"run.start", "run.end"} <= {line["event"] for line in lines}


def episode_arrays(result) -> dict[int, dict]:
    episodes = assemble(read_events(result.event_log))
    return {index: {"reset": ep.reset_observation, "action": ep.column("action"),
                    "observation": ep.column("observation"), "reward": ep.column("reward"),
                    "terminated": ep.column("terminated"), "truncated": ep.column("truncated")}
            for index, ep in episodes.items()}


class TestDeterminism:
    def test_same_episodes_for_any_number_of_workers(self, tmp_path):
        """Sequential and parallel runs with 1, 2 and 3 workers record identical episodes."""
        runs = [SequentialRunner(n_episodes=24, **SEEDS)] + [
            ParallelRunner(n_episodes=24, n_processes=n, **SEEDS) for n in (1, 2, 3)]
        results = [runner.run_with("CartPole-v1", run_dir=str(tmp_path / f"run{i}"))
                   for i, runner in enumerate(runs)]
        assert all(r.ok for r in results)
        reference = episode_arrays(results[0])
        assert sorted(reference) == list(range(24))
        for result in results[1:]:
            other = episode_arrays(result)
            assert sorted(other) == sorted(reference)
            for index, columns in reference.items():
                for name, values in columns.items():
                    np.testing.assert_array_equal(values, other[index][name],
                                                  err_msg=f"episode {index} {name}")

    def test_truncation_is_not_termination(self, tmp_path):
        """max_episode_steps truncates: the last step is truncated, never terminated."""
        result = ParallelRunner(n_episodes=6, n_processes=2, max_episode_steps=5, **SEEDS).run_with(
            "CartPole-v1", run_dir=str(tmp_path / "run"))
        episodes = assemble(read_events(result.event_log))
        truncated = [ep for ep in episodes.values() if ep.end.truncated]
        assert truncated, "some random CartPole episode lasts 5 steps"
        for ep in truncated:
            assert ep.length == 5 and not ep.end.terminated
            assert ep.column("truncated")[-1] and not ep.column("terminated")[-1]


class TestRunnerReuse:
    def test_three_runs_from_one_runner(self, tmp_path):
        """One runner object run three times gives three complete, independent runs."""
        runner = ParallelRunner(n_episodes=30, n_processes=2, **SEEDS)
        results = [runner.run_with("CartPole-v1", run_dir=str(tmp_path / f"run{i}"))
                   for i in range(3)]
        assert all(r.ok and r.episodes == 30 for r in results)
        assert len({r.run_id for r in results}) == 3
        logs = [list(read_events(r.event_log)) for r in results]
        for result, events in zip(results, logs):
            assert kinds(events)["episode.end"] == 30
            assert {e.run_id for e in events if e.KIND in ("run.start", "run.end")} == {result.run_id}
        assert [r.steps for r in results] == [results[0].steps] * 3  # same seeds, same episodes

    def test_a_recorded_run_directory_is_never_overwritten(self, tmp_path):
        """Reusing a run directory that holds a log fails, naming the directory."""
        runner = SequentialRunner(n_episodes=2, **SEEDS)
        runner.run_with("CartPole-v1", run_dir=str(tmp_path / "run"))
        with pytest.raises(ConfigError, match="already holds a run"):
            runner.run_with("CartPole-v1", run_dir=str(tmp_path / "run"))


class TestSeeds:
    def test_explicit_seed_lists_limit_the_run(self, tmp_path):
        """With 3 explicit env seeds for 10 episodes, the run has 3 episodes with those seeds."""
        result = SequentialRunner(n_episodes=10, explicit_env_seeds=[5, 6, 7], agent_base_seed=1,
                                  console=None).run_with("CartPole-v1", run_dir=str(tmp_path / "r"))
        assert result.ok and result.n_episodes == 3
        starts = [e for e in read_events(result.event_log) if e.KIND == "episode.start"]
        assert [e.env_seed for e in starts] == [5, 6, 7]
        log = open(tmp_path / "r" / "run.jsonl").read()
        assert "explicit_env_seeds holds 3 seeds for 10 episodes" in log


@pytest.mark.skipif(not os.path.exists("/proc/self/comm"), reason="process names: Linux")
def test_the_processes_of_a_run_are_named_after_their_roles(tmp_path):
    """ps and top show each process of a run by its role (Linux: /proc/PID/comm)."""
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "eventroll.cli", "run", "runner.n_episodes=3000",
         "policy.name=eventroll.testing:PacedPolicy",  # live for seconds on any machine
         f"hydra.run.dir={tmp_path / 'run'}"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    roles = {"er-hub", "er-eventlog", "er-trajectories", "er-worker-0", "er-worker-1"}
    names: set[str] = set()
    deadline = time.monotonic() + 60
    try:  # until every role was seen (er-compose may be seen too, early on)
        while process.poll() is None and time.monotonic() < deadline and not roles <= names:
            for pid in os.listdir("/proc"):
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                    with open(f"/proc/{pid}/comm") as comm:
                        name = comm.read().strip()
                except (OSError, ValueError, IndexError):
                    continue
                if parent == process.pid and name.startswith("er-"):
                    names.add(name)
            time.sleep(0.05)
    finally:
        process.wait(timeout=120)
    assert process.returncode == 0
    assert roles <= names

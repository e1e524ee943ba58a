"""tools/bench_suite.py, run at a tiny size: every scenario, every configuration measured."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUITE = os.path.join(ROOT, "tools", "bench_suite.py")


class TestBenchSuite:
    def test_tiny_run_writes_every_configuration(self, tmp_path):
        """A one-repeat run of 20,000 steps exits 0, and its JSON holds every configuration
        of every scenario with positive steps/s, peak memory, CPU time and the targets. (With 3,000
        steps a worker could start and end between two of the suite's looks at /proc,
        0.1 s apart, and the roles could not be told apart.)"""
        out = tmp_path / "suite.json"
        proc = subprocess.run(
            [sys.executable, SUITE, "--steps", "20000", "--repeats", "1", "--warmup-steps", "0",
             "--minari-steps", "0", "--async-steps", "1000", "--image-episode-steps", "500",
             "--tmpdir", str(tmp_path), "--json", str(out)],
            cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        data = json.loads(out.read_text())
        names = {name: [c["name"] for c in configs] for name, configs in data["scenarios"].items()}
        assert list(names) == ["cartpole", "startup", "image", "latency"]
        assert names["cartpole"] == [
            "plain loop", "SyncVectorEnv(2)", "AsyncVectorEnv(2)",
            "eventroll sequential, all recorders", "eventroll parallel 2, recorders off",
            "eventroll parallel 2, event log only", "eventroll parallel 2, all recorders"]
        assert [len(names[n]) for n in ("startup", "image", "latency")] == [2, 3, 1]
        for configs in data["scenarios"].values():
            for config in configs:
                assert config["median_steps_per_s"] > 0, config["name"]
                assert len(config["runs"]) == 1 and config["runs"][0]["ok"], config["name"]
        eventroll_all = data["scenarios"]["cartpole"][-1]
        assert eventroll_all["hdf5_bytes_per_step"] > 0
        assert eventroll_all["event_log_bytes_per_step"] > 0
        roles = set(eventroll_all["peak_rss_kib"])  # and short-lived helpers (er-compose)
        assert {role for role in roles if not role.startswith("helper ")} == {
            "main", "hub", "eventlog", "trajectories+stats", "worker 0", "worker 1"}
        assert eventroll_all["largest_process_kib"] > 0
        [run] = eventroll_all["runs"]   # CPU seconds of every process: the workers did the most
        assert set(run["cpu"]) == roles and all(seconds >= 0 for seconds in run["cpu"].values())
        assert min(run["cpu"]["worker 0"], run["cpu"]["worker 1"]) > run["cpu"]["hub"]
        [overhead] = [t for t in data["targets"] if t["what"].startswith("all recorders on / off")]
        assert "in-run CPU: the recorders took" in overhead["detail"]
        assert {t["what"].split(":")[0] for t in data["targets"]} >= {"start-up"}
        assert os.listdir(tmp_path) == ["suite.json"]   # every run directory removed


class TestBenchLoop:
    def test_prints_each_loop(self):
        """tools/bench_loop.py at a tiny size exits 0 and prints microseconds a step for
        the plain loop and each of eventroll's, the one that encodes its events too."""
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_loop.py"),
                               "--steps", "500", "--repeats", "1"], cwd=ROOT,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = {line[:30].strip(): float(line[30:].split()[0])
                for line in proc.stdout.splitlines()[1:]}
        assert list(rows) == ["plain loop", "run_episode, RandomPolicy",
                              "run_episode, space.sample()", "run_episode, Python ints",
                              "run_episode, events encoded"]
        assert all(value > 0 for value in rows.values())


class TestBenchWakeups:
    def test_prints_each_way_of_waiting(self):
        """tools/bench_wakeups.py at a tiny size exits 0 and prints a row of CPU µs for each
        way of waiting; bad arguments are refused in one line."""
        tool = os.path.join(ROOT, "tools", "bench_wakeups.py")
        proc = subprocess.run([sys.executable, tool, "--waits", "3", "--interval", "0.002",
                               "--repeats", "1"], cwd=ROOT, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
                for line in proc.stdout.splitlines()[2:]}
        assert list(rows) == ["time.sleep", "select.poll, idle pipe", "zmq poll, idle socket",
                              "zmq poll + recv, message queued"]
        assert all(float(value.replace(",", "")) >= 0 for value in rows.values())
        bad = subprocess.run([sys.executable, tool, "--interval", "5"], cwd=ROOT,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "--interval in (0, 1] s" in bad.stderr

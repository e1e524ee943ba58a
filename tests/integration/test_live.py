"""Live subscribers (subscribe, tail, watch) on running and finished runs, and the offline
replay and export commands: real runs, real sockets, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict

import h5py
import numpy as np
import pytest

from eventroll import read_events
from eventroll.errors import EventrollError
from eventroll.live import BUS_FILE, read_bus_info, subscribe

SEEDS = ["seeding.env_base_seed=1", "seeding.agent_base_seed=2"]
# a pause of 1 ms an episode: the runs these tests attach to stay live for seconds on any
# machine (6,000 CartPole episodes took under a second on a fast one, and a subscriber
# attached 0.5 s in found the run over)
PACED = "policy.name=eventroll.testing:PacedPolicy"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eventroll.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def start_run(run_dir, episodes: int, *overrides: str) -> subprocess.Popen:
    """An `eventroll run` in the background; returns once it is live (bus.json written)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "eventroll.cli", "run", f"runner.n_episodes={episodes}",
         f"hydra.run.dir={run_dir}", *SEEDS, PACED, *overrides],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while read_bus_info(str(run_dir)) is None:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the run never went live"
        time.sleep(0.02)
    return process


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr


def assert_whole_stream(received, run_dir) -> None:
    """Every event of the run's log exactly once, in seq order, consecutive per worker."""
    logged = [(e.seq, e.KIND, e.worker, e.wseq) for e in read_events(run_dir / "events.msgpack")]
    assert [(e.seq, e.KIND, e.worker, e.wseq) for e in received] == logged
    assert [seq for seq, *_ in logged] == list(range(len(logged)))
    per_worker = defaultdict(list)
    for event in received:
        per_worker[event.worker].append(event.wseq)
    for wseqs in per_worker.values():
        assert wseqs == list(range(len(wseqs)))
    assert received[-1].KIND == "run.end"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("live") / "run"
    done = cli("run", "runner.n_episodes=60", f"hydra.run.dir={run_dir}", *SEEDS)
    assert done.returncode == 0, done.stderr
    return run_dir


class TestSubscribe:
    def test_attached_mid_run_and_after_it_ended_every_event_arrives_once(self, tmp_path):
        """A subscriber attached 0.5 s into a multi-second run catches up from the log and
        follows live without gap or duplicate; one attached after the end gets the same."""
        run_dir = tmp_path / "run"
        process = start_run(run_dir, 6000)
        time.sleep(0.5)
        live = list(subscribe(run_dir))
        assert process.poll() is None or read_bus_info(str(run_dir)) is None
        finish(process)
        assert not (run_dir / BUS_FILE).exists()
        assert_whole_stream(live, run_dir)
        assert_whole_stream(list(subscribe(run_dir)), run_dir)
        episode_ends = [e for e in live if e.KIND == "episode.end"]
        assert len(episode_ends) == 6000

    def test_ten_subscribers_one_of_them_stalled(self, tmp_path):
        """Ten subscriber processes, one stalled for 3 s (longer than the fan-out holds
        messages for it): the run completes with every durable artifact whole, and every
        subscriber, the stalled one too, gets every event once."""
        run_dir = tmp_path / "run"
        process = start_run(run_dir, 6000)
        script = ("import json, sys, time\nfrom eventroll.live import subscribe\n"
                  "seqs = []\n"
                  "for event in subscribe(sys.argv[1], arrays=False):\n"
                  "    seqs.append(event.seq)\n"
                  "    if len(seqs) == 1 and sys.argv[3] == 'stall':\n"
                  "        time.sleep(3)\n"
                  "json.dump(seqs, open(sys.argv[2], 'w'))\n")
        subscribers = [subprocess.Popen([sys.executable, "-c", script, str(run_dir),
                                         str(tmp_path / f"sub{i}.json"),
                                         "stall" if i == 0 else "go"]) for i in range(10)]
        finish(process)
        for subscriber in subscribers:
            assert subscriber.wait(timeout=60) == 0
        logged = [e.seq for e in read_events(run_dir / "events.msgpack")]
        for i in range(10):
            assert json.loads((tmp_path / f"sub{i}.json").read_text()) == logged
        assert sum(e.KIND == "episode.end" for e in read_events(run_dir / "events.msgpack")) == 6000
        with h5py.File(run_dir / "trajectories.h5", "r") as file:
            assert len(file["episodes/index"]) == 6000

    def test_only_new_events_and_a_silent_endpoint(self, tmp_path):
        """from_start=False starts after what was recorded, consecutive up to run.end; the
        endpoint of a finished run says nothing, which ends a subscription with an error."""
        run_dir = tmp_path / "run"
        process = start_run(run_dir, 4000)
        time.sleep(0.5)
        endpoint = read_bus_info(str(run_dir)).live
        new = list(subscribe(run_dir, from_start=False, arrays=False))
        finish(process)
        assert new[0].seq > 0 and new[-1].KIND == "run.end"
        assert [e.seq for e in new] == list(range(new[0].seq, new[-1].seq + 1))
        with pytest.raises(EventrollError, match="no word from the hub"):
            list(subscribe(endpoint))  # the run is over: nothing speaks there any more

    def test_only_new_events_of_an_ended_run_whose_driver_lingers(self, finished_run, tmp_path):
        """from_start=False on a run whose log holds run.end gives nothing, at once, even
        while bus.json names a driver that is still there and a hub that says nothing (a
        driver ended but not yet reaped by its parent: the subscriber waited forever)."""
        import shutil

        run_dir = tmp_path / "run"
        shutil.copytree(finished_run, run_dir)
        (run_dir / BUS_FILE).write_text(json.dumps(
            {"live": f"ipc://{tmp_path}/nobody", "pid": os.getpid(), "run_id": "x"}))
        script = ("import sys\nfrom eventroll.live import subscribe\n"
                  "print(len(list(subscribe(sys.argv[1], from_start=False))))")
        done = subprocess.run([sys.executable, "-c", script, str(run_dir)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and done.stdout.strip() == "0", done.stderr

    def test_live_endpoint_while_running(self, tmp_path):
        """Subscribing to the hub's live endpoint yields consecutive events up to run.end."""
        run_dir = tmp_path / "run"
        process = start_run(run_dir, 3000)
        received = list(subscribe(read_bus_info(str(run_dir)).live, arrays=False))
        finish(process)
        seqs = [e.seq for e in received]
        assert seqs == list(range(seqs[0], seqs[-1] + 1)) and received[-1].KIND == "run.end"

    def test_kinds_and_no_follow(self, finished_run):
        """kinds keeps those kinds only; follow=False reads what is recorded and stops."""
        ends = list(subscribe(finished_run, kinds=["episode.end"], follow=False))
        assert len(ends) == 60 and {e.KIND for e in ends} == {"episode.end"}
        with pytest.raises(EventrollError, match="unknown event kinds"):
            list(subscribe(finished_run, kinds=["episode.stop"]))

    def test_without_an_event_log(self, tmp_path):
        """A finished run without an event log has nothing to subscribe to: a clear error."""
        run_dir = tmp_path / "run"
        done = cli("run", "runner.n_episodes=3", "runner.record_event_logs=false",
                   f"hydra.run.dir={run_dir}")
        assert done.returncode == 0, done.stderr
        with pytest.raises(EventrollError, match="has no events.msgpack"):
            list(subscribe(run_dir))


class TestTailAndWatch:
    def test_tail_filters(self, finished_run):
        """--kind, --worker and --episode keep only matching events, as JSON lines."""
        done = cli("tail", str(finished_run), "--kind", "episode.end", "--worker", "0")
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert done.returncode == 0 and lines
        assert {(line["kind"], line["worker"]) for line in lines} == {("episode.end", 0)}
        episode = cli("tail", str(finished_run), "--episode", "3")
        records = [json.loads(line) for line in episode.stdout.splitlines()]
        assert [r["kind"] for r in records][0] == "episode.start"
        assert {r["episode"] for r in records} == {3}
        batch = next(r for r in records if r["kind"] == "step.batch")
        logged = next(e for e in read_events(finished_run / "events.msgpack")
                      if e.KIND == "step.batch" and e.episode == 3)
        assert batch["action"] == logged.action.tolist()

    def test_tail_follows_a_live_run_to_its_end(self, tmp_path):
        run_dir = tmp_path / "run"
        process = start_run(run_dir, 3000)
        done = cli("tail", str(run_dir), "--follow", "--kind", "run.end")
        finish(process)
        assert [json.loads(line)["kind"] for line in done.stdout.splitlines()] == ["run.end"]

    def test_tail_bad_input(self, tmp_path):
        done = cli("tail", str(tmp_path / "missing"))
        assert done.returncode == 2 and done.stderr.count("\n") == 1
        assert "is neither a run directory" in done.stderr
        done = cli("watch", str(tmp_path), "--nice", "30")
        assert done.returncode == 2 and done.stderr.count("\n") == 1
        assert "--nice 30: choose idle (the default, the lowest), or 0" in done.stderr

    def test_followers_lower_their_priority(self, finished_run):
        """tail and watch run at SCHED_IDLE by default (on CPU time the run leaves), or
        lowered by --nice N, so that on a machine with few cores the run keeps the CPU."""
        script = ("import os, sys\nfrom eventroll.cli import main\nbefore = os.nice(0)\n"
                  "code = main(sys.argv[1:])\nidle = os.sched_getscheduler(0) == os.SCHED_IDLE\n"
                  "sys.stderr.write(f'niced {os.nice(0) - before} idle {idle}')\nsys.exit(code)")
        for args, expected in (([], "niced 0 idle True"), (["--nice", "3"], "niced 3 idle False"),
                               (["--nice", "0"], "niced 0 idle False")):
            done = subprocess.run([sys.executable, "-c", script, "tail", str(finished_run),
                                   "--kind", "run.end", *args],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0 and expected in done.stderr, done.stderr

    def test_watch_shows_the_final_state(self, finished_run):
        done = cli("watch", str(finished_run))
        assert done.returncode == 0, done.stderr
        assert "60 of 60 done, 0 aborted" in done.stdout and "completed" in done.stdout

    def test_watch_attached_to_a_live_run(self, tmp_path):
        run_dir = tmp_path / "run"
        process = start_run(run_dir, 3000)
        done = cli("watch", str(run_dir), "--refresh", "0.1")
        finish(process)
        assert done.returncode == 0, done.stderr
        assert "3,000 of 3,000 done" in done.stdout


class TestOffline:
    def test_replay_rebuilds_equal_artifacts(self, finished_run, tmp_path):
        """trajectories.h5 and stats.json rebuilt from the log equal the live ones."""
        out = tmp_path / "replayed"
        done = cli("replay", str(finished_run), "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert "steps/s" in done.stdout
        assert json.loads((out / "stats.json").read_text()) == json.loads(
            (finished_run / "stats.json").read_text())
        with h5py.File(finished_run / "trajectories.h5", "r") as live, \
                h5py.File(out / "trajectories.h5", "r") as replayed:
            names = []
            live.visititems(lambda name, obj: names.append(name)
                            if isinstance(obj, h5py.Dataset) else None)
            assert "episodes/return" in names
            for name in names:
                np.testing.assert_array_equal(live[name][()], replayed[name][()])
        again = cli("replay", str(finished_run), "--out", str(out))
        assert again.returncode == 2 and "already holds" in again.stderr

    def test_export_minari(self, finished_run, tmp_path):
        """`eventroll export minari` writes a dataset that Minari loads."""
        import minari

        done = cli("export", "minari", str(finished_run), "--dataset-id", "test/cartpole-v0",
                   "--out", str(tmp_path / "datasets"))
        assert done.returncode == 0, done.stderr
        os.environ["MINARI_DATASETS_PATH"] = str(tmp_path / "datasets")
        try:
            dataset = minari.load_dataset("test/cartpole-v0")
            assert dataset.total_episodes == 60
        finally:
            del os.environ["MINARI_DATASETS_PATH"]
        wrong = cli("export", "hdf5", str(finished_run))
        assert wrong.returncode == 2 and "only export format is minari" in wrong.stderr

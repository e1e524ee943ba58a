"""An exception in an episode aborts that episode only; the run says it failed."""

from __future__ import annotations

import pytest

from eventroll import ParallelRunner, SequentialRunner, read_events
from eventroll.errors import ConfigError
from eventroll.episodes import assemble
from eventroll.seeding import derive_seeds
from eventroll.testing import failing_env

ENV = {"name": "eventroll.testing:failing_env", "length": 5, "fail_step": 2, "fail_every": 3}
SEEDS = dict(explicit_env_seeds=[1, 2, 3, 4, 5, 6], agent_base_seed=0)


@pytest.mark.parametrize("runner", [SequentialRunner(n_episodes=6, console=None, **SEEDS),
                                    ParallelRunner(n_episodes=6, n_processes=2, console=None,
                                                   **SEEDS)], ids=["sequential", "parallel"])
class TestEnvRaisesInStep:
    def test_failed_episodes_are_aborted_and_the_rest_complete(self, runner, tmp_path):
        """Episodes whose env raises are aborted; the other episodes complete, whole."""
        result = runner.run_with(ENV, run_dir=str(tmp_path / "run"))
        assert (result.status, result.exit_code) == ("failed", 1)
        assert (result.episodes, result.aborted) == (4, 2)
        episodes = assemble(read_events(result.event_log))
        aborted = sorted(i for i, ep in episodes.items() if ep.end.aborted)
        assert aborted == [2, 5]  # seeds 3 and 6
        for index, episode in episodes.items():
            assert episode.length == (2 if index in aborted else 5)
            assert episode.end.terminated == (index not in aborted)

    def test_the_error_names_episode_and_step(self, runner, tmp_path):
        """Each abort has a worker.error event naming the episode, the step and the traceback."""
        result = runner.run_with(ENV, run_dir=str(tmp_path / "run"))
        errors = [e for e in read_events(result.event_log) if e.KIND == "worker.error"]
        assert sorted(e.episode for e in errors) == [2, 5]
        for error in errors:
            assert f"episode {error.episode}, step 2: RuntimeError" in error.error
            assert "planned failure" in error.traceback


def test_factory_objects_work_in_the_sequential_runner(tmp_path):
    """A factory callable is an env too."""
    result = SequentialRunner(n_episodes=2, env_base_seed=1, agent_base_seed=1).run_with(
        failing_env, run_dir=str(tmp_path / "run"))
    assert result.ok and result.steps == 10


def test_parallel_runner_names_an_env_it_cannot_send(tmp_path):
    """With spawned workers, an unpicklable env factory fails at once with a clear fix."""
    from eventroll.errors import ConfigError

    runner = ParallelRunner(n_episodes=2, n_processes=2, start_method="spawn")
    with pytest.raises(ConfigError, match="cannot be sent to worker processes.*module-level"):
        runner.run_with(lambda **kw: failing_env(**kw), run_dir=str(tmp_path / "run"))


def test_spawned_workers_record_the_same_run(tmp_path):
    """The spawn start method gives the same episodes as fork."""
    results = [ParallelRunner(n_episodes=8, n_processes=2, start_method=method,
                              env_base_seed=3, agent_base_seed=4).run_with(
                   "CartPole-v1", run_dir=str(tmp_path / method))
               for method in ("spawn", "fork")]
    assert all(r.ok for r in results)
    steps = [{i: ep.length for i, ep in assemble(read_events(r.event_log)).items()}
             for r in results]
    assert steps[0] == steps[1]


def test_killing_the_driver_leaves_no_process_and_a_readable_log(tmp_path):
    """SIGKILL of the driver mid-run: hub, recorder and workers exit by themselves, and the
    event log holds a clean prefix of the run. The socket directory it could not remove
    goes when the next run starts."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from eventroll.files import socket_directory

    run_dir, sockets = tmp_path / "run", tmp_path / "sockets"
    sockets.mkdir()
    driver = subprocess.Popen(
        [sys.executable, "-m", "eventroll.cli", "run", "runner.n_episodes=1000000",
         f"hydra.run.dir={run_dir}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(sockets)})
    log = run_dir / "events.msgpack"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or log.stat().st_size < 100_000):
        time.sleep(0.1)
    children = subprocess.run(["pgrep", "-P", str(driver.pid)], capture_output=True,
                              text=True).stdout.split()
    assert children, "the run's processes were started"
    driver.send_signal(signal.SIGKILL)
    driver.wait(10)
    deadline = time.monotonic() + 30
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if os.path.exists(f"/proc/{pid}")
                 and "Z" not in open(f"/proc/{pid}/stat").read().split(") ")[-1][:1]]
    for pid in alive:
        os.kill(int(pid), signal.SIGKILL)
    assert alive == [], "every process of the run exits once its driver is gone"
    events = list(read_events(log))
    assert events[0].KIND == "run.start"
    assert [e.seq for e in events] == list(range(len(events)))
    [left] = os.listdir(sockets)
    assert left.startswith(f"eventroll-{driver.pid}-")
    fresh = socket_directory(str(sockets))
    assert os.listdir(sockets) == [os.path.basename(fresh)]


N_KILLED_RUN = 60
KILLED = 9  # the episode reset with seed 10 kills its worker at step 2


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    env = {"name": "eventroll.testing:failing_env", "length": 5, "fail_step": 2, "kill_seed": 10}
    # one worker, sending every 5 s: it dies with episodes 0 to 8 finished and unsent
    runner = ParallelRunner(n_episodes=N_KILLED_RUN, n_processes=1, console=None,
                            flush_interval=5.0,
                            explicit_env_seeds=list(range(1, N_KILLED_RUN + 1)), agent_base_seed=0)
    return runner.run_with(env, run_dir=str(tmp_path_factory.mktemp("killed") / "run"))


class TestWorkerKilled:
    """A worker SIGKILLed mid-episode: the run notices, aborts that episode, has the
    episodes the worker had not sent whole played again by a replacement worker, and
    ends failed with a one-line reason; every artifact holds every other episode."""

    def test_the_run_says_which_worker_died_and_what_became_of_its_episodes(self, killed_run):
        assert (killed_run.status, killed_run.exit_code) == ("failed", 1)
        assert (killed_run.episodes, killed_run.aborted) == (N_KILLED_RUN - 1, 1)
        [death] = [e for e in killed_run.errors if "killed by SIGKILL" in e]
        assert f"episode {KILLED} aborted" in death and "\n" not in death

    def test_every_other_episode_is_whole_in_the_event_log(self, killed_run):
        log = list(read_events(killed_run.event_log))
        episodes = assemble(log)
        assert sorted(episodes) == [i for i in range(N_KILLED_RUN) if i != KILLED]
        assert all((e.length, e.end.terminated) == (5, True) for e in episodes.values())
        [end] = [e for e in log if e.KIND == "episode.end" and e.episode == KILLED]
        assert end.aborted and end.length == 0

    def test_the_dead_worker_stream_is_ended_for_it(self, killed_run):
        log = list(read_events(killed_run.event_log))
        dead = next(e.worker for e in log if e.KIND == "worker.error" and e.episode == KILLED)
        stream = [e for e in log if e.worker == dead]
        assert [e.wseq for e in stream] == list(range(len(stream)))
        assert stream[-1].KIND == "worker.end"
        lost = [e.episode for e in log if e.KIND == "episode.lost"]
        assert KILLED in lost
        assert sorted(set(lost) - {KILLED}) == list(range(KILLED))  # finished, never sent
        replacement = {e.worker for e in log if e.KIND == "episode.start" and e.episode < KILLED}
        assert replacement == {1}  # the replacement worker's id comes after 0

    def test_validate_finds_the_log_whole(self, killed_run):
        from eventroll.validation import validate_event_log
        report = validate_event_log(killed_run.event_log)
        assert report.valid, [str(problem) for problem in report.problems]

    def test_trajectories_and_stats_agree(self, killed_run):
        import json
        import os
        from eventroll.trajectories.flat import TrajectoryFile
        with TrajectoryFile(os.path.join(killed_run.run_dir, "trajectories.h5")) as trajectories:
            statuses = {t.index: t.status for t in trajectories}
        assert sorted(statuses) == list(range(N_KILLED_RUN))
        assert [i for i, s in statuses.items() if s == "aborted"] == [KILLED]
        with open(os.path.join(killed_run.run_dir, "stats.json")) as file:
            stats = json.load(file)
        assert (stats["episode_count"], stats["aborted_episode_count"]) == (N_KILLED_RUN - 1, 1)


@pytest.mark.parametrize("runner_class", [SequentialRunner, ParallelRunner])
def test_retries_play_a_failed_episode_again(runner_class, tmp_path):
    """runner.retries=1 plays an episode that failed once again, with the same seeds: the
    failure stays visible (worker.error, episode.lost, lost_attempt_count) and the run
    completes whole."""
    import json
    import os
    from eventroll.validation import validate_event_log

    env = {**ENV, "fail_times": 1}
    result = runner_class(n_episodes=6, retries=1, console=None, **SEEDS).run_with(
        env, run_dir=str(tmp_path / "run"))
    assert (result.status, result.episodes, result.aborted) == ("completed", 6, 0)
    log = list(read_events(result.event_log))
    assert sorted(e.episode for e in log if e.KIND == "worker.error") == [2, 5]
    lost = [e for e in log if e.KIND == "episode.lost"]
    assert sorted(e.episode for e in lost) == [2, 5]
    assert all("played again (runner.retries)" in e.reason for e in lost)
    episodes = assemble(log)
    assert sorted(episodes) == list(range(6))
    assert all((e.length, e.end.aborted) == (5, False) for e in episodes.values())
    with open(os.path.join(result.run_dir, "stats.json")) as file:
        stats = json.load(file)
    assert (stats["episode_count"], stats["lost_attempt_count"]) == (6, 2)
    assert validate_event_log(result.event_log).valid


def test_retries_are_bounded(tmp_path):
    """An episode that fails every time is played 1 + retries times, then aborted."""
    result = SequentialRunner(n_episodes=6, retries=2, console=None, **SEEDS).run_with(
        ENV, run_dir=str(tmp_path / "run"))
    assert (result.status, result.episodes, result.aborted) == ("failed", 4, 2)
    log = list(read_events(result.event_log))
    assert sorted(e.episode for e in log if e.KIND == "worker.error") == [2, 2, 2, 5, 5, 5]
    assert sorted(e.episode for e in log if e.KIND == "episode.lost") == [2, 2, 5, 5]


def test_a_killed_worker_episode_is_retried_then_aborted(tmp_path):
    """With runner.retries=1 the episode a killed worker was playing is played again by a
    replacement; that one dies in it too, and the episode is then aborted."""
    from eventroll.validation import validate_event_log

    env = {"name": "eventroll.testing:failing_env", "length": 5, "fail_step": 2, "kill_seed": 10}
    result = ParallelRunner(n_episodes=30, n_processes=2, retries=1, console=None,
                            explicit_env_seeds=list(range(1, 31)), agent_base_seed=0).run_with(
        env, run_dir=str(tmp_path / "run"))
    deaths = [e for e in result.errors if "killed by SIGKILL" in e]
    assert len(deaths) == 2 and "no episode aborted" in deaths[0]
    assert f"episode {KILLED} aborted" in deaths[1]
    assert (result.episodes, result.aborted) == (29, 1)
    report = validate_event_log(result.event_log)
    assert report.valid, [str(problem) for problem in report.problems]


def test_bad_retries():
    with pytest.raises(ConfigError, match="runner.retries must be an integer >= 0"):
        SequentialRunner(retries=-1)


def start_long_run(run_dir, *overrides):
    """`eventroll run` of 40,000 episodes (about 900,000 steps: 10 s on a quiet day; it
    had 8,000, which a quiet machine finished before the tests had killed their process)
    in a session of its own; returns once its event log holds 600 kB: the run is in full
    swing."""
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "eventroll.cli", "run", "runner.n_episodes=40000",
         f"hydra.run.dir={run_dir}", *overrides],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = run_dir / "events.msgpack"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or log.stat().st_size < 600_000):
        time.sleep(0.05)
    return process


def group_gone(pgid: int, timeout: float = 10.0) -> bool:
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    return False


@pytest.mark.parametrize("signum, code", [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.parametrize("runner", ["parallel", "sequential"])
def test_an_interrupt_stops_the_run_cleanly(tmp_path, signum, code, runner):
    """SIGINT (Ctrl-C: the whole process group) or SIGTERM: the episodes being played end,
    no new one starts, every artifact is closed whole, the exit status says which signal,
    and no process is left."""
    import json
    import os
    import signal
    import time
    from eventroll.trajectories.flat import TrajectoryFile
    from eventroll.validation import validate_event_log

    run_dir = tmp_path / "run"
    process = start_long_run(run_dir, f"runner={runner}")
    sent = time.monotonic()
    os.killpg(process.pid, getattr(signal, signum))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert time.monotonic() - sent < 10
    assert f"interrupted by {signum} after" in stderr and "Traceback" not in stderr
    assert group_gone(process.pid)
    report = validate_event_log(run_dir / "events.msgpack")
    assert report.valid, [str(problem) for problem in report.problems]
    events = list(read_events(run_dir / "events.msgpack"))
    assert events[-1].KIND == "run.end" and events[-1].status == "interrupted"
    ended = sum(e.KIND == "episode.end" for e in events)
    with TrajectoryFile(str(run_dir / "trajectories.h5")) as trajectories:
        assert len(trajectories) == ended > 0
    with open(run_dir / "stats.json") as file:
        assert json.load(file)["episode_count"] == ended


def test_a_second_interrupt_stops_at_once(tmp_path):
    """Two Ctrl-C in a row: the run stops at once, leaves no process, and what it had
    flushed is readable."""
    import os
    import signal
    import time

    run_dir = tmp_path / "run"
    process = start_long_run(run_dir)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode in (130, -signal.SIGINT)
    assert group_gone(process.pid)
    events = list(read_events(run_dir / "events.msgpack"))
    assert events[0].KIND == "run.start" and len(events) > 100


@pytest.mark.parametrize("runner", ["parallel", "sequential"])
def test_a_killed_hub_stops_the_run_within_seconds(tmp_path, runner):
    """SIGKILL of the hub: the driver notices within seconds, stops every process of the
    run and exits 1 with one line naming the hub; the event log holds a clean prefix."""
    import os
    import signal
    import subprocess
    import time

    run_dir = tmp_path / "run"
    process = start_long_run(run_dir, f"runner={runner}")
    children = subprocess.run(["ps", "--ppid", str(process.pid), "-o", "pid=",
                               "--sort=start_time"], capture_output=True, text=True).stdout.split()
    os.kill(int(children[0]), signal.SIGKILL)  # the hub is the first process a run starts
    killed = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - killed < 10
    assert process.returncode == 1
    [line] = [line for line in stderr.splitlines() if line.startswith("eventroll run: error:")]
    assert "the hub (pid" in line and "killed by SIGKILL mid-run" in line
    assert group_gone(process.pid)
    events = list(read_events(run_dir / "events.msgpack"))
    assert events[0].KIND == "run.start"
    assert [e.seq for e in events] == list(range(len(events)))


def _flushed_episodes(path) -> int:
    """The episodes a trajectory file being written holds (0 before it exists)."""
    from eventroll.trajectories.flat import TrajectoryFile

    try:
        with TrajectoryFile(str(path)) as trajectories:
            return len(trajectories)
    except Exception:  # not created yet, or its layout not flushed yet
        return 0


def test_a_killed_recorder_is_named_and_its_artifacts_rebuilt(tmp_path):
    """SIGKILL of the trajectory and statistics recorder: the run goes on (the event log
    keeps everything), says which recorder died and how to rebuild its artifacts, and
    `eventroll replay` rebuilds them from the event log."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from eventroll.trajectories.flat import TrajectoryFile

    run_dir = tmp_path / "run"
    process = start_long_run(run_dir)
    children = subprocess.run(["ps", "--ppid", str(process.pid), "-o", "pid=",
                               "--sort=start_time"], capture_output=True, text=True).stdout.split()
    deadline = time.monotonic() + 30
    while not _flushed_episodes(run_dir / "trajectories.h5"):  # wait for a first block
        assert time.monotonic() < deadline, "no block of trajectories flushed in 30 s"
        time.sleep(0.1)
    os.kill(int(children[2]), signal.SIGKILL)  # hub, event log, trajectories+stats, workers
    time.sleep(1.0)
    assert process.poll() is None, "the run goes on"
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "recorder process 'trajectories+stats' killed by SIGKILL: its artifacts hold what " \
           "it had flushed; `eventroll replay` rebuilds them" in stderr.replace("\n", " ")
    assert group_gone(process.pid)
    ended = sum(e.KIND == "episode.end" for e in read_events(run_dir / "events.msgpack"))
    with TrajectoryFile(str(run_dir / "trajectories.h5")) as trajectories:
        assert 0 < len(trajectories) < ended
    out = tmp_path / "rebuilt"
    done = subprocess.run([sys.executable, "-m", "eventroll.cli", "replay", str(run_dir),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with TrajectoryFile(str(out / "trajectories.h5")) as trajectories:
        assert len(trajectories) == ended


def test_a_file_size_limit_is_named_and_what_was_written_stays_readable(tmp_path):
    """A file size limit (as a full disk) hit while writing: each artifact that hit it is
    named with the cause in one line; the run says it failed; what was written before
    stays readable. The limit lies beyond the first blocks of both files (a block of the
    HDF5 file is at most 65,536 CartPole steps, about 2 MB) and below what the run writes
    to each (about 10 MB of event log and 5.3 MB of HDF5)."""
    import resource
    import subprocess
    import sys
    from eventroll.trajectories.flat import TrajectoryFile

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, 3_000_000))

    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "eventroll.cli", "run", "runner.n_episodes=40000",
                           f"hydra.run.dir={run_dir}"], capture_output=True, text=True,
                          preexec_fn=limit, timeout=120)
    assert done.returncode == 1
    stderr = " ".join(done.stderr.split())
    for recorder, name in (("eventlog", "events.msgpack"), ("trajectories", "trajectories.h5")):
        assert f"{recorder}: stopped writing {run_dir / name}" in stderr
    assert "File too large: a file size limit was hit; it holds what was written before" in stderr
    assert "SIGSEGV" not in stderr and "closing failed" not in stderr
    logged = list(read_events(run_dir / "events.msgpack"))  # stops cleanly at a cut record
    assert len(logged) > 1000 and [event.seq for event in logged] == list(range(len(logged)))
    assert "run.end" not in {event.KIND for event in logged}  # cut short
    with TrajectoryFile(str(run_dir / "trajectories.h5")) as trajectories:
        assert len(trajectories) >= 1
        assert all(t.length == len(t.rewards) for t in trajectories)


@pytest.mark.parametrize("runner_class", [SequentialRunner, ParallelRunner])
def test_env_raises_in_reset(runner_class, tmp_path):
    """An env that raises in reset: that episode is aborted (no steps) with the traceback
    in a worker.error naming the reset; the worker goes on with the next episode."""
    env = {**ENV, "fail_step": -1}
    result = runner_class(n_episodes=6, console=None, **SEEDS).run_with(
        env, run_dir=str(tmp_path / "run"))
    assert (result.status, result.episodes, result.aborted) == ("failed", 4, 2)
    log = list(read_events(result.event_log))
    errors = [e for e in log if e.KIND == "worker.error"]
    assert sorted(e.episode for e in errors) == [2, 5]
    assert all(f"episode {e.episode}, reset: RuntimeError" in e.error
               and "planned failure in reset" in e.traceback for e in errors)
    ends = {e.episode: e for e in log if e.KIND == "episode.end"}
    assert sorted(ends) == list(range(6))
    assert all((ends[i].aborted, ends[i].length) == (True, 0) for i in (2, 5))
    # no episode.start: their seeds come from run.start (explicit env seeds, derived agent ones)
    from eventroll.trajectories.flat import TrajectoryFile
    with TrajectoryFile(result.trajectories) as trajectories:
        assert [(trajectories[i].env_seed, trajectories[i].agent_seed) for i in (2, 5)] == [
            (3, derive_seeds(0, 6)[2]), (6, derive_seeds(0, 6)[5])]


@pytest.mark.parametrize("fault, message", [
    ("action", "InvalidAction: the policy's action 4 is outside the action space Discrete(2)"),
    ("raise", "RuntimeError: FaultyPolicy: planned failure")])
def test_a_faulty_policy_aborts_its_episode(tmp_path, fault, message):
    """A policy that raises, or gives an action outside the action space: the episode is
    aborted with a message naming the episode, the step and the action; the others run."""
    policy = {"name": "eventroll.testing:FaultyPolicy", "fault": fault, "every": 3}
    result = ParallelRunner(n_episodes=6, n_processes=2, console=None,
                            explicit_agent_seeds=[1, 2, 3, 4, 5, 6], env_base_seed=0).run_with(
        "CartPole-v1", agent=policy, run_dir=str(tmp_path / "run"))
    assert (result.status, result.episodes, result.aborted) == ("failed", 4, 2)
    errors = {e.episode: e.error for e in read_events(result.event_log) if e.KIND == "worker.error"}
    assert sorted(errors) == [2, 5]  # agent seeds 3 and 6
    assert all(error == f"episode {episode}, step 1: {message}" for episode, error in errors.items())

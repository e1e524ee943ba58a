#!/usr/bin/env python
"""The benchmark suite of eventroll: one command, every scenario side by side.

What it measures
----------------
Four scenarios run one after the other; within a scenario the configurations
are interleaved round-robin over ``--repeats`` rounds (the starting
configuration rotates from round to round), after one untimed warm-up run of
each (``--warmup-steps``), as ``tools/bench_rollout.py`` does. Every run is a
fresh process timed from just before it is started until it has exited
(interpreter start, imports, building envs, spawning processes and tearing them
down all included); steps/s is the steps it did divided by that wall time.
Medians, the ratio of medians and the spread ((max - min) / median) of the
repeats are reported.

``cartpole``: CartPole-v1, uniformly random actions, ``--steps`` steps a run:

* ``plain loop``: the plain single-process Gymnasium loop of
  ``bench_rollout.py`` (``gym.make``, ``reset(seed=i)`` per episode,
  ``action_space.sample()``), the reference of every ratio;
* ``SyncVectorEnv(2)`` and ``AsyncVectorEnv(2)``: ``gymnasium.vector`` with
  two CartPole-v1 envs, ``autoreset_mode=SAME_STEP`` (a finished sub-env is
  reset inside the same ``step`` call, so every call steps both), actions from
  ``envs.action_space.sample()``, every sub-env step counted; no recording.
  The async one runs at most ``--async-steps`` steps (it is several times
  slower on two cores);
* ``Minari DataCollector``: the plain loop with the env wrapped in
  ``minari.DataCollector(data_format="hdf5")``, ``create_dataset`` included in
  the timing, at most ``--minari-steps`` steps (it is about 30x slower);
  skipped, with a note, if ``minari`` or the ``jax`` its DataCollector needs
  cannot be imported (``pip install 'minari[create]>=0.5,<0.6'``);
* ``eventroll run``: sequential, all recorders; parallel with 2 workers:
  recorders off, event log only, all recorders (the configurations and episode
  sizing of ``bench_rollout.py``).

``startup``: ``eventroll run runner.n_episodes=1`` (the default parallel
runner and recorders; with one episode it starts one worker) next to the plain
loop doing one episode, both in a fresh interpreter; the wall time is the figure.

``image``: ``bench_envs:ImageEnv`` (``tools/bench_envs.py``): ``uint8``
observations of ``--image-shape`` (84x84), episodes of
``--image-episode-steps`` (1000) steps, each step returning the same
preallocated frame, so stepping costs next to nothing and the run measures the
bus and the recorders. ``eventroll run`` parallel with 2 workers: all
recorders, event log only, recorders off, ``--image-steps`` steps a run.
MB/s = steps x observation bytes / wall time (MB = 10^6 bytes), over the whole
process and over the run itself: from the ``run.start`` line of ``run.jsonl``
(after imports and the env probe, before the hub, recorders and workers start)
to its ``run.end`` line (once every recorder has finished its artifacts; the
``wall_time`` that ``run.end`` reports stops before the recorders finish, so a
backlog they drain at the end would not count).

``latency``: ``bench_envs:timed_cartpole`` (each observation ends with the
``time.time()`` at which it was stepped), ``eventroll run`` parallel with 2
workers and all recorders at full speed for ``--latency-steps`` steps, and one
live subscriber (``eventroll.subscribe(run_dir)``, a separate process started
as soon as the run's ``bus.json`` appears, as ``tools/bench_live.py`` does).
For every step it receives in a ``step.batch`` it takes ``time.time()`` on
arrival minus the step's own time, for the steps made after it started
(earlier ones are its backlog); also, for comparison, arrival minus the
batch's envelope ``time`` (set when the worker added the batch to its
publisher). Percentiles per run (p50, p90, p99, max); the report gives the
median of the runs' percentiles and the largest max.

Bytecode. Where ``PYTHONDONTWRITEBYTECODE`` is set, no run writes eventroll's
``.pyc`` files and every start compiles eventroll anew; the suite then compiles
them once before the first run (``compileall``), as the first run of an
installation does elsewhere, and says so in its notes.

Memory and disk. Every run is started in a process group of its own; every
``0.1 s`` the suite reads ``/proc`` for the run's process tree (processes
started after it whose parent is in the tree; pids are assumed not to wrap
around within a run) and each process's ``VmHWM`` (the kernel's peak RSS) from
``/proc/PID/status``, keeping the largest value seen. RSS counts the pages a
forked child still shares with its parent in both, so the figures do not add
up. Roles: ``main`` is the process started (for ``eventroll run``, the driver);
its children, in the order they started, are what the configuration says it
starts (``eventroll``: the hub, the recorder processes (the event log alone;
trajectories and statistics together), then the workers; multiprocessing names
them, but forked children keep the driver's command line, so the start order is
what tells them apart). The order is checked against the files each child has
open (``/proc/PID/fd``: the event log recorder holds ``events.msgpack``, the
trajectories one ``trajectories.h5``); if the children or their files do not
match, they are reported as ``child 1``, ``child 2``, ... in start order, with
a note. A child that is none of these (``uname -p``, which ``platform`` runs at
import; caught only if it lives through a look) is ``helper NAME``: it was seen
running another program, or (``eventroll``) without the run's ``run.jsonl``
open, which the driver opens before it starts the hub and which every process
it forks inherits. ``largest`` is the ``ru_maxrss`` that ``wait4`` gives for
the run (the largest peak RSS of the run's process and of every descendant it
reaped, exact, nothing missed between two looks), but only where it is above
this suite's own peak RSS: the kernel counts, for a process forked from the
suite, the suite's RSS up to its exec, so a smaller figure may be the suite's;
there the largest value sampled stands. Memory figures are the largest over the
repeats.

CPU. At the same looks, each process's user + system CPU time (``/proc/PID/stat``),
keeping the last value seen (what a process does in its last ``0.1 s`` is missed);
the tables give the median over the repeats by role. On this machine the speed of
the cores changes by up to 2x within minutes, so two configurations timed a minute
apart compare the hour as much as the code. The on / off target therefore also
gives each round's own ratio and the ratio the run with all recorders predicts
from its own CPU times: its recorder processes' CPU over its other processes'
(driver, hub, workers), plus one (on two cores that stay busy, a run's time goes
with the CPU time of its processes), measured under one load.

Bytes on disk per step: the run directory's HDF5 files (``trajectories.h5``;
Minari's dataset) and its event log (``events.msgpack``), each divided by the
run's steps, medians of the repeats.

Targets (the issue's): parallel 2 with all recorders >= 1.0x the plain loop;
all recorders on / off, same runner, time per step <= 1.10x (by the medians; the
detail as above); start-up, a
one-episode run, <= 0.8 s; peak RSS of the largest process (any eventroll run
of the suite) <= 120 MiB; HDF5 bytes per CartPole step <= 40; image through the
bus and all recorders >= 400 MB/s (over the run); live latency p99 <= 100 ms.

Every process the suite starts has ``tools/`` on ``PYTHONPATH`` (for
``bench_envs``). Every run has a timeout (``--timeout``) and is killed with its
process group past it; every process is reaped; every run directory is removed
when it has been measured, the temporary directory at the end. Progress goes to
stderr, the report to stdout (``--markdown``: Markdown tables), and ``--json
FILE`` writes everything: the command line, the machine, every configuration
with its command, every run's measurements, medians, ratios, memory, bytes per
step and the targets. Exit status 1 if any run failed, else 0.

How to run
----------
From the repository root, with the Python of the environment that has
``eventroll`` installed::

    python tools/bench_suite.py                                      # 200,000 steps, 3 repeats
    python tools/bench_suite.py --steps 1000000 --repeats 3 --markdown --json bench.json
    python tools/bench_suite.py --steps 20000 --repeats 1            # a quick smoke run
    python tools/bench_suite.py --scenarios image,latency
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_live  # noqa: E402  (tools/ is no package)
import bench_rollout  # noqa: E402
from bench_rollout import (ALL, LOG_ONLY, NONE, PARALLEL, Bench, Config, Outcome,  # noqa: E402
                           Series, log, tail)

PROG = "bench_suite"   # the name in messages
TOOLS = os.path.dirname(os.path.abspath(__file__))
SAMPLE_INTERVAL = 0.1   # s between two looks at a run's processes (CPU: up to this much unseen)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024              # KiB
SCENARIOS = ("cartpole", "startup", "image", "latency")
EVENT_LOG, TRAJECTORIES, RUN_LOG = "events.msgpack", "trajectories.h5", "run.jsonl"
EVIDENCE = {EVENT_LOG: "eventlog", TRAJECTORIES: "trajectories+stats"}   # file -> who holds it
RECORDERS = ("eventlog", "trajectories+stats")
WORKERS_2 = ("worker 0", "worker 1")
Results = dict[str, list[Series]]   # scenario name -> its series, in running order

# Gymnasium's vector envs: python -c VECTOR_LOOP STEPS RUN_DIR sync|async N_ENVS
VECTOR_LOOP = """\
import json, sys
import gymnasium as gym
from gymnasium.vector import AutoresetMode
n, kind, n_envs = int(sys.argv[1]), sys.argv[3], int(sys.argv[4])
vector = gym.vector.SyncVectorEnv if kind == "sync" else gym.vector.AsyncVectorEnv
envs = vector([lambda: gym.make("CartPole-v1")] * n_envs, autoreset_mode=AutoresetMode.SAME_STEP)
envs.reset(seed=0)
envs.action_space.seed(0)
steps = episodes = 0
while steps < n:
    _, _, terminated, truncated, _ = envs.step(envs.action_space.sample())
    steps += n_envs
    episodes += int((terminated | truncated).sum())
envs.close()
""" + bench_rollout.RESULT

# Minari's DataCollector around the plain loop: python -c MINARI_LOOP STEPS RUN_DIR
MINARI_LOOP = """\
import json, os, sys
os.environ["MINARI_DATASETS_PATH"] = sys.argv[2]
import gymnasium as gym
from minari import DataCollector
n = int(sys.argv[1])
env = DataCollector(gym.make("CartPole-v1"), data_format="hdf5")
""" + bench_rollout.EPISODES + """\
env.create_dataset(dataset_id="bench/cartpole-random-v0", algorithm_name="random policy",
                   author="bench_suite", author_email="-", code_permalink="-",
                   description="tools/bench_suite.py", eval_env="CartPole-v1")
env.close()
""" + bench_rollout.RESULT

# The live subscriber of the latency scenario: python -c LATENCY_SUBSCRIBER RUN_DIR
LATENCY_SUBSCRIBER = """\
import json, sys, time
import numpy as np
from eventroll.live import subscribe
n = out_of_order = 0
first = last = None
steps, batches = [], []
started = time.time()
for event in subscribe(sys.argv[1]):
    now = time.time()
    out_of_order += event.seq != n
    n += 1
    last = event.KIND
    if n == 1:
        first = time.monotonic()
    if last == "step.batch":
        stepped = event.observation[:, -1]
        steps.append(now - stepped[stepped >= started])
        if event.time >= started:
            batches.append(now - event.time)
def percentiles(values):
    values = np.asarray(values, dtype=np.float64) * 1000.0
    if not len(values):
        return None
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"n": len(values), "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": values.max()}
print(json.dumps({"events": n, "out_of_order": out_of_order, "last": last, "first": first,
                  "done": time.monotonic(), "step": percentiles(np.concatenate(steps or [[]])),
                  "envelope": percentiles(batches)}))
"""


@dataclass
class SuiteConfig(Config):
    """A configuration: an eventroll run (``overrides``), the plain loop (neither), or a
    script (``python -c script STEPS RUN_DIR *script_args``); ``children``: the roles of
    the processes the main process starts, in start order."""

    script: str | None = None
    script_args: list[str] = field(default_factory=list)
    children: tuple[str, ...] = ()
    obs_bytes: int = 0   # bytes of an observation, for MB/s (0: not reported)


@dataclass
class SuiteOutcome(Outcome):
    """One run, measured: its memory (``memory``: role -> peak RSS in KiB), disk and time."""

    memory: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)   # role -> CPU seconds (user + system)
    roles_reliable: bool = True
    max_rss_kib: int = 0               # wait4's, if above the suite's own peak; else 0
    disk: dict[str, int] = field(default_factory=dict)   # hdf5, event_log, total: bytes
    run_wall: float | None = None      # s from run.start to run.end in run.jsonl (eventroll)


@dataclass
class Proc:
    """A process of a run's tree, as /proc showed it."""

    pid: int
    ppid: int
    started: int            # clock ticks after boot
    peak_kib: int = 0
    cpu_ticks: int = 0      # user + system CPU time in clock ticks, as last seen
    command: str = ""       # its command line, as last seen
    comm: str = ""          # its name (/proc/PID/comm): eventroll names its processes er-...
    files: set[str] = field(default_factory=set)   # names of run_dir files it had open
    fds_read: bool = False  # whether its open files could be read at all

    def session_member(self, main: Proc | None, marker: str | None) -> bool:
        """Whether this child of ``main`` is one of the processes the run starts: not when it
        was seen running another program, nor when it was seen without ``marker`` open (a
        file of the run directory the main process opens before starting them)."""
        if main and main.command and self.command and self.command != main.command:
            return False
        return not (marker and self.fds_read and marker not in self.files)


class ProcessTree:
    """The process ``root`` and its descendants, sampled from /proc."""

    def __init__(self, root: int, run_dir: str) -> None:
        self.root = root
        self.run_dir = run_dir
        self.procs: dict[int, Proc] = {}
        self._strangers: set[int] = set()

    def sample(self) -> None:
        pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
        for pid in pids:   # parents before their children
            if pid >= self.root and pid not in self.procs and pid not in self._strangers:
                self._adopt(pid)
        for proc in self.procs.values():
            proc.peak_kib = max(proc.peak_kib, vm_hwm(proc.pid))
            proc.cpu_ticks = max(proc.cpu_ticks, cpu_ticks(proc.pid))
            proc.command = read_cmdline(proc.pid) or proc.command
            proc.comm = read_comm(proc.pid) or proc.comm
            files = open_files(proc.pid, self.run_dir)
            if files is not None:
                proc.files |= files
                proc.fds_read = True

    def _adopt(self, pid: int) -> None:
        stat = read_stat(pid)
        if stat is None:
            return
        ppid, started = stat
        if pid == self.root or ppid in self.procs:
            self.procs[pid] = Proc(pid, ppid, started, command=read_cmdline(pid))
        else:
            self._strangers.add(pid)

    def roles(self, children: tuple[str, ...], marker: str | None
              ) -> tuple[list[tuple[str, Proc]], bool]:
        """The processes by role (``main`` first), and whether the roles could be told apart
        (else the root's forked children are ``child 1``, ``child 2``, ... in start order).
        Children that are no members of the session (Proc.session_member with ``marker``;
        ``uname -p``, which ``platform`` runs at import) are ``helper NAME``."""
        ordered = sorted(self.procs.values(), key=lambda p: (p.started, p.pid))
        main = self.procs.get(self.root)
        first = [("main", main)] if main else []
        kids = [p for p in ordered if p.ppid == self.root]
        named = {p.pid: comm_role(p.comm) for p in kids}
        if sorted(filter(None, named.values())) == sorted(children) and len(ordered) == len(kids) + 1:
            return first + [(named[p.pid] or f"helper {p.comm or '?'}", p) for p in kids], True
        forks = [p for p in kids if p.session_member(main, marker)]
        reliable = len(forks) == len(children) and all(
            EVIDENCE[f] == role for p, role in zip(forks, children)
            for f in p.files & EVIDENCE.keys())
        names = children if reliable else [f"child {i + 1}" for i in range(len(forks))]
        helpers = [(f"helper {os.path.basename(p.command.split()[0]) if p.command else '?'}", p)
                   for p in kids if p not in forks]
        others = [p for p in ordered if p.pid != self.root and p.ppid != self.root]
        return (first + list(zip(names, forks)) + helpers
                + [(f"descendant {i + 1}", p) for i, p in enumerate(others)],
                reliable and not others)


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the process's name (``fields[0]`` is its
    state, field 3 of proc(5)), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            return file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def read_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a process, None if it is gone."""
    fields = stat_fields(pid)
    return None if fields is None else (int(fields[1]), int(fields[19]))


def cpu_ticks(pid: int) -> int:
    """A process's user + system CPU time in clock ticks, 0 if it is gone."""
    fields = stat_fields(pid)
    return 0 if fields is None else int(fields[11]) + int(fields[12])


def comm_role(comm: str) -> str | None:
    """The role of a process eventroll named (eventroll.files.name_process), else None."""
    if comm.startswith("er-worker-"):
        return f"worker {comm[len('er-worker-'):]}"
    return {"er-hub": "hub", "er-eventlog": "eventlog",
            "er-trajectories": "trajectories+stats"}.get(comm)


def read_comm(pid: int) -> str:
    """A process's name (what ps -o comm shows); "" if it is gone."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as file:
            return file.read().strip()
    except OSError:
        return ""


def read_cmdline(pid: int) -> str:
    """A process's command line, its arguments joined by spaces; "" if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def vm_hwm(pid: int) -> int:
    """The peak RSS (KiB) the kernel keeps for a process; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def open_files(pid: int, run_dir: str) -> set[str] | None:
    """The names of the files of ``run_dir`` a process has open; None if it cannot be told."""
    found = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if os.path.dirname(target) == run_dir:
            found.add(os.path.basename(target))
    return found


def run_span(config: Config, run_dir: str) -> float | None:
    """Seconds from the ``run.start`` line of an eventroll run's ``run.jsonl`` to its
    ``run.end`` line, by their timestamps; None for other runs or if either is missing."""
    if config.plain:
        return None
    stamps = {}
    with open(os.path.join(run_dir, "run.jsonl"), encoding="utf-8") as file:
        for line in filter(str.strip, file):
            record = json.loads(line)
            if record.get("event") in ("run.start", "run.end"):
                stamps[record["event"]] = datetime.fromisoformat(
                    record["timestamp"].replace("Z", "+00:00"))
    if len(stamps) < 2:
        return None
    return (stamps["run.end"] - stamps["run.start"]).total_seconds()


def disk_usage(run_dir: str) -> dict[str, int]:
    """Bytes in a run directory: its HDF5 files, its event log, everything."""
    usage = {"hdf5": 0, "event_log": 0, "total": 0}
    for folder, _, files in os.walk(run_dir):
        for name in files:
            size = os.path.getsize(os.path.join(folder, name))
            usage["total"] += size
            usage["hdf5"] += size if name.endswith((".h5", ".hdf5")) else 0
            usage["event_log"] += size if name == EVENT_LOG else 0
    return usage


class SuiteBench(Bench):
    """bench_rollout's Bench, each run in a process group of its own with its process tree
    sampled, its peak memory and its bytes on disk measured."""

    def command(self, config: SuiteConfig,  # type: ignore[override]
                steps: int, run_dir: str) -> list[str]:
        if config.script is None:
            return super().command(config, steps, run_dir)
        return [sys.executable, "-c", config.script, str(steps), run_dir, *config.script_args]

    def run_once(self, config: SuiteConfig, steps: int) -> Outcome:  # type: ignore[override]
        run_dir = self.next_run_dir()
        os.makedirs(run_dir)
        try:
            with bench_live.Processes(self.workdir) as processes:
                return self._measure(processes, config, steps, run_dir)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _measure(self, processes: bench_live.Processes, config: SuiteConfig, steps: int,
                 run_dir: str) -> Outcome:
        own_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        run = processes.start_run(self.command(config, steps, run_dir))
        tree = ProcessTree(run.popen.pid, run_dir)
        while not run.exited.wait(SAMPLE_INTERVAL):
            tree.sample()
            if time.perf_counter() - start > self.timeout:
                return Outcome(False, error=f"timed out after {self.timeout:g} s")
        wall = run.exit_perf - start
        if run.popen.returncode != 0:
            return Outcome(False, wall=wall, error=f"exit status {run.popen.returncode}: "
                                                   f"{tail(bench_live.read(run.stderr))}")
        try:
            record = bench_rollout.run_record(config, bench_live.read(run.stdout), run_dir)
            span = run_span(config, run_dir)
        except bench_rollout.RECORD_ERRORS as exc:
            return Outcome(False, wall=wall, error=f"cannot read the step count: {exc}")
        roles, reliable = tree.roles(config.children, None if config.plain else RUN_LOG)
        return SuiteOutcome(True, int(record["steps"]), wall,
                            memory={role: p.peak_kib for role, p in roles},
                            cpu={role: p.cpu_ticks / CLOCK_TICKS for role, p in roles},
                            roles_reliable=reliable,
                            max_rss_kib=run.max_rss_kib if run.max_rss_kib > own_kib else 0,
                            disk=disk_usage(run_dir), run_wall=span)


class LatencyBench(bench_live.LiveBench):
    """bench_live's LiveBench with the latency subscriber."""

    def subscriber_command(self, run_dir: str, stall: float, nice: int) -> list[str]:
        return [sys.executable, "-c", LATENCY_SUBSCRIBER, run_dir]


# --- the scenarios ----------------------------------------------------------------------


def minari_missing() -> str | None:
    """Why the Minari configuration cannot run here, or None."""
    for module in ("minari", "jax"):
        if importlib.util.find_spec(module) is None:
            return (f"Minari DataCollector skipped: `import {module}` fails "
                    "(pip install 'minari[create]>=0.5,<0.6'; its DataCollector needs jax)")
    return None


def cartpole_configs(args: argparse.Namespace) -> list[SuiteConfig]:
    configs = [
        SuiteConfig("plain loop"),
        SuiteConfig("SyncVectorEnv(2)", script=VECTOR_LOOP, script_args=["sync", "2"]),
        SuiteConfig("AsyncVectorEnv(2)", script=VECTOR_LOOP, script_args=["async", "2"],
                    steps=args.async_steps, children=WORKERS_2),
    ]
    if args.minari_steps and not minari_missing():
        configs.append(SuiteConfig("Minari DataCollector", script=MINARI_LOOP,
                                   steps=args.minari_steps))
    return configs + [
        SuiteConfig("eventroll sequential, all recorders", ["runner=sequential", *ALL],
                    children=("hub", *RECORDERS)),
        SuiteConfig("eventroll parallel 2, recorders off", [*PARALLEL, *NONE],
                    children=("hub", *WORKERS_2)),
        SuiteConfig("eventroll parallel 2, event log only", [*PARALLEL, *LOG_ONLY],
                    children=("hub", "eventlog", *WORKERS_2)),
        SuiteConfig("eventroll parallel 2, all recorders", [*PARALLEL, *ALL],
                    children=("hub", *RECORDERS, *WORKERS_2)),
    ]


def startup_configs(args: argparse.Namespace) -> list[SuiteConfig]:
    return [SuiteConfig("plain loop, 1 episode", steps=1),
            SuiteConfig("eventroll run runner.n_episodes=1", [], steps=1,
                        children=("hub", *RECORDERS, "worker 0"))]


def image_configs(args: argparse.Namespace) -> list[SuiteConfig]:
    env = ["env.name=bench_envs:ImageEnv", f"+env.shape=[{','.join(map(str, args.image_shape))}]",
           f"+env.episode_steps={args.image_episode_steps}"]
    shape = "x".join(map(str, args.image_shape))
    return [SuiteConfig(f"image {shape}, parallel 2, {what}", [*PARALLEL, *recorders, *env],
                        steps=args.image_steps, episode_steps=args.image_episode_steps,
                        children=("hub", *roles, *WORKERS_2),
                        obs_bytes=math.prod(args.image_shape))
            for what, recorders, roles in (("all recorders", ALL, RECORDERS),
                                           ("event log only", LOG_ONLY, ("eventlog",)),
                                           ("recorders off", NONE, ()))]


def latency_configs(args: argparse.Namespace) -> list[bench_live.LiveConfig]:
    return [bench_live.LiveConfig(
        "timed CartPole, parallel 2, all recorders, 1 live subscriber",
        [*PARALLEL, *ALL, "env.name=bench_envs:timed_cartpole"], steps=args.latency_steps,
        subscribers=1)]


def latency_bench(eventroll: list[str], workdir: str, args: argparse.Namespace) -> Bench:
    options = argparse.Namespace(timeout=args.timeout, attach_timeout=args.timeout,
                                 drain_timeout=args.timeout, stall=0.0)
    return LatencyBench(eventroll, workdir, options)


@dataclass
class Scenario:
    """A scenario: its configurations (from the arguments) and the bench that runs them."""

    configs: Callable[[argparse.Namespace], list[Config]]
    bench: Callable[[list[str], str, argparse.Namespace], Bench]


def suite_bench(eventroll: list[str], workdir: str, args: argparse.Namespace) -> Bench:
    return SuiteBench(eventroll, workdir, args.timeout)


SCENARIO = {
    "cartpole": Scenario(cartpole_configs, suite_bench),
    "startup": Scenario(startup_configs, suite_bench),
    "image": Scenario(image_configs, suite_bench),
    "latency": Scenario(latency_configs, latency_bench),
}


# --- figures --------------------------------------------------------------------------


def median_of(s: Series, value: Callable[[Outcome], float | None]) -> float | None:
    values = [v for v in map(value, s.runs) if v is not None]
    return statistics.median(values) if values else None


def per_step(key: str) -> Callable[[Outcome], float | None]:
    """A run's bytes of ``key`` (disk_usage) per step, None if it wrote none."""
    def value(run: Outcome) -> float | None:
        written = getattr(run, "disk", {}).get(key, 0)
        return written / run.steps if written else None
    return value


def megabytes_per_s(s: Series, whole: bool) -> float | None:
    """MB/s of observations over the whole process (``whole``) or over the run (run.end)."""
    if not getattr(s.config, "obs_bytes", 0):
        return None
    return median_of(s, lambda run: run.steps * s.config.obs_bytes / 1e6
                     / (run.wall if whole else run.run_wall or math.nan))


def peak_memory(s: Series) -> dict[str, int]:
    """Peak RSS (KiB) by role, the largest over the runs."""
    memory: dict[str, int] = {}
    for run in s.runs:
        for role, kib in getattr(run, "memory", {}).items():
            memory[role] = max(memory.get(role, 0), kib)
    return memory


def largest(s: Series) -> int:
    """The largest process's peak RSS (KiB) over the runs."""
    return max((largest_kib(run) for run in s.runs if isinstance(run, SuiteOutcome)), default=0)


def largest_kib(run: SuiteOutcome) -> int:
    """A run's largest process's peak RSS (KiB): wait4's where known, else the largest sampled."""
    return max(run.max_rss_kib, *run.memory.values(), 0)


def latency(s: Series, which: str, key: str) -> float | None:
    """The median over the runs of a latency percentile (``max_ms``: the largest)."""
    values = [report[which][key] for run in s.runs for report in getattr(run, "reports", [])
              if report.get(which)]
    if not values:
        return None
    return max(values) if key == "max_ms" else statistics.median(values)


def fmt(value: float | None, spec: str = ",.0f", unit: str = "") -> str:
    return "-" if value is None or math.isnan(value) else f"{value:{spec}}{unit}"


def find(results: Results, scenario: str, name: str) -> Series | None:
    return next((s for s in results.get(scenario, []) if s.config.name.endswith(name) and s.runs),
                None)


@dataclass
class Target:
    what: str
    goal: str
    value: float | None
    limit: float
    at_least: bool
    shown: str
    detail: str = ""

    @property
    def met(self) -> str:
        if self.value is None:
            return "-"
        met = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "yes" if met else "NO"


def rate_ratio(what: str, goal: str, limit: float, at_least: bool, top: str, bottom: str
               ) -> Callable[[Results], list[Target]]:
    """A target on a ratio of CartPole medians: steps/s of ``top`` over steps/s of ``bottom``
    (configurations named by the end of their names)."""
    def measure(results: Results) -> list[Target]:
        a, b = find(results, "cartpole", top), find(results, "cartpole", bottom)
        if not (a and b):
            return []
        ratio = a.median_rate / b.median_rate
        return [Target(what, goal, ratio, limit, at_least, f"{ratio:.3f}x")]
    return measure


speed_target = rate_ratio("parallel 2, all recorders vs plain loop (steps/s)", ">= 1.00x", 1.0,
                          True, "2, all recorders", "plain loop")
_overhead_by_medians = rate_ratio("all recorders on / off, parallel 2 (time per step)", "<= 1.10x",
                                  1.10, False, "2, recorders off", "2, all recorders")


def overhead_target(results: Results) -> list[Target]:
    """All recorders on / off, the time per step. Three estimates: the ratio of the medians
    of steps/s; the median of each round's own ratio; what the recorders' share of the CPU
    in the runs with them predicts (on two busy cores a run's time goes with its
    processes' CPU time), which is taken under the same load as what it is compared with.
    On a shared machine a moment's load can put any one of them under the goal (the
    medians read 0.94x once, with the rounds at 0.83x, 1.12x and 1.21x and the CPU at
    1.16x), so the value is the largest: the target is met when all three meet it."""
    found = _overhead_by_medians(results)
    on, off = find(results, "cartpole", "2, all recorders"), find(results, "cartpole",
                                                                  "2, recorders off")
    if not (found and on and off):
        return found
    target = found[0]
    estimates = {"medians": target.value}
    rounds = [b.rate / a.rate for a, b in zip(on.runs, off.runs)]
    if rounds:
        estimates["rounds' median"] = statistics.median(rounds)
    share = recorders_share(on)
    if share is not None:
        estimates["in-run CPU"] = 1 + share
    target.value = max(estimates.values())
    target.shown = f"{target.value:.3f}x"
    target.detail = (", ".join(f"{name} {value:.3f}x" for name, value in estimates.items())
                     + " (the largest is the value)"
                     + f"; rounds {' '.join(f'{ratio:.2f}x' for ratio in rounds)}")
    if share is not None:
        target.detail += (f"; in-run CPU: the recorders took {share:.1%} of the other "
                          "processes' CPU (median)")
    return found


def recorders_share(s: Series) -> float | None:
    """The median over the runs of the recorder processes' CPU time over the others'."""
    shares = []
    for run in s.runs:
        cpu = getattr(run, "cpu", {})
        recorders = sum(cpu.get(role, 0.0) for role in RECORDERS)
        rest = sum(cpu.values()) - recorders
        if rest > 0:  # recorders of a tiny run may take less than a clock tick: 0
            shares.append(recorders / rest)
    return statistics.median(shares) if shares else None


def startup_target(results: Results) -> list[Target]:
    one, plain = find(results, "startup", "n_episodes=1"), find(results, "startup", "1 episode")
    if not one:
        return []
    wall = statistics.median(run.wall for run in one.runs)
    plain_wall = statistics.median(run.wall for run in plain.runs) if plain else None
    return [Target("start-up: a one-episode run, wall time", "<= 0.80 s", wall, 0.8, False,
                   f"{wall:.2f} s", f"plain loop, one episode: {fmt(plain_wall, '.2f')} s")]


def memory_target(results: Results) -> list[Target]:
    runs = [s for scenario in ("cartpole", "startup", "image") for s in results.get(scenario, [])
            if s.runs and s.config.overrides is not None]
    if not runs:
        return []
    top = max(runs, key=largest)
    memory = peak_memory(top)
    role = max(memory, key=memory.get) if memory else "?"
    mib = largest(top) / MIB
    return [Target("peak RSS of the largest process (eventroll runs)", "<= 120 MiB", mib, 120,
                   False, f"{mib:.0f} MiB", f"{role}, in '{top.config.name}'")]


def hdf5_target(results: Results) -> list[Target]:
    on = find(results, "cartpole", "2, all recorders")
    h5 = median_of(on, per_step("hdf5")) if on else None
    return [Target("HDF5 bytes per CartPole step (parallel 2, all recorders)", "<= 40", h5, 40,
                   False, fmt(h5, ".1f"))] if on else []


def image_target(results: Results) -> list[Target]:
    image = find(results, "image", "all recorders")
    if not image:
        return []
    rate = megabytes_per_s(image, whole=False)
    return [Target("image through the bus and all recorders, over the run", ">= 400 MB/s", rate,
                   400, True, fmt(rate, ",.0f", " MB/s"),
                   f"over the whole process: {fmt(megabytes_per_s(image, True))} MB/s")]


def latency_target(results: Results) -> list[Target]:
    live = next((s for s in results.get("latency", []) if s.runs), None)
    if not live:
        return []
    p99 = latency(live, "step", "p99_ms")
    return [Target("live latency, step to subscriber, p99", "<= 100 ms", p99, 100, False,
                   fmt(p99, ".1f", " ms"), f"p50 {fmt(latency(live, 'step', 'p50_ms'), '.1f')} ms, "
                   f"max {fmt(latency(live, 'step', 'max_ms'), '.1f')} ms")]


def targets(results: Results) -> list[Target]:
    """The issue's targets, those whose scenarios ran."""
    return [target for measure in (speed_target, overhead_target, startup_target, memory_target,
                                   hdf5_target, image_target, latency_target)
            for target in measure(results)]


# --- the report -----------------------------------------------------------------------


def throughput_table(title: str, series: list[Series], baseline: float | None,
                     markdown: bool) -> list[str]:
    headers = ["configuration", "steps/run", "median wall (s)", "median steps/s", "vs plain loop",
               "spread", "MB/s (process)", "MB/s (run)", "HDF5 B/step", "event log B/step",
               "largest process (MiB)", "steps/s of each run (round order)"]
    rows = [[s.config.name, bench_rollout.span(run.steps for run in s.runs),
             *bench_rollout.timing_cells(s, baseline),
             fmt(megabytes_per_s(s, True)), fmt(megabytes_per_s(s, False)),
             fmt(median_of(s, per_step("hdf5")), ".1f"),
             fmt(median_of(s, per_step("event_log")), ".1f"),
             fmt(largest(s) / MIB), bench_rollout.rates_cell(s)] for s in series]
    keep = [i for i in range(len(headers)) if any(row[i] != "-" for row in rows)]
    return bench_rollout.render_table(title, [headers[i] for i in keep],
                                      [[row[i] for i in keep] for row in rows],
                                      set(range(1, len(keep) - 1)), markdown)


def memory_table(title: str, series: list[Series], markdown: bool) -> list[str]:
    return role_table(title, series, [peak_memory(s) for s in series], mib_cell, markdown)


def cpu_table(title: str, series: list[Series], markdown: bool) -> list[str]:
    """CPU seconds (user + system) of each process, the median over the runs."""
    cpus = [{role: statistics.median(values) for role, values in _cpu_by_role(s).items()}
            for s in series]
    return role_table(title, series, cpus,
                      lambda seconds: "-" if seconds is None else f"{seconds:,.2f}", markdown)


def role_table(title: str, series: list[Series], by_role: list[dict[str, Any]],
               cell: Callable[[Any], str], markdown: bool) -> list[str]:
    """A row a configuration, a column a process role (main, hub, the recorders, then the
    workers and the rest as they came); ``cell`` writes a value, None where a configuration
    has no such process."""
    seen = list(dict.fromkeys(role for values in by_role for role in values))
    known = ["main", "hub", *RECORDERS]
    roles = sorted(seen, key=lambda r: (known.index(r) if r in known else len(known),
                                        seen.index(r)))
    rows = [[s.config.name, *(cell(values.get(r)) for r in roles)]
            for s, values in zip(series, by_role)]
    return bench_rollout.render_table(title, ["configuration", *roles], rows,
                                      set(range(1, len(roles) + 1)), markdown)


def _cpu_by_role(s: Series) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for run in s.runs:
        for role, seconds in getattr(run, "cpu", {}).items():
            values.setdefault(role, []).append(seconds)
    return values


def mib_cell(kib: int | None) -> str:
    """A peak RSS in MiB; ``-``: no such process; ``?``: it came and went between two looks."""
    return "-" if kib is None else "?" if kib == 0 else f"{kib / MIB:,.0f}"


def latency_table(series: list[Series], markdown: bool) -> list[str]:
    headers = ["configuration", "steps/run", "median steps/s", "measured", "p50 (ms)", "p90 (ms)",
               "p99 (ms)", "max (ms)", "runs"]
    rows = []
    for s in series:
        for which, label in (("step", "step -> subscriber"),
                             ("envelope", "batch time -> subscriber")):
            rows.append([s.config.name, bench_rollout.span(run.steps for run in s.runs),
                         f"{s.median_rate:,.0f}", label,
                         *(fmt(latency(s, which, key), ".1f")
                           for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
                         str(len(s.runs))])
    return bench_rollout.render_table(
        "Live latency: time.time() on arrival at a live subscriber minus the step's own time "
        "(median of the runs' percentiles, largest max)", headers, rows, {1, 2, 4, 5, 6, 7, 8},
        markdown)


def targets_table(found: list[Target], markdown: bool) -> list[str]:
    rows = [[t.what, t.goal, t.shown, t.met, t.detail or "-"] for t in found]
    return bench_rollout.render_table("Targets", ["target", "goal", "measured", "met", "detail"],
                                      rows, set(), markdown)


def report(results: Results, args: argparse.Namespace, notes: dict) -> str:
    repeats = f"median of {args.repeats} run{'s' if args.repeats > 1 else ''}"
    plain = find(results, "cartpole", "plain loop")
    lines: list[str] = []
    titles = {
        "cartpole": ("CartPole-v1", "random policy: whole processes (start to exit)"),
        "startup": ("Start-up", "one episode in a fresh process"),
        "image": (f"Image observations {'x'.join(map(str, args.image_shape))} uint8",
                  "MB = 10^6 bytes of observations"),
    }
    for name, (short, what) in titles.items():
        series = [s for s in results.get(name, []) if s.runs]
        if series:
            baseline = plain.median_rate if plain and name == "cartpole" else None
            lines += [*throughput_table(f"{short}, {what}, {repeats}", series, baseline,
                                        args.markdown), "",
                      *memory_table(f"{short}: peak RSS (MiB) by process, the largest of the runs",
                                    series, args.markdown), "",
                      *cpu_table(f"{short}: CPU seconds by process, {repeats}",
                                 [x for x in series if any(getattr(run, "cpu", None)
                                                           for run in x.runs)],
                                 args.markdown), ""]
    live = [s for s in results.get("latency", []) if s.runs]
    if live:
        lines += [*latency_table(live, args.markdown), ""]
    lines += [*targets_table(targets(results), args.markdown), ""]
    return "\n".join([*lines, *bench_rollout.render_notes(notes, args.markdown)])


def anomalies(results: Results, args: argparse.Namespace) -> list[str]:
    series = [s for scenario in results.values() for s in scenario if s.runs]
    found = bench_rollout.anomalies(series)
    for s in series:
        if not all(getattr(run, "roles_reliable", True) for run in s.runs):
            found.append(f"'{s.config.name}': the processes' roles could not be told apart "
                         "(children or open files other than expected): listed as child 1, 2, "
                         "... in start order")
        if len(s.runs) < args.repeats:
            found.append(f"'{s.config.name}' has only {len(s.runs)} of {args.repeats} runs")
    return found


def write_json(path: str, results: Results, commands: dict[str, list[str]],
               args: argparse.Namespace, notes: dict, failures: list[str]) -> None:
    plain = find(results, "cartpole", "plain loop")
    data = {
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "notes": notes,
        "failures": failures,
        "targets": [{**asdict(t), "met": t.met} for t in targets(results)],
        "scenarios": {name: [series_json(s, commands[s.config.name], plain) for s in series]
                      for name, series in results.items()},
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2, default=str)
        file.write("\n")


def series_json(s: Series, command: list[str], plain: Series | None) -> dict:
    ok = bool(s.runs)
    return {
        "name": s.config.name,
        "command": command,
        "overrides": s.config.overrides,
        "median_steps_per_s": s.median_rate if ok else None,
        "vs_plain_loop": s.median_rate / plain.median_rate if ok and plain else None,
        "spread": s.spread if ok else None,
        "median_wall_s": statistics.median(run.wall for run in s.runs) if ok else None,
        "mb_per_s_process": megabytes_per_s(s, True) if ok else None,
        "mb_per_s_run": megabytes_per_s(s, False) if ok else None,
        "hdf5_bytes_per_step": median_of(s, per_step("hdf5")) if ok else None,
        "event_log_bytes_per_step": median_of(s, per_step("event_log")) if ok else None,
        "peak_rss_kib": peak_memory(s),
        "largest_process_kib": largest(s) if ok else None,
        "latency_ms": {which: {key: latency(s, which, key)
                               for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")}
                       for which in ("step", "envelope")}
        if isinstance(s.config, bench_live.LiveConfig) else None,
        "runs": [{**asdict(run), "steps_per_s": run.rate} for run in s.runs],
    }


# --- the command line -----------------------------------------------------------------


def shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected sizes joined by x, e.g. 84x84"
                                         ) from None
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be >= 1")
    return dims


def scenarios(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown scenario(s) {unknown}; choose from "
                                         f"{', '.join(SCENARIOS)}")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_suite.py",
        description="The benchmark suite: CartPole-v1 with a random policy in the plain "
                    "Gymnasium loop, Gymnasium's SyncVectorEnv/AsyncVectorEnv(2), Minari's "
                    "DataCollector and `eventroll run` (sequential; parallel 2: recorders off, "
                    "event log only, all); the start-up of a one-episode run; 84x84 uint8 images "
                    "through the bus and recorders (MB/s); the latency from a step to a live "
                    "subscriber. Interleaved repeats, medians, ratios to the plain loop, peak RSS "
                    "of every process, bytes on disk per step, and the issue's targets. The "
                    "docstring at the top of tools/bench_suite.py says exactly what is measured "
                    "and how.",
        epilog="Examples: python tools/bench_suite.py --steps 20000 --repeats 1 (a smoke run, "
               "about a minute); python tools/bench_suite.py --steps 1000000 --repeats 3 "
               "--markdown --json bench.json. Progress goes to stderr, the report to stdout. Exit "
               "status 1 if any run failed.")
    bench_rollout.add_common_arguments(parser)
    parser.add_argument("--scenarios", type=scenarios, default=list(SCENARIOS), metavar="LIST",
                        help=f"comma-separated, of {','.join(SCENARIOS)} (default: all)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write everything measured to FILE as JSON")
    for name, default, what in (
            ("async-steps", 100_000, "AsyncVectorEnv(2) runs"),
            ("minari-steps", 50_000, "Minari DataCollector runs; 0: skip Minari"),
            ("image-steps", 100_000, "image scenario runs"),
            ("latency-steps", 200_000, "latency scenario runs")):
        parser.add_argument(f"--{name}", type=int, default=default, metavar="N",
                            help=f"steps of the {what} (at most --steps; default: %(default)s)")
    parser.add_argument("--image-shape", type=shape, default=(84, 84), metavar="HxW[xC]",
                        help="the image observations' shape (default: 84x84)")
    parser.add_argument("--image-episode-steps", type=int, default=1000, metavar="N",
                        help="steps of an image episode (default: %(default)s)")
    args = parser.parse_args(argv)
    bench_rollout.check_common_arguments(parser, args)
    if min(args.async_steps, args.image_steps, args.latency_steps, args.image_episode_steps) < 1:
        parser.error("--async-steps, --image-steps, --latency-steps and --image-episode-steps "
                     "must be at least 1")
    if args.minari_steps < 0:
        parser.error("--minari-steps must be >= 0")
    if args.timeout <= 0:
        parser.error("--timeout must be > 0")
    return args


def describe(label: str, config: Config, outcome: Outcome, timed: bool) -> str:
    line = bench_rollout.describe_run(label, config, outcome, timed)
    if isinstance(outcome, SuiteOutcome):
        line += f", largest process {largest_kib(outcome) / MIB:.0f} MiB"
    for report in getattr(outcome, "reports", []):
        line += f", latency p99 {fmt((report.get('step') or {}).get('p99_ms'), '.1f')} ms"
    return line


def shown_command(bench: Bench, config: Config, steps: int) -> list[str]:
    """A configuration's command as the report shows it (scripts named, not quoted whole)."""
    argv = bench.command(config, steps, "<tmp run dir>")
    names = {bench_rollout.PLAIN_LOOP: "<plain loop>", VECTOR_LOOP: "<vector loop>",
             MINARI_LOOP: "<Minari loop>"}
    return [names.get(arg, arg) for arg in argv]


def run_scenarios(eventroll: list[str], top: str, args: argparse.Namespace
                  ) -> tuple[Results, dict[str, list[str]], list[str]]:
    """Run the chosen scenarios in order; stop after a failure (unless --keep-going) or Ctrl-C."""
    results: Results = {}
    commands: dict[str, list[str]] = {}
    failures: list[str] = []
    for name in args.scenarios:
        scenario = SCENARIO[name]
        bench = scenario.bench(eventroll, tempfile.mkdtemp(prefix=f"{name}-", dir=top), args)
        series = [Series(config) for config in scenario.configs(args)]
        log(f"{PROG}: scenario {name}")
        failed = bench_rollout.run_rounds(bench, series, args, PROG, describe)
        results[name] = series
        commands.update((s.config.name, shown_command(bench, s.config, bench_rollout.budget(
            s, args.steps))) for s in series)
        failures += [f"{name}: {failure}" for failure in failed]
        if "interrupted" in failed or (failed and not args.keep_going):
            break
    return results, commands, failures


def compile_eventroll() -> str | None:
    """Write eventroll's bytecode once, as the first run of an installation does, unless
    PYTHONDONTWRITEBYTECODE is set (it is on some machines: every start then compiles
    eventroll anew, 50 to 80 ms of a one-episode run here). A note, or None."""
    if not (sys.dont_write_bytecode or os.environ.get("PYTHONDONTWRITEBYTECODE")):
        return None
    spec = importlib.util.find_spec("eventroll")
    if spec is None or not spec.submodule_search_locations:
        return None
    import compileall

    path = list(spec.submodule_search_locations)[0]
    compileall.compile_dir(path, quiet=1)
    return (f"PYTHONDONTWRITEBYTECODE is set here: eventroll's bytecode was compiled first "
            f"({path}), as the first run of an installation writes it")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    eventroll = bench_rollout.find_eventroll(args.eventroll, PROG)
    compiled = compile_eventroll()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [TOOLS, os.environ.get("PYTHONPATH")]))
    load_before, started = bench_rollout.loadavg(), time.perf_counter()
    top = os.path.abspath(tempfile.mkdtemp(prefix="eventroll-bench-suite-", dir=args.tmpdir))
    try:
        results, commands, failures = run_scenarios(eventroll, top, args)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    notes = bench_rollout.session_notes(bench_rollout.command_line("bench_suite.py", argv),
                                        load_before, started)
    notes["commands"] = [f"{name}: {shlex.join(argv)}" for name, argv in commands.items()]
    skipped = minari_missing() if "cartpole" in results and args.minari_steps else None
    notes["anomalies"] = (anomalies(results, args) + [f"run failed: {f}" for f in failures]
                          + ([skipped] if skipped else []) + ([compiled] if compiled else []))
    if args.json:
        write_json(args.json, results, commands, args, notes, failures)
    completed = any(s.runs for series in results.values() for s in series)
    return bench_rollout.conclude(PROG, completed, lambda: report(results, args, notes), failures)


if __name__ == "__main__":
    sys.exit(main())

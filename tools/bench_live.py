#!/usr/bin/env python
"""How live subscribers affect the throughput of ``eventroll run``.

What it measures
----------------
Steps per second of whole ``eventroll run`` processes, CartPole-v1 (the default
env) with a uniformly random policy, parallel runner with 2 workers
(``runner=parallel runner.n_processes=2``), all three recorders on (event log,
HDF5 trajectories, statistics), in four configurations:

* ``no subscribers``: the run alone;
* ``N subscribers``: ``--subscribers`` (default 10) live subscriber processes
  attached to the run;
* ``N subscribers, 1 stalled``: the same, but one of them sleeps ``--stall``
  seconds (default 3) after its first event, then goes on. The fan-out holds
  only a few messages for a subscriber; the stalled one must fill what it missed
  from the event log.
* ``N subscribers at idle priority, 1 stalled``: the same, every subscriber at
  the lowest CPU priority (Linux's ``SCHED_IDLE``, what ``eventroll tail`` and
  ``eventroll watch`` do by default, ``--nice idle``): on a machine with few
  cores the subscribers' own decoding competes with the run for the CPU (each
  decodes every event), and the idle priority leaves the run the CPU;
  subscribers then fall behind while the run needs both cores and catch up
  from the log.

A subscriber is a separate Python process (this Python, ``sys.executable``)
running::

    from eventroll.live import subscribe
    for event in subscribe(run_dir, arrays=False):
        ...count the events, check that seq runs 0, 1, 2, ...

and printing its count as JSON when the stream ends (at ``run.end``).

Every run is started as a subprocess with its own temporary run directory
(``hydra.run.dir``) and fixed seeds, and timed from just before the process is
started until it has exited (interpreter start, imports, Hydra, spawning the
hub, recorders and workers, and tearing them down included); steps/s is the
number of steps the run did (``run.end`` in ``run.jsonl``) divided by that wall
time. The episode count comes from ``tools/bench_rollout.py`` (the average
CartPole episode length plus a margin; a run that falls short is repeated with
more episodes). The subscribers are started as soon as the run's ``bus.json``
appears in its run directory (the run's bus is up; the benchmark looks every
10 ms, in every configuration alike), so they start while the run has just
begun; they import eventroll, catch up from the event log and follow the live
fan-out, competing with the run for the CPUs, which is part of what is
measured. With too few ``--steps`` they only attach once the run has ended;
the report says so.

After the run has exited, every subscriber must exit within ``--drain-timeout``
seconds, with status 0, having received exactly the events of the run's event
log (counted there afterwards, outside the timing: its records, whose seqs run
0..n-1 and end with ``run.end``), in seq order. The lag of a subscriber is the
time from the run's exit to the end of its stream (both on the system-wide
monotonic clock; negative: it had the whole stream before the run process had
finished exiting). The report gives the median lag over all subscribers of a
configuration's runs, and the largest (the stalled one's, where there is one).

Every configuration runs ``--repeats`` times, interleaved round-robin with a
rotating start, after one short untimed warm-up run of each (``--warmup-steps``).
The report (stdout) gives per configuration the median steps/s, its ratio to
``no subscribers``, the spread of the repeats, the lags, and every run's steps/s
in round order; ``--markdown`` makes it a Markdown table, ``--json FILE`` also
writes every measurement to FILE. Progress goes to stderr. Every wait has a
timeout; a process that outlives it is killed (a run with its whole process
group), and every process is reaped. The exit status is 1 if any run or
subscriber failed, timed out or got a wrong count, else 0.

How to run
----------
From the repository root, with the Python of the environment that has
``eventroll`` installed (the subscribers run with that Python)::

    python tools/bench_live.py                                  # 200,000 steps, 3 repeats
    python tools/bench_live.py --steps 200000 --repeats 3 --markdown
    python tools/bench_live.py --steps 20000 --repeats 1 --json live.json

The ``eventroll`` command is looked up as ``tools/bench_rollout.py`` does (next
to the running Python, then on ``PATH``; ``--eventroll`` names it).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import IO

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_rollout  # noqa: E402  (tools/ is no package)
from bench_rollout import ALL, PARALLEL, Bench, Config, Outcome, Series, log, tail  # noqa: E402

from eventroll.live import BUS_FILE  # noqa: E402
from eventroll.recorders.eventlog import FILE_NAME as EVENT_LOG, EventLogReader  # noqa: E402

PROG = "bench_live"   # the name in messages
ATTACH_POLL = 0.01   # s between looks for bus.json
KILL_GRACE = 5.0     # s a run has to exit after SIGTERM before its process group is killed
REAP_TIMEOUT = 5.0   # s to reap a killed process

# One subscriber: python -c SUBSCRIBER RUN_DIR STALL_SECONDS PRIORITY (idle or a niceness);
# the priority first, before the imports, as `eventroll tail` and `eventroll watch` do
SUBSCRIBER = """\
import sys
from eventroll.cli.args import lower_priority
lower_priority(sys.argv[3])
import json, time
from eventroll.live import subscribe
run_dir, stall = sys.argv[1], float(sys.argv[2])
n = out_of_order = 0
first = last = None
for event in subscribe(run_dir, arrays=False):
    if event.seq != n:
        out_of_order += 1
    n += 1
    last = event.KIND
    if n == 1:
        first = time.monotonic()
        if stall:
            time.sleep(stall)
print(json.dumps({"events": n, "out_of_order": out_of_order, "last": last,
                  "first": first, "done": time.monotonic()}))
"""


@dataclass
class LiveConfig(Config):
    """A configuration: the run's overrides, how many subscribers, how many of them stalled."""

    subscribers: int = 0
    stalled: int = 0
    priority: str = "0"  # the subscribers' CPU priority: idle, or a niceness


@dataclass
class LiveOutcome(Outcome):
    """One run with its subscribers."""

    events: int = 0                                        # in the run's event log
    bus_up: float = 0.0                                    # s from the start to bus.json
    first_event: float = 0.0                               # s from the start to a subscriber's first event, median
    lags: list[float] = field(default_factory=list)        # s, per subscriber
    late: int = 0                                          # subscribers whose first event came after the run's exit
    stray: bool = False                                    # the run left processes of its group behind
    reports: list[dict] = field(default_factory=list)      # what each subscriber printed


def configs(subscribers: int) -> list[LiveConfig]:
    run = [*PARALLEL, *ALL]
    return [
        LiveConfig("no subscribers", run),
        LiveConfig(f"{subscribers} subscribers", run, subscribers),
        LiveConfig(f"{subscribers} subscribers, 1 stalled", run, subscribers, 1),
        LiveConfig(f"{subscribers} subscribers at idle priority, 1 stalled", run, subscribers, 1,
                   "idle"),
    ]


class LiveBench(Bench):
    """bench_rollout's Bench (commands, episode sizing, top-ups), each run with subscribers."""

    def __init__(self, eventroll: list[str], workdir: str, args: argparse.Namespace) -> None:
        super().__init__(eventroll, workdir, args.timeout)
        self.attach_timeout = args.attach_timeout
        self.drain_timeout = args.drain_timeout
        self.stall = args.stall

    def subscriber_command(self, run_dir: str, stall: float, priority: str) -> list[str]:
        return [sys.executable, "-c", SUBSCRIBER, run_dir, f"{stall:g}", priority]

    def run_once(self, config: LiveConfig, steps: int) -> Outcome:  # type: ignore[override]
        run_dir = self.next_run_dir()
        try:
            with Processes(self.workdir) as processes:
                return self._attempt(processes, config, steps, run_dir)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _attempt(self, processes: Processes, config: LiveConfig, steps: int,
                 run_dir: str) -> Outcome:
        start, start_mono = time.perf_counter(), time.monotonic()
        run = processes.start_run(self.command(config, steps, run_dir))

        # attach: poll for bus.json, with a timeout, while the run lives
        bus_file = os.path.join(run_dir, BUS_FILE)
        while not os.path.exists(bus_file) and not run.exited.is_set():
            if time.perf_counter() - start > self.attach_timeout:
                return Outcome(False, error=f"no {BUS_FILE} within {self.attach_timeout:g} s "
                                            f"of the run's start")
            time.sleep(ATTACH_POLL)
        bus_up = time.perf_counter() - start
        subscribers = [processes.start(self.subscriber_command(
            run_dir, self.stall if i < config.stalled else 0.0, config.priority))
            for i in range(config.subscribers)]

        # the run: start to exit
        if not run.exited.wait(max(self.timeout - (time.perf_counter() - start), 0.0)):
            return Outcome(False, error=f"the run timed out after {self.timeout:g} s")
        wall = run.exit_perf - start
        if run.popen.returncode != 0:
            return Outcome(False, wall=wall, error=f"run exit status {run.popen.returncode}: "
                                                   f"{tail(read(run.stderr))}")

        # the subscribers: each must end within --drain-timeout of the run's exit
        deadline = time.monotonic() + self.drain_timeout
        reports, errors = [], []
        for i, sub in enumerate(subscribers):
            try:
                sub.popen.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                errors.append(f"subscriber {i} still running {self.drain_timeout:g} s after "
                              "the run ended")
                continue
            if sub.popen.returncode != 0:
                errors.append(f"subscriber {i} exit status {sub.popen.returncode}: "
                              f"{tail(read(sub.stderr))}")
                continue
            try:
                reports.append((i, json.loads(read(sub.stdout).strip().splitlines()[-1])))
            except (ValueError, IndexError) as exc:
                errors.append(f"subscriber {i}: no count in its output ({exc})")
        stray = processes.stray(run)

        # what the run recorded (outside the timing)
        try:
            done = bench_rollout.run_end(os.path.join(run_dir, "run.jsonl"))["steps"]
            n_events = count_events(os.path.join(run_dir, EVENT_LOG))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return Outcome(False, wall=wall, error=f"cannot read the run's records: {exc}")
        lags, firsts, late = [], [], 0
        for i, got in reports:
            if (got.get("events"), got.get("out_of_order"), got.get("last")) != (n_events, 0, "run.end"):
                errors.append(f"subscriber {i} got {got.get('events')} events "
                              f"({got.get('out_of_order')} out of seq order, the last "
                              f"{got.get('last')}); the event log holds {n_events}")
                continue
            lags.append(got["done"] - run.exit_mono)
            firsts.append(got["first"] - start_mono)
            late += got["first"] > run.exit_mono
        if errors:
            return Outcome(False, int(done), wall, "; ".join(errors))
        return LiveOutcome(True, int(done), wall, events=n_events, bus_up=bus_up,
                           first_event=statistics.median(firsts) if firsts else 0.0, lags=lags,
                           late=late, stray=stray, reports=[got for _, got in reports])


@dataclass(eq=False)
class Child:
    """A started process, its output files, and (for a run) when it exited."""

    popen: subprocess.Popen
    stdout: IO[str]
    stderr: IO[str]
    group: bool = False
    exited: threading.Event = field(default_factory=threading.Event)
    exit_perf: float = 0.0
    exit_mono: float = 0.0
    max_rss_kib: int = 0   # a run's peak RSS, and its reaped descendants' (wait4); 0: unknown


class Processes:
    """Starts processes; on leaving, kills whatever still runs and reaps everything."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.children: list[Child] = []
        self._waiters: list[threading.Thread] = []

    def __enter__(self) -> Processes:
        return self

    def start(self, argv: list[str], group: bool = False) -> Child:
        stdout = tempfile.TemporaryFile("w+", dir=self.workdir)
        stderr = tempfile.TemporaryFile("w+", dir=self.workdir)
        try:
            # a process group of its own, in this session: one autogroup for the run and its
            # subscribers, as for a run and a watcher started from one terminal (Linux shares
            # the CPU between sessions first, whatever the priorities within them)
            popen = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                     stdout=stdout, stderr=stderr,
                                     preexec_fn=os.setpgrp if group else None)
        except BaseException:
            stdout.close()
            stderr.close()
            raise
        child = Child(popen, stdout, stderr, group)
        self.children.append(child)
        return child

    def start_run(self, argv: list[str]) -> Child:
        """The run, in a process group of its own (its hub, recorders and workers go with it),
        with a thread that reaps it and notes the moment it exits and its peak memory."""
        run = self.start(argv, group=True)

        def wait() -> None:
            run.max_rss_kib = reap_with_usage(run.popen)
            run.exit_perf, run.exit_mono = time.perf_counter(), time.monotonic()
            run.exited.set()

        waiter = threading.Thread(target=wait, name="run-waiter", daemon=True)
        waiter.start()
        self._waiters.append(waiter)
        return run

    def stray(self, run: Child) -> bool:
        """Whether processes of the (exited) run's group are left; they are killed."""
        if not signal_group(run.popen.pid, 0):
            return False
        signal_group(run.popen.pid, signal.SIGKILL)
        return True

    def __exit__(self, *exc: object) -> None:
        killed = []
        for child in self.children:
            # a run is reaped by its waiter thread alone (its wait4 would miss a reaped run)
            if not child.exited.is_set() and (child.group or child.popen.poll() is None):
                killed.append(child)
                if child.group:   # a run: let it close its session, then kill the whole group
                    signal_group(child.popen.pid, signal.SIGTERM)
                    if not child.exited.wait(KILL_GRACE):
                        signal_group(child.popen.pid, signal.SIGKILL)
                else:
                    child.popen.kill()
        for child in self.children:
            if not (child.exited.wait(REAP_TIMEOUT) if child.group
                    else wait_quietly(child.popen, REAP_TIMEOUT)):
                log(f"{PROG}: warning: pid {child.popen.pid} not reaped after a kill")
            if child.group and child in killed:
                signal_group(child.popen.pid, signal.SIGKILL)   # what the killed run left behind
            child.stdout.close()
            child.stderr.close()
        for waiter in self._waiters:
            waiter.join(REAP_TIMEOUT)


def reap_with_usage(popen: subprocess.Popen) -> int:
    """Wait for ``popen``'s process to exit and set its returncode; return the peak RSS (KiB)
    of it and of every descendant it reaped (wait4's ru_maxrss), 0 if it was reaped elsewhere."""
    try:
        _, status, usage = os.wait4(popen.pid, 0)
    except ChildProcessError:   # Popen reaped it (a kill on the way out)
        popen.wait()
        return 0
    popen.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group of our own making; False if it has no process left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:   # a stranger took the id: not ours
        return False
    return True


def wait_quietly(popen: subprocess.Popen, timeout: float) -> bool:
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def read(file: IO[str]) -> str:
    file.flush()
    file.seek(0)
    return file.read()


def count_events(path: str) -> int:
    """The number of records in an event log whose seqs run 0..n-1 and end with run.end."""
    n, last = 0, None
    for record in EventLogReader(path, arrays=False).records():
        if record.get("seq") != n:
            raise ValueError(f"{path}: record {n} has seq {record.get('seq')!r}")
        n, last = n + 1, record.get("kind")
    if last != "run.end":
        raise ValueError(f"{path}: the last record is {last!r}, not run.end")
    return n


def lag_stats(series: Series) -> tuple[float | None, float | None]:
    lags = [lag for run in series.runs for lag in run.lags]
    return (statistics.median(lags), max(lags)) if lags else (None, None)


def report(series: list[Series], args: argparse.Namespace, notes: dict) -> str:
    baseline = next((s.median_rate for s in series if s.config.subscribers == 0), None)
    headers = ["configuration", "steps/run", "events/run", "median wall (s)", "median steps/s",
               "vs no subscribers", "spread", "median lag (s)", "max lag (s)",
               "steps/s of each run (round order)"]
    rows = []
    for s in series:
        median_lag, max_lag = lag_stats(s)
        rows.append([
            s.config.name,
            bench_rollout.span(run.steps for run in s.runs),
            bench_rollout.span(run.events for run in s.runs),
            *bench_rollout.timing_cells(s, baseline),
            "-" if median_lag is None else f"{median_lag:+.2f}",
            "-" if max_lag is None else f"{max_lag:+.2f}",
            bench_rollout.rates_cell(s),
        ])
    title = (f"CartPole-v1, random policy, `eventroll run` with 2 workers and all recorders: "
             f"steps/s of the whole run process (start to exit) with live subscribers, median of "
             f"{args.repeats} run{'s' if args.repeats > 1 else ''} of >= {args.steps:,} steps each")
    lag = (f"{'- ' if args.markdown else ''}lag: time from the run's exit to the end of a "
           "subscriber's stream (negative: before the run process had exited); stalled "
           f"subscriber: sleeps {args.stall:g} s after its first event")
    return "\n".join([*bench_rollout.render_table(title, headers, rows,
                                                  set(range(1, len(headers) - 1)), args.markdown),
                      "", lag, *bench_rollout.render_notes(notes, args.markdown)])


def anomalies(series: list[Series], args: argparse.Namespace) -> list[str]:
    found = bench_rollout.anomalies(series)
    for s in series:
        late = sum(run.late for run in s.runs)
        if late:
            found.append(f"'{s.config.name}': {late} subscriber(s) got their first event only "
                         "after the run had exited (they followed nothing live; use more --steps)")
        stray = sum(run.stray for run in s.runs)
        if stray:
            found.append(f"'{s.config.name}': {stray} run(s) left processes of their group "
                         "behind after exiting (killed)")
        if len(s.runs) < args.repeats:
            found.append(f"'{s.config.name}' has only {len(s.runs)} of {args.repeats} runs")
    return found


def write_json(path: str, series: list[Series], args: argparse.Namespace, notes: dict,
               failures: list[str]) -> None:
    baseline = next((s.median_rate for s in series if s.config.subscribers == 0 and s.runs), None)
    data = {
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "notes": notes,
        "failures": failures,
        "configurations": [{
            "name": s.config.name,
            "overrides": s.config.overrides,
            "subscribers": s.config.subscribers,
            "stalled": s.config.stalled,
            "median_steps_per_s": s.median_rate if s.runs else None,
            "vs_no_subscribers": s.median_rate / baseline if s.runs and baseline else None,
            "median_lag_s": lag_stats(s)[0] if s.runs else None,
            "max_lag_s": lag_stats(s)[1] if s.runs else None,
            "runs": [{**asdict(run), "steps_per_s": run.rate} for run in s.runs],
        } for s in series],
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
        file.write("\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_live.py",
        description="Benchmark `eventroll run runner=parallel runner.n_processes=2` (all "
                    "recorders) alone, with live subscriber processes attached, and with one of "
                    "them stalled. Every run is a separate process, timed from start to exit; the "
                    "report gives the median steps/s per configuration, its ratio to the run "
                    "alone, and the subscribers' lag behind the run's end.",
        epilog="Example: python tools/bench_live.py --steps 200000 --repeats 3 --markdown. "
               "Progress goes to stderr, the report to stdout. Exit status 1 if any run or "
               "subscriber failed or got a wrong count.")
    bench_rollout.add_common_arguments(parser)
    parser.add_argument("--subscribers", type=int, default=10,
                        help="live subscriber processes per run with subscribers (default: "
                             "%(default)s)")
    parser.add_argument("--stall", type=float, default=3.0,
                        help="seconds the stalled subscriber sleeps after its first event "
                             "(default: %(default)s)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write every measurement to FILE as JSON")
    parser.add_argument("--attach-timeout", type=float, default=120.0,
                        help=f"seconds from a run's start for its {BUS_FILE} to appear "
                             "(default: %(default)s)")
    parser.add_argument("--drain-timeout", type=float, default=120.0,
                        help="seconds after a run's exit for its subscribers to finish "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)
    bench_rollout.check_common_arguments(parser, args)
    if args.subscribers < 1:
        parser.error("--subscribers must be at least 1")
    if args.stall < 0:
        parser.error("--stall must be >= 0")
    if min(args.timeout, args.attach_timeout, args.drain_timeout) <= 0:
        parser.error("the timeouts must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    eventroll = bench_rollout.find_eventroll(args.eventroll, PROG)
    workdir = tempfile.mkdtemp(prefix="eventroll-bench-live-", dir=args.tmpdir)
    bench = LiveBench(eventroll, workdir, args)
    series = [Series(config) for config in configs(args.subscribers)]
    width = max(len(s.config.name) for s in series)

    def describe(label: str, config: Config, outcome: Outcome, timed: bool) -> str:
        if not outcome.ok:
            return f"  {label:<8}  {config.name:<{width}}  FAILED: {outcome.error}"
        subscribers = (f", subscribers' first event at {outcome.first_event:.2f} s, lag median "
                       f"{statistics.median(outcome.lags):+.2f} s, max {max(outcome.lags):+.2f} s"
                       if outcome.lags else "")
        return (f"  {label:<8}  {config.name:<{width}}  {outcome.steps:,} steps in "
                f"{outcome.wall:.2f} s = {outcome.rate:,.0f} steps/s; {outcome.events:,} events, "
                f"bus up at {outcome.bus_up:.2f} s{subscribers}")

    load_before, started = bench_rollout.loadavg(), time.perf_counter()
    failures = bench_rollout.run_rounds(bench, series, args, PROG, describe)
    notes = bench_rollout.session_notes(bench_rollout.command_line("bench_live.py", argv),
                                        load_before, started)

    complete = [s for s in series if s.runs]
    shown = "<tmp run dir>"
    notes["commands"] = [shlex.join(bench.command(series[0].config, args.steps, shown)),
                         shlex.join(bench.subscriber_command(shown, 0.0, 0)).replace(
                             shlex.quote(SUBSCRIBER), "'<subscriber, see the docstring>'")
                         + f"   (x {args.subscribers}; the stalled one: {args.stall:g} for 0)"]
    notes["anomalies"] = anomalies(complete, args) + [f"run failed: {f}" for f in failures]
    if args.json:
        write_json(args.json, series, args, notes, failures)
    return bench_rollout.conclude(PROG, bool(complete), lambda: report(complete, args, notes),
                                  failures)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Throughput of ``eventroll run`` against a plain Gymnasium loop, side by side.

What it measures
----------------
Steps per second of whole processes, in CartPole-v1 with a uniformly random
policy, for five configurations:

* ``plain loop``: a plain Gymnasium loop in a fresh interpreter
  (``python -c``): ``gym.make("CartPole-v1")``, then episode ``i`` starts with
  ``env.reset(seed=i)`` and steps with ``env.action_space.sample()`` until the
  process has done at least ``--steps`` steps. The action space is seeded once
  (``env.action_space.seed(0)``) so that the step count is reproducible.
* ``eventroll run`` as a subprocess, sequential runner, all three recorders on
  (event log, HDF5 trajectories, statistics).
* ``eventroll run`` as a subprocess, parallel runner with 2 workers
  (``runner.n_processes=2``): all recorders on; the event log only
  (``runner.record_trajectory=false recording.stats=false``); recorders off
  (``runner.record_event_logs=false`` too).

Every run is timed from just before the process is started until it has
exited, so interpreter start, imports, Hydra composition, spawning the bus hub,
recorders and workers, and tearing them down are all included. steps/s is the
number of steps the run did divided by that wall time.

Each eventroll run has its own temporary run directory (``hydra.run.dir``) and
fixed seeds (``seeding.env_base_seed=1 seeding.agent_base_seed=2``);
``runner.n_episodes`` is chosen so that the run does at least ``--steps``
steps (a random policy averages about 22.2 steps per CartPole episode; 3 % is
added as margin). The steps a run really did are read from ``run.jsonl`` in its
run directory (the ``run.end`` line); should a run fall short, the episode
count is raised and the run is repeated. Run directories are removed as soon as
a run has been read, and the temporary directory at the end.

Every configuration runs ``--repeats`` times. The configurations are
interleaved round-robin (each round runs every configuration once, and the
starting configuration rotates from round to round), so that drift in the load
of the machine affects every configuration alike. Before the timed rounds, one
short untimed warm-up run of each configuration (``--warmup-steps``) fills the
OS file cache and checks that every configuration works.

The report (stdout) gives, per configuration, the median steps/s, its ratio to
the plain loop's median, the spread of the repeats, and every run's steps/s in
round order; with ``--markdown`` as a Markdown table for the README. Progress
goes to stderr. The exit status is 1 if any run failed (a nonzero exit status
of ``eventroll run`` or of the plain loop, or a timeout), else 0.

How to run
----------
From the repository root, with the Python of the environment that has
``eventroll`` installed::

    python tools/bench_rollout.py                          # 200,000 steps, 3 repeats
    python tools/bench_rollout.py --steps 1000000 --repeats 5
    python tools/bench_rollout.py --markdown > bench.md    # a table for the README

The ``eventroll`` command is looked up next to the running Python first, then
on ``PATH`` (``--eventroll`` names it explicitly).

``tools/bench_live.py`` builds on this module: ``Bench`` (override ``run_once``),
``run_rounds``, ``add_common_arguments``, ``render_table`` and ``render_notes``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable, Iterable

PROG = "bench_rollout"      # the name in messages
SEEDS = ["seeding.env_base_seed=1", "seeding.agent_base_seed=2"]
STEPS_PER_EPISODE = 22.2   # CartPole-v1 under a uniformly random policy, on average
EPISODE_MARGIN = 1.03      # ask for 3 % more episodes than the average predicts
HIGH_SPREAD = 0.10         # flag a configuration whose (max - min) / median exceeds this
MAX_TOP_UPS = 3            # times a run that fell short of --steps is repeated with more episodes

# The plain loop's episodes, on an ``env`` made before, until ``n`` steps are done; then
# RESULT prints the counts (tools/bench_suite.py builds its Minari script from these too)
EPISODES = """\
env.action_space.seed(0)
steps = episodes = 0
while steps < n:
    env.reset(seed=episodes)
    episodes += 1
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        done = terminated or truncated
"""
RESULT = """\
print(json.dumps({"steps": steps, "episodes": episodes}))
"""

# The plain Gymnasium loop, run in a fresh interpreter: python -c PLAIN_LOOP STEPS
PLAIN_LOOP = """\
import json, sys
import gymnasium as gym
n = int(sys.argv[1])
env = gym.make("CartPole-v1")
""" + EPISODES + "env.close()\n" + RESULT


@dataclass
class Config:
    """One configuration of the benchmark."""

    name: str
    overrides: list[str] | None = None   # None: the plain Gymnasium loop
    # its own step budget (None: --steps), its env's average episode length
    steps: int | None = field(default=None, kw_only=True)
    episode_steps: float = field(default=STEPS_PER_EPISODE, kw_only=True)

    @property
    def plain(self) -> bool:
        return self.overrides is None


ALL = ["runner.record_event_logs=true", "runner.record_trajectory=true", "recording.stats=true"]
LOG_ONLY = ["runner.record_event_logs=true", "runner.record_trajectory=false",
            "recording.stats=false"]
NONE = ["runner.record_event_logs=false", "runner.record_trajectory=false", "recording.stats=false"]
PARALLEL = ["runner=parallel", "runner.n_processes=2"]

CONFIGS = [
    Config("plain loop"),
    Config("sequential, all recorders", ["runner=sequential", *ALL]),
    Config("parallel 2, all recorders", [*PARALLEL, *ALL]),
    Config("parallel 2, event log only", [*PARALLEL, *LOG_ONLY]),
    Config("parallel 2, recorders off", [*PARALLEL, *NONE]),
]


@dataclass
class Outcome:
    """One process run."""

    ok: bool
    steps: int = 0
    wall: float = 0.0
    error: str = ""

    @property
    def rate(self) -> float:
        return self.steps / self.wall if self.wall > 0 else 0.0


@dataclass
class Series:
    """The timed runs of one configuration, in round order."""

    config: Config
    runs: list[Outcome] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [run.rate for run in self.runs]

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def spread(self) -> float:
        rates = self.rates
        return (max(rates) - min(rates)) / statistics.median(rates)


class Abort(Exception):
    """A run failed and --keep-going was not given."""


class Bench:
    """Runs the processes; remembers where and with what."""

    def __init__(self, eventroll: list[str], workdir: str, timeout: float | None) -> None:
        self.eventroll = eventroll
        self.workdir = workdir
        self.timeout = timeout
        # (target steps, average episode length) -> episodes, raised if a run falls short
        self.n_episodes: dict[tuple[int, float], int] = {}
        self._count = 0

    def episodes_for(self, config: Config, steps: int) -> int:
        key = (steps, config.episode_steps)
        if key not in self.n_episodes:
            self.n_episodes[key] = max(1, math.ceil(steps / config.episode_steps * EPISODE_MARGIN))
        return self.n_episodes[key]

    def command(self, config: Config, steps: int, run_dir: str) -> list[str]:
        if config.plain:
            return [sys.executable, "-c", PLAIN_LOOP, str(steps)]
        return [*self.eventroll, "run", *config.overrides,
                f"runner.n_episodes={self.episodes_for(config, steps)}", f"hydra.run.dir={run_dir}", *SEEDS]

    def run(self, config: Config, steps: int) -> Outcome:
        """Run ``config`` for at least ``steps`` steps; top up the episodes if it fell short."""
        for _ in range(MAX_TOP_UPS + 1):
            outcome = self.run_once(config, steps)
            if not outcome.ok or outcome.steps >= steps or config.plain:
                return outcome
            key = (steps, config.episode_steps)
            old = self.n_episodes[key]
            self.n_episodes[key] = math.ceil(old * steps / max(outcome.steps, 1) * EPISODE_MARGIN) + 1
            log(f"    {outcome.steps:,} steps < {steps:,} with {old:,} episodes; "
                f"repeating with {self.n_episodes[key]:,} episodes")
        return Outcome(False, outcome.steps, outcome.wall,
                       f"still {outcome.steps:,} steps < {steps:,} after {MAX_TOP_UPS} top-ups")

    def next_run_dir(self) -> str:
        """A fresh run directory path in the work directory: run001, run002, ..."""
        self._count += 1
        return os.path.join(self.workdir, f"run{self._count:03d}")

    def run_once(self, config: Config, steps: int) -> Outcome:
        """One timed process run of ``config`` (the hook a bench with other processes overrides)."""
        run_dir = self.next_run_dir()
        argv = self.command(config, steps, run_dir)
        try:
            start = time.perf_counter()
            proc = subprocess.run(argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=self.timeout)
            wall = time.perf_counter() - start
        except subprocess.TimeoutExpired:
            shutil.rmtree(run_dir, ignore_errors=True)
            return Outcome(False, error=f"timed out after {self.timeout:g} s")
        try:
            if proc.returncode != 0:
                return Outcome(False, wall=wall,
                               error=f"exit status {proc.returncode}: {tail(proc.stderr)}")
            try:
                done = run_record(config, proc.stdout, run_dir)["steps"]
            except RECORD_ERRORS as exc:
                return Outcome(False, wall=wall, error=f"cannot read the step count: {exc}")
            return Outcome(True, int(done), wall)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)


RECORD_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError)   # of run_record


def run_record(config: Config, stdout: str, run_dir: str) -> dict:
    """What a finished run says of itself, with its ``steps``: the last line of a plain
    loop's output (JSON), else the ``run.end`` record of the run directory's ``run.jsonl``.
    Raises one of RECORD_ERRORS if there is none."""
    if config.plain:
        return json.loads(stdout.strip().splitlines()[-1])
    return run_end(os.path.join(run_dir, "run.jsonl"))


def run_end(path: str) -> dict:
    """The ``run.end`` record of a run's ``run.jsonl``."""
    end = None
    with open(path, encoding="utf-8") as file:
        for line in file:
            line = line.strip()
            if line:
                record = json.loads(line)
                if record.get("event") == "run.end":
                    end = record
    if end is None:
        raise ValueError(f"no run.end line in {path}")
    if end.get("status") != "completed":
        raise ValueError(f"run status {end.get('status')!r}")
    return end


def tail(text: str, lines: int = 5) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no stderr)"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_eventroll(explicit: str | None, prog: str = PROG) -> list[str]:
    """The eventroll command: ``explicit`` (--eventroll), else next to this Python, else on PATH.
    Exits with an error message naming ``prog`` if there is none."""
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            sys.exit(f"{prog}: error: --eventroll {explicit}: not found or not executable")
        return [path]
    beside = os.path.join(os.path.dirname(sys.executable), "eventroll")
    if os.access(beside, os.X_OK):
        return [beside]
    path = shutil.which("eventroll")
    if path is None:
        sys.exit(f"{prog}: error: no `eventroll` command next to this Python or on PATH; "
                 "install the package (pip install -e .) or pass --eventroll")
    return [path]


def command_line(script: str, argv: list[str] | None) -> str:
    """How this benchmark was started, for the report."""
    return shlex.join([sys.executable, *(sys.argv if argv is None else [script, *argv])])


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def machine() -> str:
    cpus = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    text = f"nproc {usable}" + (f" (of {cpus} CPUs)" if usable != cpus else "")
    return (f"{text}, {platform.system()} {platform.release()} {platform.machine()}, "
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"gymnasium {version('gymnasium')}, eventroll {version('eventroll')}, "
            f"pyzmq {version('pyzmq')}")


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def rounds_order(n_configs: int, round_index: int) -> list[int]:
    """Round-robin, with the starting configuration rotating from round to round."""
    return [(round_index + k) % n_configs for k in range(n_configs)]


def span(values: Iterable[int]) -> str:
    """``1,000`` if all values are alike, else ``min-max``."""
    values = sorted(set(values))
    return f"{values[0]:,}" if len(values) == 1 else f"{values[0]:,}-{values[-1]:,}"


def timing_cells(s: Series, baseline: float | None) -> list[str]:
    """A series' median wall time, median steps/s, its ratio to ``baseline`` (a median steps/s;
    None: no ratio) and the spread of its runs, as report cells."""
    return [f"{statistics.median(run.wall for run in s.runs):.2f}",
            f"{s.median_rate:,.0f}",
            f"{s.median_rate / baseline:.3f}x" if baseline else "-",
            f"{s.spread:.1%}" if len(s.runs) > 1 else "-"]


def rates_cell(s: Series) -> str:
    """Every run's steps/s, in round order."""
    return " ".join(f"{rate:,.0f}" for rate in s.rates)


def render_table(title: str, headers: list[str], rows: list[list[str]], right_aligned: set[int],
                 markdown: bool) -> list[str]:
    """The lines of a titled table, aligned plain text or Markdown; ``right_aligned``: the
    indexes of the columns aligned to the right."""
    if markdown:
        return [f"**{title}**", "", "| " + " | ".join(headers) + " |",
                "|" + "|".join("---:" if i in right_aligned else ":---"
                               for i in range(len(headers))) + "|",
                *("| " + " | ".join(row) + " |" for row in rows)]
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.rjust(widths[i]) if i in right_aligned else cell.ljust(widths[i])
                         for i, cell in enumerate(cells)).rstrip()

    return [title, "", line(headers), line(["-" * w for w in widths]), *map(line, rows)]


def render_notes(notes: dict, markdown: bool) -> list[str]:
    """The lines under a report's table: the command, the machine, the load, the total time,
    the processes run (``notes["commands"]``) and the anomalies, each a note."""
    if markdown:
        return [f"- command: `{notes['command']}`",
                f"- machine: {notes['machine']}",
                f"- load average (1/5/15 min) before: {notes['load_before']}, "
                f"after: {notes['load_after']}",
                f"- total time: {notes['total']}",
                "- processes run:",
                "",
                "  ```",
                *(f"  {line}" for line in notes["commands"]),
                "  ```",
                *(f"- note: {line}" for line in notes["anomalies"])]
    return [f"command:  {notes['command']}",
            f"machine:  {notes['machine']}",
            f"load average (1/5/15 min) before: {notes['load_before']}, "
            f"after: {notes['load_after']}",
            f"total time: {notes['total']}",
            "processes run:",
            *(f"  {line}" for line in notes["commands"]),
            *(f"note: {line}" for line in notes["anomalies"])]


def report(series: list[Series], args: argparse.Namespace, notes: dict) -> str:
    baseline = series[0].median_rate
    headers = ["configuration", "steps/run", "median wall (s)", "median steps/s", "vs plain loop",
               "spread", "steps/s of each run (round order)"]
    rows = [[s.config.name, span(run.steps for run in s.runs), *timing_cells(s, baseline),
             rates_cell(s)] for s in series]
    title = (f"CartPole-v1, random policy: steps/s of whole processes (interpreter start to exit), "
             f"median of {args.repeats} run{'s' if args.repeats > 1 else ''} of >= {args.steps:,} "
             "steps each")
    return "\n".join([*render_table(title, headers, rows, set(range(1, len(headers) - 1)),
                                    args.markdown),
                      "", *render_notes(notes, args.markdown)])


def anomalies(series: list[Series]) -> list[str]:
    found = []
    for s in series:
        if len(s.runs) > 1 and s.spread > HIGH_SPREAD:
            found.append(f"high variance in '{s.config.name}': the runs' steps/s spread over "
                         f"{s.spread:.0%} of the median ({min(s.rates):,.0f} to {max(s.rates):,.0f})")
    return found


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark of tools/ has: --steps, --repeats, --markdown, --warmup-steps,
    --timeout, --keep-going, --tmpdir, --eventroll."""
    parser.add_argument("--steps", type=int, default=200_000,
                        help="minimum number of env steps of every run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of every configuration, interleaved round-robin "
                             "(default: %(default)s)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the report as a Markdown table (for the README)")
    parser.add_argument("--warmup-steps", type=int, default=2_000,
                        help="steps of one untimed warm-up run of every configuration; 0: none "
                             "(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds after which a run is killed and counted as failed "
                             "(default: %(default)s)")
    parser.add_argument("--keep-going", action="store_true",
                        help="after a failed run, go on with the other runs (default: stop)")
    parser.add_argument("--tmpdir", default=None,
                        help="where the temporary run directories go (default: the system's)")
    parser.add_argument("--eventroll", default=None, metavar="CMD",
                        help="the eventroll command (default: next to this Python, else on PATH)")


def check_common_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error if an option of add_common_arguments is out of range."""
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.warmup_steps < 0:
        parser.error("--warmup-steps must be >= 0")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_rollout.py",
        description="Benchmark `eventroll run` (sequential with all recorders; parallel with 2 "
                    "workers: all recorders, event log only, recorders off) against a plain "
                    "Gymnasium CartPole-v1 loop. Every run is a separate process, timed from start "
                    "to exit; the report gives the median steps/s per configuration and its ratio "
                    "to the plain loop.",
        epilog="Example: python tools/bench_rollout.py --steps 1000000 --repeats 3 --markdown. "
               "Progress goes to stderr, the report to stdout. Exit status 1 if any run failed.",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    check_common_arguments(parser, args)
    return args


def describe_run(label: str, config: Config, outcome: Outcome, timed: bool) -> str:
    """The progress line of one run: ``label`` (warm-up, round 2/3), the configuration, and the
    steps, wall time and (``timed``) steps/s, or why it failed."""
    if not outcome.ok:
        what = f"FAILED: {outcome.error}"
    else:
        what = f"{outcome.steps:,} steps in {outcome.wall:.2f} s"
        if timed:
            what += f" = {outcome.rate:,.0f} steps/s"
    return f"  {label}  {config.name:<20} {what}"


def budget(s: Series, steps: int) -> int:
    """The steps of a run of ``s`` where others do ``steps``: its own budget if smaller."""
    return min(steps, s.config.steps or steps)


def run_rounds(bench: Bench, series: list[Series], args: argparse.Namespace, prog: str = PROG,
               describe: Callable[[str, Config, Outcome, bool], str] = describe_run) -> list[str]:
    """Run every configuration of ``series`` once for --warmup-steps (untimed; none if 0), then
    --repeats rounds of --steps (a configuration's own ``steps`` where smaller, :func:`budget`),
    interleaved (rounds_order), adding each timed run that went well to its series; log a
    progress line a run (``describe(label, config, outcome, timed)``).
    A failed run ends it all unless --keep-going; so does Ctrl-C. Remove the bench's work
    directory at the end, log the failures, and return them."""
    failures: list[str] = []
    log(f"{prog}: {len(series)} configurations x {args.repeats} repeat(s), "
        f">= {span(budget(s, args.steps) for s in series)} steps each; "
        f"run dirs under {bench.workdir}")

    def one(s: Series, steps: int, label: str, where: str, timed: bool) -> None:
        outcome = bench.run(s.config, steps)
        log(describe(label, s.config, outcome, timed))
        if not outcome.ok:
            failures.append(f"{where} of '{s.config.name}': {outcome.error}")
            if not args.keep_going:
                raise Abort
        elif timed:
            s.runs.append(outcome)

    try:
        if args.warmup_steps:
            for s in series:
                one(s, budget(s, args.warmup_steps), "warm-up", "warm-up", timed=False)
        for r in range(args.repeats):
            for index in rounds_order(len(series), r):
                one(series[index], budget(series[index], args.steps),
                    f"round {r + 1}/{args.repeats}", f"round {r + 1}", timed=True)
    except Abort:
        pass
    except KeyboardInterrupt:
        log(f"{prog}: interrupted")
        failures.append("interrupted")
    finally:
        shutil.rmtree(bench.workdir, ignore_errors=True)
    for failure in failures:
        log(f"{prog}: run failed: {failure}")
    return failures


def session_notes(command: str, load_before: str, started: float) -> dict[str, str]:
    """The report's notes on the whole benchmark: its command, the machine, the load average
    before (``load_before``) and now, and the time since ``started`` (time.perf_counter)."""
    total = time.perf_counter() - started
    return {"command": command, "machine": machine(), "load_before": load_before,
            "load_after": loadavg(), "total": f"{total:,.0f} s"}


def conclude(prog: str, completed: bool, render: Callable[[], str], failures: list[str]) -> int:
    """Print the report (``render()``) if any timed run ``completed``; return the exit status:
    1 if none did or any run failed, else 0."""
    if not completed:
        print(f"{prog}: no report: no timed run completed", file=sys.stderr)
        return 1
    print(render())
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    eventroll = find_eventroll(args.eventroll)
    workdir = tempfile.mkdtemp(prefix="eventroll-bench-", dir=args.tmpdir)
    bench = Bench(eventroll, workdir, args.timeout)
    series = [Series(config) for config in CONFIGS]
    load_before, started = loadavg(), time.perf_counter()
    failures = run_rounds(bench, series, args)
    notes = session_notes(command_line("bench_rollout.py", argv), load_before, started)

    complete = [s for s in series if s.runs]
    if not series[0].runs or not complete:
        print(f"{PROG}: no report: no timed run of the plain loop completed", file=sys.stderr)
        return 1
    shown = "<tmp run dir>"
    notes["commands"] = [shlex.join(bench.command(c, args.steps, shown)).replace(
        shlex.quote(PLAIN_LOOP), "'<plain Gymnasium loop, see the docstring>'") for c in CONFIGS]
    notes["anomalies"] = (anomalies(complete) + [f"run failed: {f}" for f in failures]
                          + [f"'{s.config.name}' has only {len(s.runs)} of {args.repeats} runs"
                             for s in complete if len(s.runs) < args.repeats])
    print(report(complete, args, notes))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

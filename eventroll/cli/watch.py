"""``eventroll watch``: a live dashboard of a run, built from its events."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from eventroll import events
from eventroll.cli.args import Parser, follow_help, follow_setup

HELP = """\
usage: eventroll watch RUN_DIR [--refresh SECONDS] [--nice idle|N]
                       [--server-key FILE --client-key FILE]

A live dashboard of a run: episodes done of total, steps/s, return and length
statistics, each worker's state, and errors as they happen. It attaches at any
time (it reads what was recorded so far from the event log, then follows the
run live) and ends with the run; on a finished run it shows the final state.
Leaving it (Ctrl-C) never disturbs the run.

options:
  --refresh SECONDS   how often the dashboard redraws (default 0.25)
{follow}

Exit status: 0, 1 if the run failed or had aborted episodes, 2 on bad input.
""".format(follow=follow_help(22))

ERRORS_SHOWN = 5


@dataclass
class Summary:
    """Count, mean, std, min and max of a stream of numbers (Welford)."""

    count: int = 0
    mean: float = 0.0
    _m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (value - self.mean)
        self.min, self.max = min(self.min, value), max(self.max, value)

    @property
    def std(self) -> float:
        return math.sqrt(self._m2 / self.count) if self.count else 0.0


@dataclass
class WorkerState:
    pid: int | None = None
    episodes: int = 0
    steps: int = 0
    episode: int | None = None  # the episode it is playing
    state: str = "starting"


@dataclass
class RunState:
    """What the dashboard shows, updated event by event."""

    run_id: str = ""
    env: str = ""
    runner: str = ""
    n_episodes: int = 0
    status: str = "waiting for run.start"
    episodes: int = 0
    aborted: int = 0
    steps: int = 0
    started: float | None = None  # run.start's time
    last: float | None = None  # the latest event's time
    returns: Summary = field(default_factory=Summary)
    lengths: Summary = field(default_factory=Summary)
    workers: dict[int, WorkerState] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def handle(self, event: events.Event) -> None:
        self.last = event.time
        kind = event.KIND
        # the driver's events (an episode it ends for a dead worker; in a damaged log, any
        # worker's kind) count in the run's totals only: their state is shown nowhere
        worker = (self.workers.setdefault(event.worker, WorkerState()) if event.worker >= 0
                  else WorkerState())
        if kind == "step.batch":
            self.steps += event.n
            worker.steps += event.n
        elif kind == "episode.start":
            worker.episode, worker.state = event.episode, "playing"
        elif kind == "episode.end":
            self._episode_end(event, worker)
        elif kind == "worker.start":
            worker.pid, worker.state = event.pid, "started"
        elif kind == "worker.end":
            worker.state, worker.episode = "done", None
        elif kind == "worker.error":
            self.errors.append(f"worker {event.worker}, episode {event.episode}: {event.error}")
        elif kind == "run.start":
            self.run_id, self.env, self.runner = event.run_id, event.env, event.runner
            self.n_episodes, self.started, self.status = event.n_episodes, event.time, "running"
        elif kind == "run.end":
            self.status = event.status
            self.errors += [f"run: {error}" for error in event.errors]

    def _episode_end(self, end: events.EpisodeEnd, worker: WorkerState) -> None:
        self.episodes += 1
        if end.aborted:
            self.aborted += 1
        else:
            self.returns.add(end.return_)
            self.lengths.add(end.length)
        worker.episodes += 1
        worker.state = "between episodes"

    @property
    def steps_per_second(self) -> float:
        if self.started is None or self.last is None or self.last <= self.started:
            return 0.0
        return self.steps / (self.last - self.started)

    @property
    def ok(self) -> bool:
        return self.status == "completed" and not self.aborted


def render(state: RunState) -> Any:
    from rich.console import Group
    from rich.table import Table

    head = Table(show_header=False, box=None, pad_edge=False)
    style = {"completed": "green", "running": "cyan"}.get(state.status, "red")
    head.add_row("run", f"{state.run_id}  [dim]{state.env}, {state.runner} runner[/]")
    head.add_row("status", f"[{style}]{state.status}[/]")
    head.add_row("episodes", f"{state.episodes:,} of {state.n_episodes:,} done, "
                             f"{state.aborted:,} aborted")
    head.add_row("steps", f"{state.steps:,} ({state.steps_per_second:,.0f} steps/s)")
    stats = Table(title="episodes", title_justify="left")
    for column in ("", "count", "mean", "std", "min", "max"):
        stats.add_column(column, justify="right" if column else "left")
    for name, summary in (("return", state.returns), ("length", state.lengths)):
        stats.add_row(name, f"{summary.count:,}", *(
            f"{value:,.4g}" if summary.count else "-"
            for value in (summary.mean, summary.std, summary.min, summary.max)))
    workers = Table(title="workers", title_justify="left")
    for column in ("worker", "pid", "state", "episode", "episodes", "steps"):
        workers.add_column(column, justify="left" if column == "state" else "right")
    for index, worker in sorted(state.workers.items()):
        workers.add_row(str(index), str(worker.pid or "-"), worker.state,
                        "-" if worker.episode is None else str(worker.episode),
                        f"{worker.episodes:,}", f"{worker.steps:,}")
    parts = [head, stats, workers]
    if state.errors:
        parts.append(f"[red]errors ({len(state.errors)}):[/]")
        parts += [f"  [red]{error}[/]" for error in state.errors[-ERRORS_SHOWN:]]
    return Group(*parts)


def command(args: list[str]) -> int:
    parser = Parser("eventroll watch")
    parser.add_argument("run_dir")
    parser.add_argument("--refresh", type=float, default=0.25)
    parser.add_follow_options()
    options = parser.parse_args(args)
    curve = follow_setup(options)
    from rich.console import Console
    from rich.live import Live

    from eventroll.live import subscribe

    state, console = RunState(), Console()
    try:
        with Live(render(state), console=console, auto_refresh=False) as live:
            drawn = 0.0
            for event in subscribe(options.run_dir, arrays=False, curve=curve):
                state.handle(event)
                if time.monotonic() - drawn >= options.refresh:
                    live.update(render(state), refresh=True)
                    drawn = time.monotonic()
            live.update(render(state), refresh=True)
        if not console.is_terminal:
            print()  # the last drawing ends without a newline there
    except KeyboardInterrupt:
        return 130
    return 0 if state.ok else 1

"""``eventroll run``: a rollout configured with Hydra overrides, as ``maze-run`` does."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import time
from typing import Any

from eventroll.errors import ConfigError, EventrollError

HELP = """\
usage: eventroll run [KEY=VALUE ...]

Roll out a policy in a Gymnasium env for many episodes and record every event
in a run directory: config.yaml, events.msgpack (the event log),
trajectories.h5 (HDF5 trajectories), stats.json (statistics, also printed as a
table at the end) and run.jsonl (the run's own log).

Config groups (choose with GROUP=OPTION):
  runner   parallel (default) | sequential
  env      gym_env (default): env.name=ID or module:callable; env kwargs with +env.KEY=VALUE
  policy   random_policy (default): policy.name=random or pkg.module:Class; kwargs with +policy.KEY=VALUE

Keys:
  runner.n_episodes=100        episodes to run
  runner.max_episode_steps=N   truncate episodes at N steps (recorded as truncation)
  runner.deterministic=false   ask the policy for greedy actions
  runner.record_event_logs=true  write events.msgpack
  runner.record_trajectory=true  write trajectories.h5 (or a Minari dataset, see recording.layout)
  runner.n_processes=2         parallel workers (parallel runner)
  runner.render=false          render each step in a window (sequential: every episode;
                               parallel: worker 0's episodes only, the others run unslowed)
  seeding.env_base_seed=N      episode seeds derive from the base seeds (null: random, recorded)
  seeding.agent_base_seed=N
  seeding.explicit_env_seeds=[1,2,3]    one seed per episode (the run has min(n_episodes, len) episodes)
  seeding.explicit_agent_seeds=[1,2,3]
  recording.layout=flat        flat: trajectories.h5 | minari: a Minari dataset under minari/
  recording.dataset_id=NS/NAME-vN   the Minari dataset id (default eventroll/<env>-v0)
  recording.next_observations=false  also store each step's next observation
  recording.infos=false        also store each step's info dict
  recording.logits=false       also store the policy's logits (compute_action_with_logits)
  recording.stats=true         write stats.json and print the statistics
  recording.custom_stats='{speed: {event: car, field: speed, step: max, episode: mean, epoch: mean}}'
                               statistics of custom events (reducers: sum mean len min max std
                               median histogram or module:function; group_by: FIELD)
  wrappers='{gymnasium.wrappers.ClipReward: {min_reward: -1.0}}'   wrapper class path -> kwargs, in order
  hydra.run.dir=DIR            the run directory (default outputs/DATE/TIME)

Examples:
  eventroll run
  eventroll run env.name=LunarLander-v3 runner=sequential runner.n_episodes=1
  eventroll run runner.n_processes=3 runner.n_episodes=100 runner.max_episode_steps=50
  eventroll run seeding.env_base_seed=1 seeding.agent_base_seed=2 hydra.run.dir=out/run1

Ctrl-C (or SIGTERM) stops the run cleanly: no new episode starts, the ones being
played end, every artifact is flushed and closed; exit status 130 (143). A
second Ctrl-C stops it at once; the artifacts keep what they had flushed.

Exit status: 0 when every episode completed, 1 when any did not, 2 on bad input,
130 / 143 when interrupted by SIGINT / SIGTERM.
"""


class RichProgress:
    """A rich progress bar: episodes done of total, steps/s."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self._bar = Progress(TextColumn("[bold]episodes"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[rate]} steps/s"), TimeElapsedColumn(),
                             console=console, transient=False)
        self._task = None
        self._started = 0.0

    def start(self, total: int) -> None:
        self._started = time.perf_counter()
        self._task = self._bar.add_task("rollout", total=total, rate="-")
        self._bar.start()

    def update(self, episodes_done: int, steps: int) -> None:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._bar.update(self._task, completed=episodes_done, rate=f"{steps / elapsed:,.0f}")

    def stop(self) -> None:
        self._bar.stop()


def build_runner(config: dict[str, Any], progress: Any) -> Any:
    from eventroll.runners import ParallelRunner, SequentialRunner
    from eventroll.runners.base import RolloutRunner

    runner = dict(config["runner"])
    kind = runner.pop("type")
    cls = {"parallel": ParallelRunner, "sequential": SequentialRunner}.get(kind)
    if cls is None:
        raise ConfigError(f"runner.type must be parallel or sequential, got {kind!r}")
    known = set(inspect.signature(cls).parameters) | set(
        inspect.signature(RolloutRunner.__init__).parameters)
    unknown = sorted(set(runner) - known)
    if unknown:  # the keys the config already has are the runner's own
        keys = ", ".join(key for key in runner if key not in unknown)
        raise ConfigError(f"unknown config key runner.{unknown[0]} for the {kind} runner; "
                          f"its keys: {keys}")
    return cls(**runner, **config["seeding"], recording=config.get("recording"),
               live=config.get("live"), progress=progress)


def summary(result: Any, console: Any) -> None:
    from rich.table import Table

    rate = result.steps / max(result.wall_time, 1e-9)
    table = Table(show_header=False, box=None, pad_edge=False)
    style = "green" if result.ok else "red"
    table.add_row("status", f"[{style}]{result.status}[/]")
    table.add_row("episodes", f"{result.episodes} completed, {result.aborted} aborted, "
                              f"of {result.n_episodes}")
    table.add_row("steps", f"{result.steps:,} in {result.wall_time:.2f} s ({rate:,.0f} steps/s)")
    table.add_row("run dir", result.run_dir)
    console.print(table)
    if os.path.exists(result.stats):
        console.print(stats_table(result.stats))
    for error in result.errors[:20]:
        console.print(f"[red]error:[/] {error}", highlight=False)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def stats_table(path: str) -> Any:
    """The run's ``stats.json`` as tables: returns and lengths, then custom statistics."""
    from rich.console import Group
    from rich.table import Table

    from eventroll.stats import LEVELS, SUMMARIES, SUMMARY_KEYS, Statistics

    stats = Statistics.load(path).result
    columns = SUMMARY_KEYS
    summary = Table(title="statistics (stats.json)", title_justify="left")
    summary.add_column("statistic")
    for column in columns:
        summary.add_column(column, justify="right")
    for name in SUMMARIES:
        summary.add_row(name, *(_number(stats[name][c]) for c in columns))
    if stats.get("lost_attempt_count"):
        summary.caption = (f"{stats['lost_attempt_count']} attempts made void (lost_attempt_count): "
                           "retried failures, or episodes of workers that died")
        summary.caption_justify = "left"
    if not stats.get("custom"):
        return summary
    custom = Table(title="custom statistics (epoch)", title_justify="left")
    for column in ("statistic", "group", "reducers (step/episode/epoch)", "value"):
        custom.add_column(column, justify="right" if column == "value" else "left")
    for name, stat in stats["custom"].items():
        reducers = "/".join(str(stat["reducers"][level]) for level in LEVELS)
        groups = stat["epoch"].items() if stat.get("group_by") else [("", stat["epoch"])]
        for group, value in groups:
            custom.add_row(name, str(group), reducers, _number(value))
    return Group(summary, custom)


def command(args: list[str]) -> int:
    from eventroll.cli.config import ComposeInChild

    composing = ComposeInChild(args)  # first: Hydra composes while the runners import
    importlib.import_module("eventroll.runners")
    from rich.console import Console

    console = Console(stderr=True)
    try:
        config, run_dir = composing.result()
        runner = build_runner(config, RichProgress(console))
        result = runner.run_with(config["env"], config["wrappers"], config["policy"],
                                 run_dir=run_dir, config=config)
    except EventrollError as exc:
        print(f"eventroll run: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        print("eventroll run: stopped at once; the run directory keeps what was flushed "
              "(a first Ctrl-C stops a run cleanly)", file=sys.stderr)
        return 130
    summary(result, console)
    return result.exit_code

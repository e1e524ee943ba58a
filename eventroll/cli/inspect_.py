"""``eventroll inspect``: a summary of a run directory, an event log or a trajectory file."""

from __future__ import annotations

import json
import os
from typing import Any

from eventroll.cli.args import Parser
from eventroll.errors import InputError

HELP = """\
usage: eventroll inspect PATH [--plot PNG | --no-plot] [--json]

Summarise an eventroll artifact: a run directory, an event log
(events.msgpack) or a flat trajectory file (trajectories.h5). Prints the run
id, env, spaces, episodes and steps, the episodes by status (terminated,
truncated, aborted, incomplete), return and length statistics, seeds, counts
per worker and the problems found (a truncated tail, undecodable bytes,
episodes without an end, counts that disagree; `eventroll validate` also checks
every record against the schemas), and plots the return of each episode to a
PNG.

options:
  --plot PNG   where to write the plot (default: returns.png in the run
               directory, or next to the file)
  --no-plot    write no plot
  --json       print the summary as one JSON map instead of tables

Examples:
  eventroll inspect outputs/2026-11-21/10-00-00
  eventroll inspect run/events.msgpack --no-plot
  eventroll inspect run/trajectories.h5 --json | jq .statuses

Exit status: 0 when summarised (problems found are listed), 2 on bad input.
"""

PROBLEMS_SHOWN = 20


def _parser() -> Parser:
    parser = Parser("eventroll inspect")
    parser.add_argument("path", metavar="PATH")
    plot = parser.add_mutually_exclusive_group()
    plot.add_argument("--plot", metavar="PNG")
    plot.add_argument("--no-plot", action="store_true")
    parser.add_argument("--json", action="store_true")
    return parser


def default_plot_path(path: str) -> str:
    """``returns.png`` in a run directory, or next to a file."""
    from eventroll.inspection import PLOT_NAME

    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    return os.path.join(folder, PLOT_NAME)


def command(args: list[str]) -> int:
    options = _parser().parse_args(args)
    from eventroll.inspection import inspect_artifact, plot_returns

    try:
        inspection = inspect_artifact(options.path)
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename or options.path}: {exc.strerror or exc}; "
                         "pass a readable run directory, event log or trajectory file") from None
    summary = inspection.summary
    if not options.no_plot:
        plot = options.plot or default_plot_path(options.path)
        try:
            plot_returns(inspection.returns, plot)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot write the plot to {plot}: {exc}; pass --plot PNG or "
                             "--no-plot") from None
        summary["plot"] = plot
    if options.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


# -- the tables ------------------------------------------------------------------------

def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    console.print(_overview(summary))
    console.print(_statistics(summary))
    console.print(_workers(summary))
    if summary.get("plot"):
        console.print(f"plot: {summary['plot']}", markup=False, soft_wrap=True)
    problems = summary["problems"]
    if not problems:
        console.print("[green]no problems found[/]")
        return
    console.print(f"[red]problems ({len(problems)}):[/]")
    for problem in problems[:PROBLEMS_SHOWN]:
        console.print(f"  {problem}", markup=False, soft_wrap=True)
    if len(problems) > PROBLEMS_SHOWN:
        console.print(f"  ... and {len(problems) - PROBLEMS_SHOWN} more "
                      "(eventroll validate lists every problem)", soft_wrap=True)


def _overview(summary: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False, title=summary["artifact"],
                  title_justify="left")
    planned = summary.get("episodes_planned")
    rows = {
        "path": summary["path"], "run id": summary.get("run_id"), "env": summary.get("env"),
        "runner": _runner(summary), "run status": summary.get("run_status"),
        "episodes": f"{summary['episodes']:,} ended" + (f" of {planned:,}" if planned else "")
                    + _without_end(summary),
        "steps": f"{summary['steps']:,}",
        "observation space": summary.get("observation_space"),
        "action space": summary.get("action_space"),
        "statuses": ", ".join(f"{n:,} {status}" for status, n in summary["statuses"].items()),
        "env seeds": _seed_text(summary["seeds"]["env"]),
        "agent seeds": _seed_text(summary["seeds"]["agent"]),
        "files": ", ".join(f"{name} ({size:,} bytes)"
                           for name, size in summary.get("files", {}).items()),
    }
    for name, value in rows.items():
        if value:
            table.add_row(name, str(value))
    return table


def _runner(summary: dict[str, Any]) -> str | None:
    if summary.get("runner") is None:
        return None
    return f"{summary['runner']}, {summary['n_workers']} worker(s)"


def _without_end(summary: dict[str, Any]) -> str:
    open_episodes = summary.get("episodes_without_end")
    return f", {open_episodes} started without an end" if open_episodes else ""


def _seed_text(seeds: dict[str, Any]) -> str:
    text = f"{seeds['count']:,} ({seeds['distinct']:,} distinct)"
    if seeds["count"]:
        text += f", {seeds['min']}..{seeds['max']}"
    return text + (f", {seeds['none']:,} episodes without a seed" if seeds["none"] else "")


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"


def _statistics(summary: dict[str, Any]) -> Any:
    from rich.table import Table

    keys = ("count", "mean", "std", "min", "max", "median")
    table = Table(title="ended episodes", title_justify="left")
    table.add_column("statistic")
    for key in keys:
        table.add_column(key, justify="right")
    for name in ("return", "length"):
        table.add_row(name, *(_number(summary[name][key]) for key in keys))
    return table


def _workers(summary: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="per worker", title_justify="left")
    for column in ("worker", "episodes", "steps", "aborted"):
        table.add_column(column, justify="right")
    for worker, counts in summary["per_worker"].items():
        table.add_row(worker, *(f"{counts[key]:,}" for key in ("episodes", "steps", "aborted")))
    return table

"""``eventroll rerun``: re-execute recorded episodes and report the first difference."""

from __future__ import annotations

import argparse
import sys

from eventroll.errors import EventrollError

HELP = """\
usage: eventroll rerun RUN_DIR [--episode N ...]

Re-execute recorded episodes: rebuild the run's env from its event log (env name
and kwargs, wrappers, runner.max_episode_steps, as recorded in run.start), reset it
with each episode's recorded env seed, step it with the recorded actions, and
compare every observation (exactly), reward, terminated and truncated flag with
the recording. A determinism check of the env and of the recording. Aborted
episodes are re-executed up to their last recorded step.

Prints one line per episode: ok, or the first step that differs with the
recorded and re-executed values.

arguments:
  RUN_DIR               a run directory (with events.msgpack) or an event log file
  --episode N [N ...]   the episodes to re-execute (repeatable; default: all)

Examples:
  eventroll rerun outputs/2024-05-01/12-00-00
  eventroll rerun out/run1 --episode 3 7

Exit status: 0 when every episode re-executed identically, 1 when any differed,
2 on bad input.
"""


class UsageError(Exception):
    """The command line is wrong; the message says how."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one-line exceptions, not usage text and exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parser() -> Parser:
    result = Parser(prog="eventroll rerun", add_help=False)
    result.add_argument("run_dir")
    result.add_argument("--episode", type=int, nargs="+", action="extend")
    return result


def command(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(HELP, end="")
        return 0
    from eventroll.reexecution import reexecute

    try:
        options = parser().parse_args(args)
        checks = reexecute(options.run_dir, options.episode)
    except UsageError as exc:
        print(f"eventroll rerun: error: {exc} (see `eventroll rerun --help`)", file=sys.stderr)
        return 2
    except (EventrollError, OSError) as exc:
        print(f"eventroll rerun: error: {exc}", file=sys.stderr)
        return 2
    for check in checks:
        print(check)
    differing = sum(not check.ok for check in checks)
    print(f"{len(checks) - differing} of {len(checks)} episodes re-executed identically",
          file=sys.stderr)
    return 1 if differing else 0

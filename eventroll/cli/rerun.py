"""``eventroll rerun``: re-execute recorded episodes and report the first difference."""

from __future__ import annotations

import sys

from eventroll.cli.args import Parser

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


def parser() -> Parser:
    result = Parser("eventroll rerun")
    result.add_argument("run_dir")
    result.add_argument("--episode", type=int, nargs="+", action="extend")
    return result


def command(args: list[str]) -> int:
    from eventroll.reexecution import reexecute

    options = parser().parse_args(args)
    checks = reexecute(options.run_dir, options.episode)
    for check in checks:
        print(check)
    differing = sum(not check.ok for check in checks)
    print(f"{len(checks) - differing} of {len(checks)} episodes re-executed identically",
          file=sys.stderr)
    return 1 if differing else 0

"""The ``eventroll`` command line: one module per command in this package, each with
a ``HELP`` text and ``command(args) -> exit status``. ``main`` answers ``--help``
and turns :class:`UsageError` and the errors of bad input (:class:`EventrollError`,
``OSError``) that a command leaves to it into one line and exit status 2."""

from __future__ import annotations

import gc
import importlib
import os
import sys

from eventroll import __version__
from eventroll.cli.args import UsageError, early_priority
from eventroll.errors import EventrollError
from eventroll.memory import collect_rarely, keep_freed_memory

FOLLOWERS = ("tail", "watch")  # they follow a run at a lowered CPU priority (--nice)
# they run an env and a policy in this process: Python's collector stays as it is for them
# (user code may make reference cycles that hold large buffers); the others only read
# recordings, and collect rarely (eventroll.memory.collect_rarely)
RUNS_USER_CODE = ("run", "rerun", "render")

# command -> (module in eventroll.cli, one line of help)
COMMANDS = {
    "run": ("run", "roll out a policy in an env and record every event"),
    "watch": ("watch", "a live dashboard of a run, running or finished"),
    "tail": ("tail", "a run's events as JSON lines, filtered; --follow for new ones"),
    "replay": ("replay", "rebuild a run's trajectories and statistics from its event log"),
    "rerun": ("rerun", "re-execute recorded episodes and report the first difference"),
    "render": ("render", "render a recorded episode to a GIF"),
    "inspect": ("inspect_", "summarise an event log, an HDF5 file or a run directory"),
    "export": ("export", "export a run as a Minari dataset (export minari RUN_DIR ...)"),
    "validate": ("validate", "check an event log against the schemas, sequence and counts"),
}


def usage() -> str:
    lines = [f"eventroll {__version__}: event-sourced rollouts for reinforcement learning", "",
             "usage: eventroll COMMAND [ARGS]   (eventroll COMMAND --help for each)", "",
             "commands:"]
    lines += [f"  {name:10s}{summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help  show this help", "  --version   print the version"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    # one BLAS thread a process unless told otherwise: rollout processes are already one
    # per core, and numpy's import starts a thread a core otherwise (60 ms here)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    keep_freed_memory()
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0 if args else 2
    if args[0] == "--version":
        print(__version__)
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"eventroll: error: unknown command {command!r}; commands: "
              f"{', '.join(COMMANDS)} (see `eventroll --help`)", file=sys.stderr)
        return 2
    help_asked = any(arg in ("-h", "--help") for arg in rest)
    if command not in RUNS_USER_CODE:
        collect_rarely()
    try:
        if command in FOLLOWERS and not help_asked:
            early_priority(rest)  # before the imports: a follower's start-up is work too
        module = importlib.import_module(f"eventroll.cli.{COMMANDS[command][0]}")
        if help_asked:
            print(module.HELP, end="")
            return 0
        return module.command(rest)
    except UsageError as exc:
        return _error(command, f"{exc} (see `eventroll {command} --help`)")
    except (EventrollError, OSError) as exc:  # bad input, named by the message
        return _error(command, str(exc))
    except KeyboardInterrupt:  # Ctrl-C in a command that reads recordings
        print(f"eventroll {command}: interrupted; what it wrote so far may be incomplete",
              file=sys.stderr)
        return 130
    finally:
        # what is left is garbage at exit: spare the interpreter's last collections a
        # traversal of every object (about 0.1 s after a run)
        gc.freeze()


def _error(command: str, message: str) -> int:
    print(f"eventroll {command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

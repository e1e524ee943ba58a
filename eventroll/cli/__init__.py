"""The ``eventroll`` command line."""

from __future__ import annotations

import sys

from eventroll import __version__

USAGE = f"""\
eventroll {__version__}: event-sourced rollouts for reinforcement learning

usage: eventroll COMMAND [ARGS]

commands:
  run [KEY=VALUE ...]   roll out a policy in an env and record every event
                        (`eventroll run --help` lists the keys)

options:
  -h, --help            show this help
  --version             print the version
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    if args[0] == "--version":
        print(__version__)
        return 0
    command, rest = args[0], args[1:]
    if command == "run":
        from eventroll.cli.run import run_command

        return run_command(rest)
    print(f"eventroll: error: unknown command {command!r}; commands: run "
          "(see `eventroll --help`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

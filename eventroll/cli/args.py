"""Argument parsing shared by the commands: a mistake is one line, not usage text."""

from __future__ import annotations

import argparse
import os
import textwrap
from typing import Any

PRIORITY = "idle"  # a live subscriber's command's CPU priority by default (--nice)


class UsageError(Exception):
    """The command line is wrong; the message says how (``main`` prints it, exit 2)."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors raise :class:`UsageError`; ``--help`` is left to
    ``main``, which prints the command's own ``HELP``."""

    def __init__(self, prog: str, **options: Any) -> None:
        super().__init__(prog=prog, add_help=False, **options)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)

    def add_follow_options(self) -> None:
        """The options of the commands that follow a live run: ``--nice idle|N`` (applied
        before the command's imports, :func:`early_priority`; accepted here), and the CURVE
        key files for a TCP endpoint."""
        self.add_argument("--nice")
        self.add_argument("--server-key")
        self.add_argument("--client-key")


def follow_help(column: int) -> str:
    """The help lines of :meth:`Parser.add_follow_options`, descriptions at ``column``."""
    pad = " " * column
    nice = textwrap.fill("this process's CPU priority, so that following a run never takes "
                         "the CPU the run needs: idle (the default for a run directory: it runs "
                         "on the CPU time nothing else wants, Linux's SCHED_IDLE, elsewhere "
                         "nice 19, and reads what it missed from the event log), or N to lower "
                         "it by N (0 keeps it; the default for an endpoint, which has no log)", 80,
                         initial_indent="  --nice idle|N".ljust(column), subsequent_indent=pad)
    keys = textwrap.fill("for RUN_DIR given as a run's TCP endpoint with CURVE (live.listen): "
                         "the run's public key file, this client's secret key file", 80,
                         initial_indent=pad, subsequent_indent=pad)
    return f"{nice}\n  --server-key FILE, --client-key FILE\n{keys}"


def early_priority(args: list[str]) -> None:
    """Apply ``--nice`` (:func:`lower_priority`) from a follower's raw arguments, before
    anything else is imported: ten watchers starting at once are work the run would
    otherwise wait for."""
    # an endpoint has no event log to fill what the run's fan-out drops for a subscriber
    # that falls behind: following one, keep the priority unless told otherwise
    remote = any(arg.startswith(("tcp://", "ipc://")) for arg in args)
    priority = "0" if remote else PRIORITY
    for i, arg in enumerate(args):
        if arg == "--nice" and i + 1 < len(args):
            priority = args[i + 1]
        elif arg.startswith("--nice="):
            priority = arg.split("=", 1)[1]
    lower_priority(priority)


def follow_setup(options: argparse.Namespace) -> tuple[str, str] | None:
    """The CURVE keys (server public, client secret) if given (``--nice`` is applied
    before the command's imports, :func:`early_priority`)."""
    keys = (options.server_key, options.client_key)
    if any(keys) and not all(keys):
        raise UsageError("--server-key and --client-key go together (the run's public key "
                         "file and this client's secret key file)")
    return keys if all(keys) else None


def lower_priority(priority: str) -> None:
    """Lower this process's CPU priority: ``idle`` (SCHED_IDLE where the OS has it, else
    nice 19) or a niceness increment ``0`` to ``19`` (0: leave it). A live subscriber
    decodes every event of the run; on a machine with few cores that work competes
    with the run's own, and the lowest priority leaves the run every cycle it wants."""
    if priority == "idle":
        if hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif hasattr(os, "nice"):
            os.nice(19)
        return
    nice = int(priority) if priority.isdigit() else -1
    if not 0 <= nice <= 19:
        raise UsageError(f"--nice {priority}: choose idle (the default, the lowest), or 0 (keep "
                         "the priority) to 19")
    if nice and hasattr(os, "nice"):
        os.nice(nice)

"""Argument parsing shared by the commands: a mistake is one line, not usage text."""

from __future__ import annotations

import argparse
from typing import Any


class UsageError(Exception):
    """The command line is wrong; the message says how (``main`` prints it, exit 2)."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors raise :class:`UsageError`; ``--help`` is left to
    ``main``, which prints the command's own ``HELP``."""

    def __init__(self, prog: str, **options: Any) -> None:
        super().__init__(prog=prog, add_help=False, **options)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)

"""The run's own structured log: readable lines on the console, JSON lines in ``run.jsonl``.

No global structlog configuration: each run wraps its own logger.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import structlog

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class _RunSink:
    """Writes each event dict as a JSON line to a file and, above a level, to the console."""

    def __init__(self, file: TextIO | None, console: TextIO | None, console_level: str) -> None:
        self._file = file
        self._console = console
        self._console_level = LEVELS[console_level]
        self._render = structlog.dev.ConsoleRenderer(colors=bool(console and console.isatty()))

    def _write(self, **event: Any) -> None:
        if self._file is not None:
            self._file.write(json.dumps(event, default=str) + "\n")
            self._file.flush()
        if self._console is not None and LEVELS.get(event.get("level", "info"), 20) >= self._console_level:
            self._console.write(self._render(None, "", dict(event)) + "\n")
            self._console.flush()

    debug = info = warning = error = critical = msg = _write


class RunLog:
    """Owns the run log file; ``log`` is a structlog bound logger."""

    def __init__(self, path: str | None, *, console: TextIO | None = sys.stderr,
                 console_level: str = "warning") -> None:
        self._file = open(path, "a", encoding="utf-8") if path else None
        self.log = structlog.wrap_logger(
            _RunSink(self._file, console, console_level),
            processors=[structlog.processors.add_log_level,
                        structlog.processors.TimeStamper(fmt="iso", utc=True),
                        _as_kwargs],
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _as_kwargs(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return event_dict

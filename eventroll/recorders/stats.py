"""The stats recorder: ``stats.json``, the statistics of a run (layout: ``schemas/stats.md``).

It runs as a durable subscriber process and reduces the events as they arrive
(:class:`eventroll.stats.StatsAggregator`); the file is written once, at the end
of the run, atomically. Offline, :func:`eventroll.stats.replay_stats` computes
the same content from the event log.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from eventroll import events
from eventroll.errors import ConfigError
from eventroll.stats import StatsAggregator, StatSpec, to_json


class StatsRecorder:
    """Writes ``path`` (``stats.json``) at the end of the run.

    ``specs``: the custom statistics, as :class:`~eventroll.stats.StatSpec` objects
    or plain mappings (keep them plain when the recorder runs in its own process).
    """

    def __init__(self, path: str, specs: Sequence[Mapping[str, Any] | StatSpec] = ()) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ConfigError(f"stats recorder: the directory {directory} of {path} does not "
                              "exist; create it or choose another path")
        self.path = path
        self._aggregator = StatsAggregator(specs)

    def handle(self, event: events.Event, raw: bytes | None) -> None:
        self._aggregator.handle(event)

    def tick(self) -> None:
        pass

    def close(self) -> dict[str, Any]:
        result = self._aggregator.result()
        write_atomic(self.path, to_json(result))
        return {"path": self.path, "episodes": result["episode_count"],
                "problems": sum(result["problems"].values())}


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one:
    a temporary file in the same directory, fsynced, then renamed over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                     suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (where the platform lets a directory be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

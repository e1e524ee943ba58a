"""The stats recorder: ``stats.json``, the statistics of a run (layout: ``schemas/stats.md``).

It runs as a durable subscriber process and reduces the events as they arrive
(:class:`eventroll.stats.StatsAggregator`); the file is written once, at the end
of the run, atomically. Offline, :func:`eventroll.stats.replay_stats` computes
the same content from the event log.
"""

from __future__ import annotations

import os
from typing import Any

from eventroll import events
from eventroll.errors import ConfigError
from eventroll.files import write_atomic
from eventroll.stats import StatsAggregator, to_json


class StatsRecorder:
    """Writes ``path`` (``stats.json``) at the end of the run.

    ``specs``: the custom statistics, anything :func:`eventroll.stats.parse_specs`
    takes (keep them plain mappings when the recorder runs in its own process).
    """

    array_kinds = frozenset({"custom"})  # custom fields may be numpy values; nothing else is read
    takes_plain = takes_packed = True

    def __init__(self, path: str, specs: Any = ()) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ConfigError(f"stats recorder: the directory {directory} of {path} does not "
                              "exist; create it or choose another path")
        self.path = path
        self.aggregator = StatsAggregator(specs)

    def handle(self, event: events.Event) -> None:
        self.aggregator.handle(event)

    def handle_plain(self, record: dict) -> None:
        self.aggregator.handle_plain(record)

    def tick(self) -> None:
        pass

    def close(self) -> dict[str, Any]:
        result = self.aggregator.result()
        write_atomic(self.path, to_json(result))
        return {"path": self.path, "episodes": result["episode_count"],
                "problems": sum(result["problems"].values())}

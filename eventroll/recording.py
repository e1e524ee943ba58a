"""What a run records, and the recorder processes that record it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from eventroll.errors import ConfigError
from eventroll.recorders.base import RecorderSpec
from eventroll.recorders.eventlog import FILE_NAME as EVENT_LOG, EventLogRecorder
from eventroll.recorders.trajectories import LAYOUTS, TrajectoryRecorder
from eventroll.trajectories.flat import FILE_NAME as TRAJECTORIES

STATS = "stats.json"
MINARI_DIR = "minari"


@dataclass(frozen=True)
class RecordingOptions:
    """The artifacts of a run.

    ``event_log``: ``events.msgpack``. ``trajectory``: HDF5 trajectories, in the
    ``flat`` layout (``trajectories.h5``) or the ``minari`` layout (a dataset
    under ``minari/``, id ``dataset_id``, by default ``eventroll/<env>-v0``);
    ``next_observations`` and ``infos`` add those fields. ``stats``:
    ``stats.json``, with the custom statistics ``custom_stats`` (name -> spec).
    """

    event_log: bool = True
    trajectory: bool = True
    layout: str = "flat"
    dataset_id: str | None = None
    next_observations: bool = False
    infos: bool = False
    stats: bool = True
    custom_stats: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"recording.layout must be one of {', '.join(LAYOUTS)}, "
                              f"got {self.layout!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, **overrides: Any) -> "RecordingOptions":
        """From a config mapping (``recording:`` of the command line), with overrides."""
        values = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown recording option(s) {unknown}; known: {sorted(known)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["custom_stats"] = dict(values.get("custom_stats") or {})
        return cls(**values)

    def minari_dataset_id(self, env_label: str) -> str:
        if self.dataset_id:
            return self.dataset_id
        name = re.sub(r"[^a-z0-9_]+", "_", env_label.split(":")[-1].lower().rsplit("-v", 1)[0])
        return f"eventroll/{name.strip('_') or 'env'}-v0"


def recorder_specs(options: RecordingOptions, run_dir: str, run_id: str,
                   env_label: str) -> list[RecorderSpec]:
    """One durable recorder process per artifact the options ask for."""
    specs = []
    if options.event_log:
        specs.append(RecorderSpec("eventlog", EventLogRecorder,
                                  {"path": os.path.join(run_dir, EVENT_LOG), "run_id": run_id}))
    if options.trajectory:
        flat = options.layout == "flat"
        specs.append(RecorderSpec("trajectories", TrajectoryRecorder, {
            "path": os.path.join(run_dir, TRAJECTORIES if flat else MINARI_DIR),
            "layout": options.layout,
            "dataset_id": None if flat else options.minari_dataset_id(env_label),
            "next_observations": options.next_observations, "infos": options.infos}))
    if options.stats:
        from eventroll.recorders.stats import StatsRecorder

        specs.append(RecorderSpec("stats", StatsRecorder, {
            "path": os.path.join(run_dir, STATS),
            "specs": [{"name": name, **dict(spec)} for name, spec in options.custom_stats.items()]}))
    return specs

"""eventroll: event-sourced rollouts for reinforcement learning.

Names are imported on first use, so worker and recorder processes load only
what they need.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BusError": "eventroll.errors",
    "CodecError": "eventroll.errors",
    "ConfigError": "eventroll.errors",
    "EpisodeSummary": "eventroll.runners.loop",
    "EventError": "eventroll.errors",
    "EventLogReader": "eventroll.recorders.eventlog",
    "EventrollError": "eventroll.errors",
    "ParallelRunner": "eventroll.runners.parallel",
    "RolloutGenerator": "eventroll.generator",
    "RolloutRunner": "eventroll.runners.base",
    "RunResult": "eventroll.runners.base",
    "SequentialRunner": "eventroll.runners.sequential",
    "StatSpec": "eventroll.stats",
    "Statistics": "eventroll.stats",
    "StatsAggregator": "eventroll.stats",
    "StatsQueryError": "eventroll.stats",
    "StatsRecorder": "eventroll.recorders.stats",
    "Trajectory": "eventroll.trajectories.record",
    "TrajectoryRecord": "eventroll.generator",
    "TrajectoryFile": "eventroll.trajectories.flat",
    "TrajectoryRecorder": "eventroll.recorders.trajectories",
    "RecordingOptions": "eventroll.recording",
    "open_trajectories": "eventroll.trajectories.flat",
    "record_event": "eventroll.custom",
    "replay_stats": "eventroll.stats",
    "read_events": "eventroll.recorders.eventlog",
    "reexecute": "eventroll.reexecution",
    "render_episode": "eventroll.rendering",
    "replay_run": "eventroll.recording",
    "subscribe": "eventroll.live",
    "summarize": "eventroll.inspection",
    "validate_event_log": "eventroll.validation",
    "run_interaction_loop": "eventroll.runners.loop",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eventroll' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__

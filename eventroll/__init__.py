"""eventroll: event-sourced rollouts for reinforcement learning."""

__version__ = "0.1.0"

from eventroll.errors import (  # noqa: E402
    BusError, CodecError, ConfigError, EventError, EventrollError, GapError, RunError,
)
from eventroll.recorders.eventlog import EventLogReader, read_events  # noqa: E402
from eventroll.runners import (  # noqa: E402
    EpisodeSummary, ParallelRunner, RolloutRunner, RunResult, SequentialRunner,
    run_interaction_loop,
)

__all__ = [
    "BusError", "CodecError", "ConfigError", "EpisodeSummary", "EventError", "EventLogReader",
    "EventrollError", "GapError", "ParallelRunner", "RolloutRunner", "RunError", "RunResult",
    "SequentialRunner", "__version__", "read_events", "run_interaction_loop",
]

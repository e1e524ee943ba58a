"""Runners: sequential, parallel, and the interaction loop they share."""

from eventroll.runners.base import RolloutRunner, RunResult
from eventroll.runners.loop import EpisodeSummary, run_interaction_loop
from eventroll.runners.parallel import ParallelRunner
from eventroll.runners.sequential import SequentialRunner

__all__ = ["EpisodeSummary", "ParallelRunner", "RolloutRunner", "RunResult", "SequentialRunner",
           "run_interaction_loop"]

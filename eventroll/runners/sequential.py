"""The sequential runner: every episode in this process, one after the other."""

from __future__ import annotations

import itertools
import os
from typing import Any

import gymnasium as gym

from eventroll.events import WorkerEnd, WorkerStart
from eventroll.policies import Policy
from eventroll.runners.base import RolloutRunner, RunPlan, check_flag
from eventroll.runners.loop import EpisodeSummary
from eventroll.runners.session import RunSession
from eventroll.runners.worker import play_episodes


class SequentialRunner(RolloutRunner):
    """Runs the episodes in the calling process (worker 0); ``render`` shows them."""

    runner_name = "sequential"

    def __init__(self, n_episodes: int = 100, max_episode_steps: int | None = None,
                 deterministic: bool = False, record_trajectory: bool = True,
                 record_event_logs: bool = True, render: bool = False, **options: Any) -> None:
        super().__init__(n_episodes, max_episode_steps, deterministic, record_trajectory,
                         record_event_logs, **options)
        self.render = check_flag("render", render)

    def _render_mode(self) -> str | None:
        return "human" if self.render else None

    def _execute(self, plan: RunPlan, session: RunSession, probe: gym.Env,
                 policy: Policy) -> list[str]:
        settings = self._episode_settings(plan, self.render)
        publisher = session.source(0, pack=settings.pack_episodes)
        done = {"episodes": 0, "steps": 0}

        def on_episode(summary: EpisodeSummary) -> None:
            done["episodes"] += 1
            done["steps"] += summary.length
            self.progress.update(done["episodes"], done["steps"])

        try:
            publisher.add(WorkerStart(pid=os.getpid()))
            stop = plan.interruption

            def going(_: int) -> bool:
                session.check()
                return not stop.requested

            count = play_episodes(probe, policy, publisher,
                                  itertools.takewhile(going, range(plan.seeds.n_episodes)),
                                  settings, on_episode)
            publisher.finish(WorkerEnd(pid=os.getpid(), episodes=count,
                                       last_wseq=publisher.next_wseq))
        finally:
            publisher.close()
        return []

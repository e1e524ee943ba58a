"""The parallel runner: episodes handed out dynamically to worker processes."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import gymnasium as gym

from eventroll.environments import EnvFactory
from eventroll.errors import ConfigError
from eventroll.policies import Policy
from eventroll.runners.base import RolloutRunner, RunPlan, check_flag
from eventroll.runners.session import ProcessSpec, RunSession, process_context, reap
from eventroll.runners.supervision import REPLACEMENTS, Supervisor
from eventroll.runners.worker import Handout, WorkerSpec, worker_main

SUPERVISE_INTERVAL = 0.1


class ParallelRunner(RolloutRunner):
    """Runs the episodes in ``min(n_processes, n_episodes)`` worker processes.

    Each worker builds its own env and policy; env and agent therefore travel to
    the workers by name, as picklable factories or as picklable objects.
    With ``render``, worker 0 alone builds its env with ``render_mode="human"`` and
    renders each step: a window shows that worker's episodes, and the other workers
    run at full speed.
    """

    runner_name = "parallel"
    uses_worker_processes = True

    def __init__(self, n_episodes: int = 100, max_episode_steps: int | None = None,
                 deterministic: bool = False, record_trajectory: bool = True,
                 record_event_logs: bool = True, n_processes: int = 2, render: bool = False,
                 **options: Any) -> None:
        if not isinstance(n_processes, int) or isinstance(n_processes, bool) or n_processes < 1:
            raise ConfigError(f"runner.n_processes must be an integer >= 1, got {n_processes!r}")
        super().__init__(n_episodes, max_episode_steps, deterministic, record_trajectory,
                         record_event_logs, **options)
        self.n_processes = n_processes
        self.render = check_flag("render", render)

    @property
    def n_workers(self) -> int:
        return min(self.n_processes, self.n_episodes)

    def _check_transferable(self, factory: EnvFactory, agent: Any) -> None:
        if process_context(self.start_method).get_start_method() == "fork":
            return  # forked workers inherit env and agent as they are
        for what, obj, fix in (
                ("env", factory, "a Gymnasium id, 'module:callable', or a module-level factory"),
                ("agent", agent, "a policy name or import path, or a module-level policy class")):
            try:
                pickle.dumps(obj)
            except Exception as exc:
                raise ConfigError(f"ParallelRunner: the {what} cannot be sent to worker processes "
                                  f"({type(exc).__name__}: {exc}); pass {fix}, or use "
                                  "SequentialRunner") from None

    def _worker_processes(self, plan: RunPlan, session: RunSession) -> list[ProcessSpec]:
        n = plan.seeds.n_episodes
        context = session.context
        handout = Handout(context.Value("q", 0), context.RawArray("h", n),
                          context.RawArray("q", [-1] * (self.n_workers + REPLACEMENTS)))
        settings = self._episode_settings(plan)
        # what a replacement of a dead worker is handed, with its own id (no rendering)
        self._template = WorkerSpec(-1, session.endpoints.ingress, plan.env, plan.agent, n,
                                    handout, settings, session.go_event, self.timeouts.start,
                                    self.timeouts.stall, self.timeouts.finish)
        rendering = dataclasses.replace(settings, render=True)  # worker 0's, with render
        return [ProcessSpec(f"eventroll-worker-{worker}", worker_main, (dataclasses.replace(
                    self._template, worker=worker,
                    settings=rendering if self.render and worker == 0 else settings),))
                for worker in range(self.n_workers)]

    def _execute(self, plan: RunPlan, session: RunSession, probe: gym.Env,
                 policy: Policy) -> list[str]:
        handout = self._template.handout

        def stop() -> None:  # at the first SIGINT/SIGTERM: no new episode starts
            handout.counter.value = plan.seeds.n_episodes

        plan.interruption.on_stop(stop)
        supervisor = Supervisor(session, handout, self._template, plan.interruption)
        try:
            while True:
                supervisor.check()
                if not supervisor.running:
                    break
                progress = session.progress(SUPERVISE_INTERVAL, supervisor.sentinels())
                if progress is not None:
                    self.progress.update(progress["episode_ends"], progress["steps"])
                session.check()
        except BaseException:  # the run cannot go on (the hub died, a second Ctrl-C)
            reap(list(supervisor.workers.values()), 0.0)
            raise
        reap(list(supervisor.workers.values()), self.timeouts.reap)
        return supervisor.errors

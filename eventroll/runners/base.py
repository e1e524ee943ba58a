"""What the sequential and parallel runners share: one run from start to end."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import gymnasium as gym
import msgpack
import numpy as np
import zmq
from omegaconf import OmegaConf

from eventroll import __version__
from eventroll.environments import EnvFactory, env_factory
from eventroll.errors import ConfigError, one_line
from eventroll.events import RunEnd, RunStart, is_int
from eventroll.logs import RunLog
from eventroll.policies import Policy, build_policy, check_gives_logits
from eventroll.recorders.eventlog import FILE_NAME as EVENT_LOG
from eventroll.recording import (STATS, RecordingOptions, default_run_dir, prepare_run_dir,
                                 recorder_specs)
from eventroll.trajectories.flat import FILE_NAME as TRAJECTORIES
from eventroll.remote import RemoteLive
from eventroll.runners.interruption import Interruption
from eventroll.runners.session import ProcessSpec, RecorderSpec, RunSession, Timeouts
from eventroll.runners.worker import EpisodeSettings
from eventroll.seeding import Seeds, resolve_seeds, seeds_record
from eventroll.spaces import describe_space


class Progress(Protocol):
    """Receives a run's progress (the command line shows it as a bar)."""

    def start(self, total: int) -> None: ...

    def update(self, episodes_done: int, steps: int) -> None: ...

    def stop(self) -> None: ...


class NoProgress:
    """The progress of a run that nobody watches."""

    def start(self, total: int) -> None:
        pass

    def update(self, episodes_done: int, steps: int) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class RunResult:
    """The outcome of one ``run_with`` call."""

    run_id: str
    run_dir: str
    status: str
    n_episodes: int
    episodes: int
    aborted: int
    steps: int
    wall_time: float
    errors: list[str] = field(default_factory=list)
    signal: int | None = None  # what interrupted the run (status "interrupted")

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def exit_code(self) -> int:
        """0 completed, 1 failed, 128 + the signal when interrupted (130: Ctrl-C)."""
        if self.status == "interrupted" and self.signal is not None:
            return 128 + self.signal
        return 0 if self.ok else 1

    @property
    def event_log(self) -> str:
        return os.path.join(self.run_dir, EVENT_LOG)

    @property
    def trajectories(self) -> str:
        return os.path.join(self.run_dir, TRAJECTORIES)

    @property
    def stats(self) -> str:
        return os.path.join(self.run_dir, STATS)


def versions() -> dict[str, str]:
    return {"eventroll": __version__, "python": platform.python_version(),
            "gymnasium": gym.__version__, "numpy": np.__version__, "pyzmq": zmq.__version__,
            "msgpack": ".".join(map(str, msgpack.version))}


def _make_probe(factory: EnvFactory, render_mode: str | None) -> gym.Env:
    """Build the env once here, so a bad env fails once, in one line, before any worker."""
    try:
        return factory(render_mode=render_mode)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot create env {factory.label!r} with kwargs {factory.kwargs}: "
                          f"{type(exc).__name__}: {one_line(exc)}") from None


def _env_source(factory: EnvFactory) -> str:
    """How the env was given: by ``name`` or as a ``factory`` (both rebuilt from ``run.start``
    by :mod:`eventroll.reexecution`), or as an ``object`` (which cannot be)."""
    if factory.env is not None:
        return "object"
    return "factory" if factory.factory is not None else "name"


@dataclass
class RunPlan:
    """Everything a runner decided before the first episode."""

    run_id: str
    run_dir: str
    env: EnvFactory
    agent: Any
    seeds: Seeds
    observation_space: gym.Space
    action_space: gym.Space
    log: Any
    interruption: Interruption = field(default_factory=Interruption)


def check_flag(key: str, value: Any) -> bool:
    """``value`` of the runner key ``key``, which must be true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"runner.{key} must be true or false, got {value!r}")
    return value


class RolloutRunner:
    """Runs a policy in an env for ``n_episodes`` episodes and records every event.

    Subclasses say how episodes are executed (:meth:`_execute`); this class plans
    the run, starts the bus and the recorders, and summarises the outcome.
    ``run_with`` can be called any number of times; each call is a new run in a
    new run directory.
    """

    runner_name = "base"
    uses_worker_processes = False
    render = False  # runner.render: show episodes in a window (each runner says which)

    def __init__(self, n_episodes: int = 100, max_episode_steps: int | None = None,
                 deterministic: bool = False, record_trajectory: bool = True,
                 record_event_logs: bool = True, *, recording: Any = None,
                 run_dir: str | None = None,
                 env_base_seed: int | None = None, agent_base_seed: int | None = None,
                 explicit_env_seeds: list[int] | None = None,
                 explicit_agent_seeds: list[int] | None = None,
                 batch_steps: int = 64, flush_interval: float = 0.05, retries: int = 0,
                 live: Any = None, timeouts: Timeouts = Timeouts(),
                 progress: Progress | None = None,
                 console: TextIO | None = sys.stderr, start_method: str | None = None) -> None:
        if not isinstance(n_episodes, int) or isinstance(n_episodes, bool) or n_episodes < 1:
            raise ConfigError(f"runner.n_episodes must be a positive integer, got {n_episodes!r}")
        if max_episode_steps is not None and not (is_int(max_episode_steps)
                                                  and max_episode_steps >= 0):
            raise ConfigError(f"runner.max_episode_steps must be an integer >= 0 (0 or null: the "
                              f"env's own limit), got {max_episode_steps!r}")
        if batch_steps < 1:
            raise ConfigError(f"batch_steps must be at least 1, got {batch_steps}")
        for key, flag in (("deterministic", deterministic), ("record_trajectory", record_trajectory),
                          ("record_event_logs", record_event_logs)):
            check_flag(key, flag)
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ConfigError(f"runner.retries must be an integer >= 0 (times a failed episode "
                              f"is played again), got {retries!r}")
        self.n_episodes = n_episodes
        self.max_episode_steps = int(max_episode_steps) if max_episode_steps else None
        self.deterministic = deterministic
        self.record_trajectory = record_trajectory
        self.record_event_logs = record_event_logs
        base = recording if isinstance(recording, RecordingOptions) else \
            RecordingOptions.from_config(recording)
        self.recording = dataclasses.replace(base, event_log=record_event_logs,
                                             trajectory=record_trajectory)
        self.run_dir = run_dir
        self.seeding = dict(env_base_seed=env_base_seed, agent_base_seed=agent_base_seed,
                            explicit_env_seeds=explicit_env_seeds,
                            explicit_agent_seeds=explicit_agent_seeds)
        self.batch_steps = batch_steps
        self.flush_interval = flush_interval
        self.retries = retries
        self.remote = live if isinstance(live, RemoteLive) else RemoteLive.from_config(live)
        self.timeouts = timeouts
        self.progress: Progress = progress or NoProgress()
        self.console = console
        self.start_method = start_method

    # -- the parts subclasses provide ------------------------------------------------
    @property
    def n_workers(self) -> int:
        return 1

    def _render_mode(self) -> str | None:
        """The render mode of the env built in this process (the probe)."""
        return None

    def _check_render(self, probe: gym.Env, label: str) -> None:
        """With ``render``, fail before the run if the env cannot render to a window."""
        modes = probe.metadata.get("render_modes", [])
        if self.render and "human" not in modes:
            raise ConfigError(f"runner.render=true, but env {label!r} has no 'human' render mode "
                              f"(its render_modes: {list(modes)}); set runner.render=false")

    def _episode_settings(self, plan: RunPlan, render: bool = False) -> EpisodeSettings:
        return EpisodeSettings(plan.seeds.env, plan.seeds.agent, self.deterministic, render,
                               self.batch_steps, self.flush_interval, self.recording.logits,
                               self.retries, self.recording.pack_episodes)

    def _worker_processes(self, plan: RunPlan, session: RunSession) -> list[ProcessSpec]:
        """The worker processes to start with the session (none: episodes run here)."""
        return []

    def _execute(self, plan: RunPlan, session: RunSession, probe: gym.Env,
                 policy: Policy) -> list[str]:
        """Run every episode of the plan once the session has started; return errors."""
        raise NotImplementedError

    # -- one run ----------------------------------------------------------------------
    def run_with(self, env: Any, wrappers: Any = None, agent: Any = None, *,
                 run_dir: str | None = None, config: dict[str, Any] | None = None) -> RunResult:
        """Run the rollout of ``agent`` in ``env`` (with ``wrappers``) and record it.

        ``env``: a Gymnasium id, ``module:callable``, a mapping ``{name, **kwargs}``,
        a factory or an env object. ``agent``: ``None`` or ``"random"`` for the
        random policy, an import path, a mapping ``{name, **kwargs}``, a policy
        class or a policy object.
        """
        factory = env_factory(env, wrappers, self.max_episode_steps)
        seeds = resolve_seeds(self.n_episodes, **self.seeding)
        probe = _make_probe(factory, self._render_mode())
        owns_probe = factory.env is None
        try:
            self._check_render(probe, factory.label)
            policy = build_policy(agent, probe.observation_space, probe.action_space)
            if self.recording.logits:
                check_gives_logits(policy, "recording.logits=true", "recording.logits=false")
            if self.uses_worker_processes:
                self._check_transferable(factory, agent)
                if owns_probe:
                    probe.close()  # workers build their own; close before forking them
            path = prepare_run_dir(run_dir or self.run_dir or default_run_dir())
            run_log = RunLog(os.path.join(path, "run.jsonl"), console=self.console)
            try:
                plan = RunPlan(uuid.uuid4().hex, path, factory, agent, seeds,
                               probe.observation_space, probe.action_space, run_log.log)
                self._write_config(plan, config)
                return self._run(plan, probe, policy)
            finally:
                run_log.close()
        finally:
            if owns_probe:
                probe.close()

    def _check_transferable(self, factory: EnvFactory, agent: Any) -> None:
        """Parallel runners check here that env and agent can reach their workers."""

    def _recorders(self, plan: RunPlan) -> list[RecorderSpec]:
        return recorder_specs(self.recording, plan.run_dir, plan.run_id, plan.env.label)

    def _run(self, plan: RunPlan, probe: gym.Env, policy: Policy) -> RunResult:
        log = plan.log
        for warning in plan.seeds.warnings:
            log.warning("seeding", message=warning)
        log.info("run.start", run_id=plan.run_id, run_dir=plan.run_dir, runner=self.runner_name,
                 env=plan.env.label, n_episodes=plan.seeds.n_episodes, n_workers=self.n_workers)
        started = time.perf_counter()
        if self.remote is not None:
            log.info("live.listen", address=self.remote.listen,
                     curve=self.remote.server_key is not None)
        with plan.interruption, RunSession(self._recorders(plan), timeouts=self.timeouts,
                                           start_method=self.start_method,
                                           remote=self.remote) as session:
            session.start(self._worker_processes(plan, session))
            session.track_episodes(plan.seeds.n_episodes)
            session.announce(plan.run_dir, plan.run_id)
            session.emit(self._run_start(plan))
            session.go()
            self.progress.start(plan.seeds.n_episodes)
            try:
                errors = self._execute(plan, session, probe, policy)
                status = session.status()
                self.progress.update(status["episode_ends"], status["steps"])
            finally:
                self.progress.stop()
            result = self._result(plan, status, errors + status["errors"],
                                  time.perf_counter() - started)
            report = session.finish(RunEnd(
                run_id=plan.run_id, status=result.status, episodes=result.episodes,
                aborted=result.aborted, steps=result.steps, wall_time=result.wall_time,
                errors=result.errors))
        # the hub's error list only grows: what it added since the status above is new
        result.errors += report["errors"][len(status["errors"]):]
        for name, recorder in report["durable"].items():
            result.errors += [f"{name}: {e}" for e in recorder.get("errors", [])]
        if result.errors and result.status == "completed":
            result.status = "failed"
        result.signal = plan.interruption.signal
        log.info("run.end", status=result.status, episodes=result.episodes, aborted=result.aborted,
                 steps=result.steps, wall_time=round(result.wall_time, 3),
                 steps_per_s=round(result.steps / max(result.wall_time, 1e-9), 1))
        for error in result.errors:
            log.error("run.error", message=error)
        return result

    def _result(self, plan: RunPlan, status: dict[str, Any], errors: list[str],
                wall_time: float) -> RunResult:
        n = plan.seeds.n_episodes
        aborted = status["aborted"]
        completed = status["episode_ends"] - aborted
        missing = n - status["episode_ends"]
        if aborted:
            errors = errors + [f"{aborted} of {n} episodes aborted (their worker.error events "
                               "hold the errors and tracebacks)"]
        interruption = plan.interruption
        if interruption.requested:
            errors = errors + [f"interrupted by {interruption.name} after {status['episode_ends']} "
                               f"of {n} episodes: the episodes being played ended, no new one "
                               "started, and every artifact was closed"]
        elif missing > 0:
            errors = errors + [f"{missing} of {n} episodes never ended"]
        ok = completed == n and not errors
        outcome = "interrupted" if interruption.requested else "completed" if ok else "failed"
        return RunResult(plan.run_id, plan.run_dir, outcome, n, completed, aborted,
                         status["steps"], wall_time, errors)

    def _run_start(self, plan: RunPlan) -> RunStart:
        return RunStart(run_id=plan.run_id, runner=self.runner_name,
                        n_episodes=plan.seeds.n_episodes, n_workers=self.n_workers,
                        env=plan.env.label, env_kwargs=dict(plan.env.kwargs),
                        observation_space=describe_space(plan.observation_space),
                        action_space=describe_space(plan.action_space),
                        config=self._config(plan), versions=versions(),
                        env_seeds=seeds_record(plan.seeds.env),
                        agent_seeds=seeds_record(plan.seeds.agent))

    def _config(self, plan: RunPlan) -> dict[str, Any]:
        runner = {"type": self.runner_name, "n_episodes": self.n_episodes,
                  "max_episode_steps": self.max_episode_steps, "deterministic": self.deterministic,
                  "record_trajectory": self.record_trajectory,
                  "record_event_logs": self.record_event_logs, "retries": self.retries}
        agent = plan.agent if isinstance(plan.agent, (str, dict)) or plan.agent is None else repr(plan.agent)
        recording = dataclasses.asdict(self.recording)
        for key in ("event_log", "trajectory"):
            del recording[key]  # runner.record_event_logs / record_trajectory
        return {"runner": runner, "env": {"name": plan.env.label, **plan.env.kwargs},
                "recording": recording,
                "wrappers": {path: kwargs for path, kwargs in plan.env.wrappers},
                "policy": agent if agent is not None else "random",
                "env_source": _env_source(plan.env),
                "seeding": self._seeding_config(plan.seeds)}

    def _seeding_config(self, seeds: Seeds) -> dict[str, Any]:
        return {"env_base_seed": seeds.env_base_seed, "agent_base_seed": seeds.agent_base_seed,
                "explicit_env_seeds": self.seeding["explicit_env_seeds"],
                "explicit_agent_seeds": self.seeding["explicit_agent_seeds"]}

    def _write_config(self, plan: RunPlan, config: dict[str, Any] | None) -> None:
        """``config.yaml``: the given (command line) config or our own, with resolved seeds."""
        resolved = dict(config) if config is not None else self._config(plan)
        resolved["seeding"] = {**resolved.get("seeding", {}), **self._seeding_config(plan.seeds)}
        with open(os.path.join(plan.run_dir, "config.yaml"), "w", encoding="utf-8") as file:
            file.write(OmegaConf.to_yaml(OmegaConf.create(resolved)))

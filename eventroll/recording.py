"""What a run records, and the recorder processes that record it."""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from eventroll.errors import ConfigError
from eventroll.recorders.base import RecorderSpec
from eventroll.recorders.eventlog import FILE_NAME as EVENT_LOG, EventLogRecorder
from eventroll.recorders.stats import StatsRecorder
from eventroll.recorders.trajectories import LAYOUTS, TrajectoryRecorder
from eventroll.stats import FILE_NAME as STATS
from eventroll.trajectories.flat import FILE_NAME as TRAJECTORIES

MINARI_DIR = "minari"


@dataclass(frozen=True)
class RecordingOptions:
    """The artifacts of a run.

    ``event_log``: ``events.msgpack``. ``trajectory``: HDF5 trajectories, in the
    ``flat`` layout (``trajectories.h5``) or the ``minari`` layout (a dataset
    under ``minari/``, id ``dataset_id``, by default ``eventroll/<env>-v0``);
    ``next_observations``, ``infos`` and ``logits`` add those fields (``logits``
    asks the policy for ``compute_action_with_logits``). ``stats``:
    ``stats.json``, with the custom statistics ``custom_stats`` (name -> spec).
    ``pack_episodes``: a source sends the plain whole episodes of a message as one
    record (:mod:`eventroll.packing`), which the recorders take at a fraction of the
    cost of three records an episode; false: every event its own record, for readers
    of the log that do not unpack them.
    """

    event_log: bool = True
    trajectory: bool = True
    layout: str = "flat"
    dataset_id: str | None = None
    next_observations: bool = False
    infos: bool = False
    logits: bool = False
    stats: bool = True
    custom_stats: Mapping[str, Any] = field(default_factory=dict)
    pack_episodes: bool = True

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"recording.layout must be one of {', '.join(LAYOUTS)}, "
                              f"got {self.layout!r}")
        if not isinstance(self.pack_episodes, bool):
            raise ConfigError(f"recording.pack_episodes must be true or false, got "
                              f"{self.pack_episodes!r}")

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
    """One durable recorder per artifact the options ask for (which of them share a process:
    :func:`eventroll.recorders.base.process_groups`)."""
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
            "next_observations": options.next_observations, "infos": options.infos,
            "logits": options.logits}))
    if options.stats:
        specs.append(RecorderSpec("stats", StatsRecorder, {
            "path": os.path.join(run_dir, STATS),
            "specs": dict(options.custom_stats)}))
    return specs


def default_run_dir(base: str = "outputs") -> str:
    """``outputs/DATE/TIME`` as Hydra names it, made unique within the second."""
    now = datetime.now()
    path = os.path.join(base, now.strftime("%Y-%m-%d"), now.strftime("%H-%M-%S"))
    candidate, n = path, 0
    while os.path.exists(candidate):
        n += 1
        candidate = f"{path}_{n}"
    return candidate


def prepare_run_dir(run_dir: str | os.PathLike[str]) -> str:
    path = os.path.abspath(os.fspath(run_dir))
    if os.path.exists(os.path.join(path, EVENT_LOG)):
        raise ConfigError(f"run directory {path} already holds a run ({EVENT_LOG}); "
                          "choose a new directory (hydra.run.dir=...)")
    os.makedirs(path, exist_ok=True)
    return path


class Recording:
    """Records the events your own code publishes (a :class:`RolloutGenerator`, say) with
    the same recorders as a run, into a run directory.

    ::

        with Recording("runs/gen", env.observation_space, env.action_space,
                       env="CartPole-v1") as recording:
            generator = RolloutGenerator(env, publisher=recording.publisher)
            generator.rollout(policy, 1000)
        recording.report  # what each recorder wrote, and any errors

    The recording is one run with one source (worker 0). Episodes still running
    when the ``with`` block ends are not ended; the recorders report them.
    """

    def __init__(self, run_dir: str | os.PathLike[str], observation_space: Any,
                 action_space: Any, *, env: str = "", options: Any = None,
                 timeouts: Any = None) -> None:
        from eventroll.runners.session import Timeouts

        self.run_dir = prepare_run_dir(run_dir)
        self.run_id = uuid.uuid4().hex
        self.options = options if isinstance(options, RecordingOptions) else \
            RecordingOptions.from_config(options)
        self._spaces = (observation_space, action_space)
        self._env = env
        self._timeouts = timeouts or Timeouts()
        self._session: Any = None
        self.publisher: Any = None
        self.report: dict[str, Any] = {}

    def __enter__(self) -> "Recording":
        from eventroll.events import RunStart, WorkerStart
        from eventroll.runners.session import RunSession
        from eventroll.spaces import describe_space

        specs = recorder_specs(self.options, self.run_dir, self.run_id, self._env)
        self._session = RunSession(specs, timeouts=self._timeouts)
        self._started = time.perf_counter()
        try:
            self._session.start()
            self._session.emit(RunStart(
                run_id=self.run_id, runner="recording", n_episodes=0, n_workers=1,
                env=self._env, observation_space=describe_space(self._spaces[0]),
                action_space=describe_space(self._spaces[1])))
            self._session.go()
            self.publisher = self._session.source(0)
            self.publisher.add(WorkerStart(pid=os.getpid()))
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        from eventroll.events import RunEnd, WorkerEnd

        try:
            status = self._session.status()
            ended = status["episode_ends"]
            self.publisher.finish(WorkerEnd(pid=os.getpid(), episodes=ended,
                                            last_wseq=self.publisher.next_wseq))
            self.report = self._session.finish(RunEnd(
                run_id=self.run_id, status="completed" if exc_type is None else "failed",
                episodes=ended - status["aborted"], aborted=status["aborted"],
                steps=status["steps"], wall_time=time.perf_counter() - self._started))
        finally:
            self._close()

    def _close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        self._session.close()


def replay_run(run_dir: str, out_dir: str, *, layout: str = "flat",
               parts: int | None = None) -> dict[str, Any]:
    """Rebuild a run's trajectories and statistics into ``out_dir`` from its event log
    alone, with the recording options the run had (from its ``run.start``); each event
    is decoded once and handed to both recorders. With ``parts`` (default: one a core, for
    a large log and a caller without threads: :func:`~eventroll.replay_parts.default_parts`), the log is replayed in that many
    processes (:mod:`eventroll.replay_parts`), with the same result. Returns the recorders'
    reports, with the steps and events read, the parts and the wall time."""
    from eventroll.recorders.eventlog import event_log_path, read_events
    from eventroll.replay_parts import default_parts, replay_in_parts, replayed

    log = event_log_path(run_dir)
    started = time.perf_counter()
    head = read_events(log)
    first = next(head, None)
    head.close()
    if first is None or first.KIND != "run.start":
        raise ConfigError(f"{log} does not begin with run.start; it cannot be replayed")
    recorded = dict(first.config.get("recording") or {})
    options = RecordingOptions.from_config(recorded, event_log=False, trajectory=True,
                                           stats=True, layout=layout)
    os.makedirs(out_dir, exist_ok=True)
    taken = [name for name in (TRAJECTORIES, MINARI_DIR, STATS)
             if os.path.exists(os.path.join(out_dir, name))]
    if taken:
        raise ConfigError(f"{out_dir} already holds {', '.join(taken)}; replay into another "
                          "directory or remove them")
    specs = recorder_specs(options, out_dir, first.run_id, first.env)
    result = replay_in_parts(log, specs, default_parts(log) if parts is None else parts)
    if result is None:
        recorders = {spec.name: spec.factory(**spec.kwargs) for spec in specs}
        try:
            count, steps = replayed(tuple(recorders.values()), log)
        finally:
            reports = {name: recorder.close() for name, recorder in recorders.items()}
        result = {"recorders": reports, "events": count, "steps": steps, "parts": 1}
    return {**result, "wall_time": time.perf_counter() - started}

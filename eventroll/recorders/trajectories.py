"""The trajectory recorder: whole episodes into ``trajectories.h5`` (or a Minari dataset)."""

from __future__ import annotations

from typing import Any

from eventroll import events
from eventroll.errors import ConfigError, EventError
from eventroll.recorders.base import Rejections
from eventroll.spaces import space_from_description
from eventroll.trajectories.flat import BLOCK_ROWS, FLUSH_INTERVAL, FlatWriter
from eventroll.episodes import Episode
from eventroll.trajectories.record import PlainEpisode, TrajectoryCollector

LAYOUTS = ("flat", "minari")


class TrajectoryRecorder:
    """Collects each episode from its events and hands it, whole, to a layout writer.

    The writer is created at ``run.start``, which carries the spaces. ``layout``
    is ``flat`` (``path`` is the HDF5 file) or ``minari`` (``path`` is the
    datasets root, as ``MINARI_DATASETS_PATH``; ``dataset_id`` the dataset's id).
    The flat layout takes the steps' arrays undecoded (it joins their bytes), plain
    records as their maps (:meth:`handle_plain`) and packed episodes whole; of run.start
    it reads the seeds. An episode whose arrays do not fit the spaces is left out, and
    the report says which and why.
    """

    def __init__(self, path: str, *, layout: str = "flat", dataset_id: str | None = None,
                 next_observations: bool = False, infos: bool = False, logits: bool = False,
                 block_rows: int = BLOCK_ROWS, flush_interval: float = FLUSH_INTERVAL) -> None:
        if layout not in LAYOUTS:
            raise ConfigError(f"trajectory layout {layout!r} is unknown; choose one of {LAYOUTS}")
        self.path = path
        self._layout = layout
        self._options = dict(next_observations=next_observations, infos=infos, logits=logits,
                             block_rows=block_rows, flush_interval=flush_interval)
        self._dataset_id = dataset_id
        self.array_kinds = frozenset({"run.start"}) if layout == "flat" else None
        self.takes_plain = self.takes_packed = layout == "flat"
        self._collector = TrajectoryCollector()
        self._writer: Any = None
        self._left_out = Rejections()

    def handle(self, event: events.Event) -> None:
        kind = event.KIND
        if kind == "run.start":
            self._writer = self._open(event)
        elif kind == "episodes":  # whole episodes, packed (flat layout only: takes_packed)
            self._collector.ended(event)
            self._write(event)
            return
        self._collect(self._collector.ended, event)

    def handle_plain(self, record: dict) -> None:
        """Take a plain record (flat layout only: :attr:`takes_plain`); an episode all of
        whose records came plain is written from their maps."""
        self._collect(self._collector.plain, record)

    def prime(self, item: events.Event | dict) -> None:
        """Take a record from before the part of a log this recorder builds (a replay in
        parts: :mod:`eventroll.replay_parts`), to bring the episodes still open where the
        part begins up to date: an episode it ends, and one it leaves out, are the earlier
        part's."""
        collect = self._collector.plain if type(item) is dict else self._collector.ended
        try:
            collect(item)
        except EventError:
            pass

    @property
    def state(self) -> list[list]:
        """The episodes open (each with its length so far) and those being left out, as
        plain data: two recorders whose states are equal take what follows alike."""
        return self._collector.state

    def _collect(self, collect: Any, item: events.Event | dict) -> None:
        """Hand ``item`` to the collector (``collect``); write the episode it ends."""
        try:
            episode = collect(item)
        except EventError as exc:  # its steps do not fit together: left out, counted
            self._left_out.add(str(exc))
            return
        if episode is not None:
            self._write(episode)

    def _write(self, episode: Episode | PlainEpisode | events.Episodes) -> None:
        if self._writer is None:
            raise ConfigError("an episode ended before run.start: cannot record trajectories "
                              "without the run's spaces")
        try:
            if type(episode) is events.Episodes:
                self._writer.add_packed(episode)
            elif type(episode) is PlainEpisode:
                self._writer.add_plain(episode)
            else:
                self._writer.add_episode(episode)
        except EventError as exc:  # its arrays do not fit the spaces: left out, counted
            self._left_out.add(str(exc))

    def _open(self, start: events.RunStart) -> Any:
        observation_space = space_from_description(start.observation_space)
        action_space = space_from_description(start.action_space)
        if self._layout == "minari":
            from eventroll.trajectories.minari import MinariWriter, run_step_limit

            return MinariWriter(self.path, observation_space, action_space,
                                dataset_id=self._dataset_id, env=start.env,
                                env_kwargs=start.env_kwargs, run_id=start.run_id,
                                max_episode_steps=run_step_limit(start),
                                **self._options)
        return FlatWriter(self.path, observation_space, action_space, run_id=start.run_id,
                          env=start.env, **self._options)

    def tick(self) -> None:
        if self._writer is not None:
            self._writer.tick()

    def close(self) -> dict[str, Any]:
        return report(self.path, self.close_part())

    def close_part(self) -> dict[str, Any]:
        """Close the writer; what :meth:`close` reports, as plain data that :func:`join`
        joins with a later part's (the writer's report, what was left out, the episodes
        still open)."""
        return {"writer": None if self._writer is None else self._writer.close(),
                "left_out": self._left_out.first, "left_out_count": self._left_out.count,
                "in_flight": self._collector.in_flight}


def join(first: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two parts' :meth:`~TrajectoryRecorder.close_part`, the later's file appended to the
    first's: as one recorder that took both parts would have closed."""
    writer = first["writer"]
    if writer is not None and later["writer"] is not None:
        writer = {**writer, "episodes": writer["episodes"] + later["writer"]["episodes"],
                  "steps": writer["steps"] + later["writer"]["steps"]}
    left_out = Rejections()
    for message in first["left_out"] + later["left_out"]:
        left_out.add(message)
    return {"writer": writer, "left_out": left_out.first,
            "left_out_count": first["left_out_count"] + later["left_out_count"],
            "in_flight": later["in_flight"]}


def report(path: str, closed: dict[str, Any]) -> dict[str, Any]:
    """What a trajectory recorder reports at its end, from its :meth:`~TrajectoryRecorder.close_part`."""
    if closed["writer"] is None:
        return {"path": path, "episodes": 0, "steps": 0,
                "errors": ["no run.start arrived: nothing was recorded"]}
    result = dict(closed["writer"])
    errors = [f"left out of {path}, {message}" for message in closed["left_out"]]
    if closed["left_out_count"] > len(closed["left_out"]):
        errors.append(f"{closed['left_out_count']} episodes left out of {path} in all")
    unfinished = closed["in_flight"]
    if unfinished:
        errors.append(f"episodes {unfinished[:10]} never ended; they are not in "
                      f"{path} (the event log holds their steps)")
    if errors:
        result["errors"] = errors
    return result

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
    The flat layout takes the steps' arrays undecoded (it joins their bytes), and
    plain records as their maps (:meth:`handle_plain`); of run.start it reads the
    seeds. An episode whose arrays do not fit the spaces is left out, and the report
    says which and why.
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
        self.takes_plain = layout == "flat"
        self._collector = TrajectoryCollector()
        self._writer: Any = None
        self._left_out = Rejections()

    def handle(self, event: events.Event) -> None:
        if event.KIND == "run.start":
            self._writer = self._open(event)
        self._collect(self._collector.ended, event)

    def handle_plain(self, record: dict) -> None:
        """Take a plain record (flat layout only: :attr:`takes_plain`); an episode all of
        whose records came plain is written from their maps."""
        self._collect(self._collector.plain, record)

    def _collect(self, collect: Any, item: events.Event | dict) -> None:
        """Hand ``item`` to the collector (``collect``); write the episode it ends."""
        try:
            episode = collect(item)
        except EventError as exc:  # its steps do not fit together: left out, counted
            self._left_out.add(str(exc))
            return
        if episode is not None:
            self._write(episode)

    def _write(self, episode: Episode | PlainEpisode) -> None:
        if self._writer is None:
            raise ConfigError("an episode ended before run.start: cannot record trajectories "
                              "without the run's spaces")
        try:
            if type(episode) is PlainEpisode:
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
        if self._writer is None:
            return {"path": self.path, "episodes": 0, "steps": 0,
                    "errors": ["no run.start arrived: nothing was recorded"]}
        report = self._writer.close()
        errors = [f"left out of {self.path}, {message}" for message in self._left_out.first]
        if self._left_out.count > len(self._left_out.first):
            errors.append(f"{self._left_out.count} episodes left out of {self.path} in all")
        unfinished = self._collector.in_flight
        if unfinished:
            errors.append(f"episodes {unfinished[:10]} never ended; they are not in "
                          f"{self.path} (the event log holds their steps)")
        if errors:
            report["errors"] = errors
        return report

"""Re-execution: a recorded episode's actions, stepped again in its env, compared step by step.

The env is rebuilt as the run built it, from the ``run.start`` event (env name and
kwargs, wrappers, ``runner.max_episode_steps``), reset with the episode's recorded
env seed and stepped with the recorded actions. Each observation (exactly, nested
Dict/Tuple observations included), reward, terminated and truncated flag is
compared with the recorded one; the first step where any differs is reported.
Aborted or unfinished episodes are re-executed up to their last recorded step.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from eventroll.environments import EnvFactory, env_factory
from eventroll.episodes import Episode, episodes_as_they_end, is_text_column
from eventroll.errors import ConfigError, EventrollError, one_line
from eventroll.events import EpisodeEnd, EpisodeStart, Event, RunStart, StepBatch
from eventroll.recorders.eventlog import event_log_path, read_events

SHORT = 60  # characters of a value shown in a report


@dataclass
class Recording:
    """A run's ``run.start`` event and the recorded episodes asked for, by index."""

    path: str
    start: RunStart
    episodes: dict[int, Episode]


def _selected(events: Iterable[Event], wanted: set[int] | None) -> Iterator[Event]:
    """The events but those of episodes not ``wanted`` (None: all are)."""
    for event in events:
        if wanted is None or not isinstance(event, (EpisodeStart, StepBatch, EpisodeEnd)) \
                or event.episode in wanted:
            yield event


def load_recording(run_dir_or_event_log: str | os.PathLike[str],
                   episodes: Iterable[int] | None = None) -> Recording:
    """Read ``run.start`` and the given episodes (all when None) from a run's event log."""
    path = event_log_path(run_dir_or_event_log)
    start, recorded = recorded_episodes(path, episodes)
    return Recording(path, start, dict(sorted((e.index, e) for e in recorded)))


def recorded_episodes(path: str, episodes: Iterable[int] | None = None
                      ) -> tuple[RunStart, Generator[Episode, None, None]]:
    """A log's ``run.start`` (its first record) and an iterator over the given episodes (all
    when None), each as soon as it has ended in the log (only the episodes in flight are
    held), then those that never ended. An episode asked for outside the run is refused at
    once; one that is not in the log, once the log is read (:class:`ConfigError`)."""
    wanted = None if episodes is None else {int(e) for e in episodes}
    events = _selected(read_events(path), wanted)
    start = next(events, None)
    if not isinstance(start, RunStart):
        events.close()
        raise EventrollError(f"{path} does not begin with run.start: the env cannot be rebuilt")
    outside = sorted(i for i in wanted or () if not 0 <= i < start.n_episodes)
    if outside:
        events.close()
        raise _missing(path, outside[0], start.n_episodes)
    return start, _episodes(path, events, wanted, start.n_episodes)


def _episodes(path: str, events: Iterator[Event], wanted: set[int] | None,
              n_episodes: int) -> Generator[Episode, None, None]:
    found: set[int] = set()  # of the episodes asked for
    try:
        for episode in episodes_as_they_end(events):
            if wanted is not None:
                found.add(episode.index)
            yield episode
    except ValueError as exc:  # steps missing within an episode
        raise EventrollError(f"{path}: {exc}") from None
    missing = sorted((wanted or set()) - found)
    if missing:
        raise _missing(path, missing[0], n_episodes)


def _missing(path: str, index: int, n_episodes: int) -> ConfigError:
    if 0 <= index < n_episodes:
        return ConfigError(f"episode {index} did not start in {path} (it failed at its reset, "
                           "or the log ends before it); choose another --episode")
    return ConfigError(f"the run in {path} has no episode {index}; choose one of "
                       f"0..{n_episodes - 1}")


def recorded_env(start: RunStart) -> EnvFactory:
    """A factory of the run's env, wrappers and time limit as ``run.start`` records them."""
    config = start.config or {}
    if config.get("env_source") == "object":
        raise ConfigError(f"the run's env ({start.env}) was an env object passed to run_with; it "
                          "cannot be rebuilt from the event log. Re-execute runs whose env is "
                          "given by name, 'module:callable' or a module-level factory")
    runner = config.get("runner") or {}
    try:
        return env_factory({"name": start.env, **(start.env_kwargs or {})},
                           config.get("wrappers"), runner.get("max_episode_steps"))
    except ConfigError as exc:
        raise ConfigError(f"cannot rebuild the run's env: {exc}") from None


def build_env(start: RunStart, render_mode: str | None = None) -> gym.Env:
    """The run's env, built anew (``render_mode`` as given)."""
    factory = recorded_env(start)
    try:
        return factory(render_mode=render_mode)
    except EventrollError as exc:
        raise ConfigError(f"cannot rebuild the run's env: {exc}") from None
    except Exception as exc:
        raise ConfigError(f"cannot rebuild the run's env {start.env!r} with kwargs "
                          f"{start.env_kwargs}: {type(exc).__name__}: {one_line(exc)}") from None



def column_rows(column: Any) -> int | None:
    """How many steps a recorded column holds (nested maps and lists of columns: each the
    same), or None if it is no column."""
    if is_text_column(column):
        return len(column)
    if isinstance(column, (dict, list)):  # Dict, Tuple
        rows = {column_rows(item) for item in (column.values() if isinstance(column, dict)
                                               else column)}
        return rows.pop() if len(rows) == 1 else None
    if isinstance(column, np.ndarray) and column.ndim:
        return column.shape[0]
    return None


def at(column: Any, t: int) -> Any:
    """Step ``t`` of a recorded column (nested maps and lists of columns: Dict, Tuple)."""
    if isinstance(column, dict):
        return {key: at(value, t) for key, value in column.items()}
    if isinstance(column, list):
        return tuple(at(item, t) for item in column)
    return column[t]


def shorten(value: Any, width: int = SHORT) -> str:
    """A value as text of at most ``width`` characters."""
    if isinstance(value, (np.ndarray, np.generic, bool, int, float)):
        text = np.array2string(np.asarray(value), threshold=8, edgeitems=2, separator=", ",
                               max_line_width=10 ** 6, floatmode="unique")
    else:
        text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _same(recorded: Any, actual: Any) -> bool:
    a, b = np.asarray(recorded), np.asarray(actual)
    if a.shape != b.shape:
        return False
    nan = a.dtype.kind in "fc" and b.dtype.kind in "fc"
    return bool(np.array_equal(a, b, equal_nan=nan))


def first_mismatch(recorded: Any, actual: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """Where two values first differ (exactly): (path such as ``['pos'][1]``, recorded,
    actual), or None. Nested maps and sequences are compared key by key."""
    if isinstance(recorded, dict):
        if not isinstance(actual, Mapping) or set(actual) != set(recorded):
            return path, recorded, actual
        pairs: Iterable[tuple[Any, Any, Any]] = ((k, recorded[k], actual[k]) for k in recorded)
    elif isinstance(recorded, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(recorded):
            return path, recorded, actual
        pairs = zip(range(len(recorded)), recorded, actual)
    else:
        return None if _same(recorded, actual) else (path, recorded, actual)
    for key, left, right in pairs:
        found = first_mismatch(left, right, f"{path}[{key!r}]")
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Mismatch:
    """One value that differs: ``what`` (``observation['pos']``, ``reward``, ``terminated``,
    ``truncated``, or ``error`` when the env raised), recorded and re-executed."""

    what: str
    recorded: Any
    reexecuted: Any

    def __str__(self) -> str:
        return (f"{self.what} recorded {shorten(self.recorded)}, "
                f"re-executed {shorten(self.reexecuted)}")


STEP_COLUMNS = ("observation", "reward", "terminated", "truncated")


def compare_step(recorded: dict[str, Any], t: int, observation: Any, reward: Any,
                 terminated: Any, truncated: Any) -> list[Mismatch]:
    """What differs at step ``t`` between the recorded columns and the re-executed step."""
    mismatches = []
    found = first_mismatch(at(recorded["observation"], t), observation)
    if found is not None:
        mismatches.append(Mismatch(f"observation{found[0]}", *found[1:]))
    for name, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
        if not _same(recorded[name][t], value):
            mismatches.append(Mismatch(name, recorded[name][t], value))
    return mismatches


class Replay:
    """Re-executes one recorded episode in ``env``, comparing as it goes.

    Iterating resets the env with the recorded seed, then steps it with the recorded
    actions; it yields after the reset (None) and after each step (its index ``t``),
    so that the caller can render each state. It stops after the last recorded step,
    when the re-executed episode ends, or when the env raises (an ``error`` mismatch).
    ``step`` and ``mismatches`` then say where the re-execution first differed.
    """

    def __init__(self, env: gym.Env, episode: Episode) -> None:
        self.env = env
        self.episode = episode
        self.steps = 0  # steps re-executed
        self.step: int | None = None  # the first differing step (None: the reset)
        self.mismatches: list[Mismatch] = []
        names = ("action",) + STEP_COLUMNS if episode.length else ()
        self._recorded: dict[str, Any] = {}
        for name in names:  # a damaged log's batches may hold anything
            try:
                column = episode.column(name)
            except (TypeError, ValueError, IndexError, KeyError):
                column = None
            if column_rows(column) != episode.length:
                self._note(None, [Mismatch(name, f"no column of {episode.length} steps", None)])
                break
            self._recorded[name] = column

    def _note(self, t: int | None, mismatches: list[Mismatch]) -> None:
        if mismatches and not self.mismatches:
            self.step, self.mismatches = t, mismatches

    def _env_call(self, t: int | None, call: Any, *args: Any, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)``; None (noted as a difference) if the env raises."""
        try:
            return call(*args, **kwargs)
        except Exception as exc:  # env code: what the recording did not do is a difference
            self._note(t, [Mismatch("error", "a reset" if t is None else "a step",
                                    f"{type(exc).__name__}: {one_line(exc)}")])
            return None

    def __iter__(self) -> Iterator[int | None]:
        if self.mismatches:  # the recording itself cannot be re-executed
            return
        reset = self._env_call(None, self.env.reset, seed=self.episode.env_seed)
        if reset is None:
            return
        found = first_mismatch(self.episode.reset_observation, reset[0])
        self._note(None, [] if found is None else [Mismatch(f"observation{found[0]}", *found[1:])])
        yield None
        for t in range(self.episode.length):
            result = self._env_call(t, self.env.step, at(self._recorded["action"], t))
            if result is None:
                return
            observation, reward, terminated, truncated, _ = result
            self.steps = t + 1
            self._note(t, compare_step(self._recorded, t, observation, reward, terminated,
                                       truncated))
            yield t
            if terminated or truncated:
                return

    def check(self) -> EpisodeCheck:
        episode = self.episode
        return EpisodeCheck(episode.index, episode.env_seed, episode.length,
                            episode.end.status if episode.end else "unfinished",
                            self.steps, self.step, list(self.mismatches))


@dataclass
class EpisodeCheck:
    """The outcome of re-executing one episode. ``ok``: nothing differed; else ``step`` is
    the first step that differed (None: the reset) and ``mismatches`` what differed there."""

    episode: int
    env_seed: int | None
    recorded_steps: int
    recorded_status: str  # terminated, truncated, aborted, incomplete or unfinished (no end)
    reexecuted_steps: int
    step: int | None = None
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def __str__(self) -> str:
        head = f"episode {self.episode} (env seed {self.env_seed}, {self.recorded_steps} steps, " \
               f"{self.recorded_status})"
        if self.ok:
            return f"{head}: ok, re-executed identically"
        where = "the reset" if self.step is None else f"step {self.step}"
        return f"{head}: differs at {where}: {'; '.join(map(str, self.mismatches))}"


def check_episode(env: gym.Env, episode: Episode) -> EpisodeCheck:
    """Re-execute one episode in ``env`` up to its first difference."""
    replay = Replay(env, episode)
    for _ in replay:
        if replay.mismatches:
            break
    return replay.check()


def reexecute(run_dir_or_event_log: str | os.PathLike[str],
              episodes: Iterable[int] | None = None) -> list[EpisodeCheck]:
    """Re-execute the recorded episodes (all, or the given indices) of a run, in index order,
    in one env rebuilt from ``run.start``; one :class:`EpisodeCheck` per episode.

    Raises :class:`ConfigError` when the log or an episode is missing or the env cannot be
    rebuilt (an env object passed to ``run_with``, an import that fails)."""
    start, recorded = recorded_episodes(event_log_path(run_dir_or_event_log), episodes)
    with closing(recorded):
        env = build_env(start)
        try:  # each episode as it ends in the log: memory holds the episodes in flight only
            checks = [check_episode(env, episode) for episode in recorded]
        finally:
            env.close()
    return sorted(checks, key=lambda check: check.episode)

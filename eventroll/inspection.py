"""Summaries of eventroll artifacts, and a plot of the return of each episode.

:func:`summarize` takes a run directory, an event log (``events.msgpack``) or a
flat trajectory file (``trajectories.h5``) and returns a plain dict: run id,
env, spaces, episodes and steps, episodes by status, return and length
summaries, seeds, per-worker counts and the problems found. An event log is
read with the checks of :mod:`eventroll.validation` but the JSON Schemas, so a
damaged log is summarised as far as it can be read. :func:`plot_returns`
draws the returns as a PNG (with Pillow).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from eventroll.errors import EventrollError, InputError
from eventroll.events import STATUSES, RunStart
from eventroll.recorders.eventlog import FILE_NAME as EVENT_LOG, event_log_path
from eventroll.seeding import episode_seeds
from eventroll.spaces import space_from_description
from eventroll.stats import summarize as summary_of
from eventroll.trajectories.flat import FILE_NAME as TRAJECTORIES
from eventroll.validation import (HDF5_SIGNATURE, NO_SEED, EndedEpisodes, LogChecker, Report,
                                  read_log)

STATS = "stats.json"
RUN_FILES = ("config.yaml", EVENT_LOG, TRAJECTORIES, STATS, "run.jsonl")
PLOT_NAME = "returns.png"


@dataclass(frozen=True)
class Episodes:
    """The ended episodes a summary counts, a column each (one row an episode): status
    codes index :data:`~eventroll.events.STATUSES`; a seed of ``NO_SEED`` is none."""

    index: np.ndarray
    worker: np.ndarray
    status: np.ndarray
    length: np.ndarray
    return_: np.ndarray
    env_seed: np.ndarray
    agent_seed: np.ndarray


@dataclass
class Inspection:
    """A summary (a plain dict) and the (episode index, return) of each ended episode: an
    array of two columns, a row an episode, by index."""

    summary: dict[str, Any]
    returns: np.ndarray


def summarize(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The summary of a run directory, an event log or a flat trajectory file."""
    return inspect_artifact(path).summary


def inspect_artifact(path: str | os.PathLike[str]) -> Inspection:
    """Summarise the artifact at ``path``; raises :class:`InputError` if it is none."""
    path = os.fspath(path)
    if os.path.isdir(path):
        summary, episodes = _run_directory(path)
    elif artifact_kind(path) == "trajectories":
        summary, episodes = _trajectories(path)
    else:
        summary, episodes = _event_log(path)
    returns = np.column_stack([episodes.index, episodes.return_]).astype(np.float64)
    return Inspection(summary, returns[np.lexsort((returns[:, 1], returns[:, 0]))])


def artifact_kind(path: str) -> str:
    """``event log`` or ``trajectories`` (an HDF5 file), by the file's first bytes."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file or directory; pass a run directory, an event "
                         f"log ({EVENT_LOG}) or a trajectory file ({TRAJECTORIES})")
    with open(path, "rb") as file:
        start = file.read(len(HDF5_SIGNATURE))
    return "trajectories" if start == HDF5_SIGNATURE else "event log"


# -- the artifacts ----------------------------------------------------------------------

def _event_log(path: str) -> tuple[dict[str, Any], Episodes]:
    report = Report(path)
    checker = LogChecker(report, schemas=False)
    for offset, record in read_log(path, report):
        checker.check(offset, record)
    checker.finish()
    start, end = checker.run_start, checker.run_end
    episodes = _ended(checker.ended, start)
    fields = {
        "artifact": "event log", "run_id": report.header.get("run_id"),
        "env": start.env if start else None, "runner": start.runner if start else None,
        "n_workers": start.n_workers if start else None,
        "run_status": end.status if end else "unfinished",
        "episodes_planned": start.n_episodes if start else None,
        "episodes_without_end": sum(t.started for t in checker.episodes.values()),
        "steps": checker.steps,
        "observation_space": _space_text(start.observation_space) if start else None,
        "action_space": _space_text(start.action_space) if start else None,
        "records": report.records, "events": report.events, "bytes": report.size,
        "unread_bytes": report.unread_bytes,
    }
    return _summary(path, fields, episodes, [str(p) for p in report.problems]), episodes


def _ended(ended: EndedEpisodes, start: RunStart | None) -> Episodes:
    """The ended episodes of a log; seeds from run.start for those whose reset failed."""
    index = ended.column("index").copy()
    seeds = {name: ended.column(name).copy() for name in ("env_seed", "agent_seed")}
    unstarted = np.flatnonzero(ended.column("started") == 0)
    if len(unstarted) and start is not None:
        for name, start_seeds in (("env_seed", episode_seeds(start.env_seeds)),
                                  ("agent_seed", episode_seeds(start.agent_seeds))):
            for row in unstarted.tolist():
                i = int(index[row])
                seeds[name][row] = int(start_seeds[i]) if 0 <= i < len(start_seeds) else NO_SEED
    return Episodes(index, ended.column("worker").copy(), ended.column("status").copy(),
                    ended.column("length").copy(), ended.column("return_").copy(),
                    seeds["env_seed"], seeds["agent_seed"])


def _space_text(description: dict[str, Any]) -> str:
    try:
        return str(space_from_description(description))
    except (EventrollError, KeyError, TypeError, ValueError):
        return f"{description.get('type', 'unknown')} (not rebuilt)"


def _trajectories(path: str) -> tuple[dict[str, Any], Episodes]:
    import h5py

    from eventroll.trajectories.flat import INDEX, NO_SEED as FLAT_NO_SEED, open_trajectories

    with open_trajectories(path) as file:
        head = {"artifact": "trajectories", "run_id": file.run_id, "env": file.env,
                "observation_space": str(file.observation_space),
                "action_space": str(file.action_space)}
    with h5py.File(path, "r", swmr=True) as raw:
        count = min(raw["episodes"][name].shape[0] for name in INDEX)
        column = {name: raw["episodes"][name][:count] for name in INDEX}
        rows = raw["rewards"].shape[0]
    seed = {name: np.where(column[name] == FLAT_NO_SEED, NO_SEED, column[name]).astype(np.int64)
            for name in ("env_seed", "agent_seed")}
    episodes = Episodes(*(column[name].astype(dtype) for name, dtype in (
        ("index", np.int64), ("worker", np.int64), ("status", np.uint8), ("length", np.int64),
        ("return", np.float64))), seed["env_seed"], seed["agent_seed"])
    problems = _trajectory_problems(column, rows)
    head.update(steps=int(column["length"].sum()), bytes=os.path.getsize(path))
    return _summary(path, head, episodes, problems), episodes


def _trajectory_problems(column: dict[str, np.ndarray], rows: int) -> list[str]:
    problems = []
    indices, counts = np.unique(column["index"], return_counts=True)
    repeated = indices[counts > 1].tolist()
    if repeated:
        problems.append(f"episodes recorded more than once: {repeated[:20]}")
    unknown = np.unique(column["status"][column["status"] >= len(STATUSES)]).tolist()
    if unknown:
        problems.append(f"episode status codes {unknown[:20]} are none of the "
                        f"{len(STATUSES)} known ({', '.join(STATUSES)})")
    ends = column["start"] + column["length"]
    if len(ends) and int(ends.max()) > rows:
        problems.append(f"the episode index points at step rows up to {int(ends.max())}, the "
                        f"step datasets hold {rows} rows")
    return problems


def _run_directory(path: str) -> tuple[dict[str, Any], Episodes]:
    log, trajectories = os.path.join(path, EVENT_LOG), os.path.join(path, TRAJECTORIES)
    if os.path.isfile(log):
        summary, episodes = _event_log(event_log_path(path))
    elif os.path.isfile(trajectories):
        summary, episodes = _trajectories(trajectories)
    else:
        raise InputError(f"{path} holds neither {EVENT_LOG} nor {TRAJECTORIES}: not a run "
                         "directory; pass a run directory, an event log or a trajectory file")
    summary.update(path=path, artifact="run directory",
                   files={name: os.path.getsize(os.path.join(path, name)) for name in RUN_FILES
                          if os.path.isfile(os.path.join(path, name))})
    if summary.get("run_status") not in (None, "unfinished"):  # the files are complete
        summary["problems"] += _disagreements(path, summary)
    return summary, episodes


def _disagreements(path: str, summary: dict[str, Any]) -> list[str]:
    """Where trajectories.h5 and stats.json disagree with the event log's counts."""
    from eventroll.stats import Statistics
    from eventroll.trajectories.flat import open_trajectories

    statuses, problems = summary["statuses"], []
    completed = summary["episodes"] - statuses["aborted"]
    try:
        if os.path.isfile(os.path.join(path, TRAJECTORIES)):
            with open_trajectories(path) as file:
                if len(file) != summary["episodes"]:
                    problems.append(f"{TRAJECTORIES} holds {len(file)} episodes, {EVENT_LOG} "
                                    f"{summary['episodes']} episode.end records")
        if os.path.isfile(os.path.join(path, STATS)):
            stats = Statistics.load(os.path.join(path, STATS))
            counted = stats.get_stats_value("episode_count")
            if counted != completed:
                problems.append(f"{STATS} counts {counted} episodes, {EVENT_LOG} holds "
                                f"{completed} episodes not aborted")
    except (EventrollError, OSError, ValueError, KeyError) as exc:
        problems.append(f"cannot read the run's other files: {exc}")
    return problems


# -- the summary ----------------------------------------------------------------------

def _summary(path: str, fields: dict[str, Any], episodes: Episodes,
             problems: list[str]) -> dict[str, Any]:
    """The summary dict: ``fields`` and what the ended episodes add up to."""
    statuses = np.bincount(episodes.status, minlength=len(STATUSES))
    return {
        "path": path, **fields, "episodes": len(episodes.index),
        "statuses": {status: int(statuses[code]) for code, status in enumerate(STATUSES)},
        "return": summary_of(episodes.return_),
        "length": summary_of(episodes.length),
        "seeds": {"env": _seeds(episodes.env_seed), "agent": _seeds(episodes.agent_seed)},
        "per_worker": _per_worker(episodes),
        "problems": problems,
    }


def _seeds(seeds: np.ndarray) -> dict[str, Any]:
    """How many seeds, how many distinct, their range, and how many episodes had none."""
    given = seeds[seeds != NO_SEED]
    return {"count": len(given), "distinct": len(np.unique(given)),
            "none": len(seeds) - len(given),
            "min": int(given.min()) if len(given) else None,
            "max": int(given.max()) if len(given) else None}


def _per_worker(episodes: Episodes) -> dict[str, dict[str, int]]:
    workers, rows = np.unique(episodes.worker, return_inverse=True)
    counted = {"episodes": np.bincount(rows, minlength=len(workers)),
               "steps": np.bincount(rows, episodes.length, minlength=len(workers)),
               "aborted": np.bincount(rows, episodes.status == STATUSES.index("aborted"),
                                      minlength=len(workers))}
    return {str(worker): {name: int(counts[i]) for name, counts in counted.items()}
            for i, worker in enumerate(workers.tolist())}


# -- the plot -------------------------------------------------------------------------

PLOT_SIZE = (800, 450)
MARGINS = (80, 48, 28, 60)  # left, top, right, bottom, in pixels
INK, GRID, LINE = (30, 30, 30), (228, 228, 228), (31, 119, 180)
MAX_MARKERS = 500


@dataclass(frozen=True)
class _Axis:
    """A linear map from values low..high to pixels first..last, and its tick values."""

    low: float
    high: float
    first: float
    last: float
    ticks: tuple[float, ...]

    def pixel(self, value: float) -> float:
        return self.first + (value - self.low) / (self.high - self.low) * (self.last - self.first)


def _axis(values: np.ndarray, first: float, last: float, *, integer: bool = False) -> _Axis:
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    if high == low:
        low, high = low - 1, high + 1
    step = _tick_step((high - low) / 5, integer)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    ticks = tuple(low + k * step for k in range(round((high - low) / step) + 1))
    return _Axis(low, high, first, last, ticks)


def _tick_step(rough: float, integer: bool) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``rough``."""
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    return max(step, 1) if integer else step


def _label(value: float) -> str:
    return f"{value + 0.0:.6g}"  # + 0.0 turns -0.0 into 0.0


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # a scalable font (Pillow >= 10.1, FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _text(draw: Any, xy: tuple[float, float], text: str, font: Any, anchor: str) -> None:
    """Draw ``text`` with its box placed at ``xy`` by ``anchor``: horizontal l/m/r, then
    vertical t/m/b (any font, bitmap ones included)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    width, height = right - left, bottom - top
    x = xy[0] - {"l": 0, "m": width / 2, "r": width}[anchor[0]] - left
    y = xy[1] - {"t": 0, "m": height / 2, "b": height}[anchor[1]] - top
    draw.text((x, y), text, fill=INK, font=font)


def plot_returns(returns: Any, path: str | os.PathLike[str], *,
                 title: str = "return per episode") -> None:
    """Write a PNG plot of the return of each episode: ``returns`` holds (episode index,
    return) pairs (a sequence of pairs or an array of two columns); the x axis is the
    episode index, the y axis the return. Non-finite returns are left out. Past
    ``MAX_MARKERS`` episodes the line is drawn through each pixel column's lowest and
    highest return, so that memory and time stay the same however many there are."""
    from PIL import Image, ImageDraw

    points = np.asarray(returns, dtype=np.float64).reshape(-1, 2)
    points = points[np.isfinite(points[:, 1])]
    points = points[np.lexsort((points[:, 1], points[:, 0]))]
    image = Image.new("RGB", PLOT_SIZE, "white")
    draw = ImageDraw.Draw(image)
    left, top = MARGINS[0], MARGINS[1]
    right, bottom = PLOT_SIZE[0] - MARGINS[2], PLOT_SIZE[1] - MARGINS[3]
    x = _axis(points[:, 0], left, right, integer=True)
    y = _axis(points[:, 1], bottom, top)
    _draw_axes(draw, x, y, _font(12))
    font = _font(14)
    n = len(points)
    _text(draw, (PLOT_SIZE[0] / 2, 14), f"{title} ({n} episode{'s' * (n != 1)})", font, "mt")
    _text(draw, ((left + right) / 2, PLOT_SIZE[1] - 8), "episode", font, "mb")
    _text(draw, (left, top - 8), "return", font, "rb")
    pixels = np.column_stack([x.pixel(points[:, 0]), y.pixel(points[:, 1])])
    if n > MAX_MARKERS:
        draw.line(_column_ranges(pixels), fill=LINE, width=1)
    elif n:
        if n > 1:
            draw.line(pixels.ravel().tolist(), fill=LINE, width=2)
        for px, py in pixels.tolist():
            draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=LINE)
    else:
        _text(draw, ((left + right) / 2, (top + bottom) / 2), "no episodes", font, "mm")
    image.save(os.fspath(path), format="PNG")


def _column_ranges(pixels: np.ndarray) -> list[float]:
    """The points of a line through each pixel column's lowest and highest point (``pixels``
    in x order, flattened for PIL): at most two points a column of the plot."""
    columns = np.round(pixels[:, 0])
    starts = np.flatnonzero(np.r_[True, columns[1:] != columns[:-1]])
    low = np.minimum.reduceat(pixels[:, 1], starts)
    high = np.maximum.reduceat(pixels[:, 1], starts)
    return np.column_stack([columns[starts], low, columns[starts], high]).ravel().tolist()


def _draw_axes(draw: Any, x: _Axis, y: _Axis, font: Any) -> None:
    """Grid lines, the two axes, ticks and their numbers."""
    left, right, bottom, top = x.first, x.last, y.first, y.last
    for value in y.ticks:
        py = y.pixel(value)
        draw.line((left, py, right, py), fill=GRID)
        draw.line((left - 5, py, left, py), fill=INK)
        _text(draw, (left - 8, py), _label(value), font, "rm")
    for value in x.ticks:
        px = x.pixel(value)
        draw.line((px, bottom, px, bottom + 5), fill=INK)
        _text(draw, (px, bottom + 8), _label(value), font, "mt")
    draw.line((left, top, left, bottom, right, bottom), fill=INK, width=1)

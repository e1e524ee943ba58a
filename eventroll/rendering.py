"""Rendering a recorded episode to an animated GIF: the episode is re-executed (see
:mod:`eventroll.reexecution`) in an env built with ``render_mode="rgb_array"``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from eventroll.errors import ConfigError, EventrollError, one_line
from eventroll.files import replacing
from eventroll.reexecution import Mismatch, Replay, build_env, load_recording

MAX_FPS = 50  # GIF delays are whole centiseconds; viewers slow shorter delays down


@dataclass
class RenderedEpisode:
    """A written GIF: ``frames`` rendered (the reset, then one per re-executed step),
    ``size`` (width, height) in pixels; ``step`` and ``mismatches`` say where the
    re-execution first differed from the recording (none: it did not)."""

    path: str
    episode: int
    frames: int
    size: tuple[int, int]
    fps: float
    step: int | None = None
    mismatches: list[Mismatch] = field(default_factory=list)


def _frames(replay: Replay, sizes: list[tuple[int, int]]) -> Iterator[Any]:
    """One RGB image per re-executed state; the size of each is appended to ``sizes``."""
    from PIL import Image

    for t in replay:
        try:
            frame = replay.env.render()
        except Exception as exc:
            where = "reset" if t is None else f"step {t}"
            raise EventrollError(f"the env failed to render after its {where}: "
                                 f"{type(exc).__name__}: {one_line(exc)}") from None
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            raise EventrollError(f"the env rendered a {type(frame).__name__}, not an RGB array")
        image = Image.fromarray(np.ascontiguousarray(frame[..., :3], dtype=np.uint8))
        sizes.append(image.size)
        yield image
    if not sizes:
        raise EventrollError(f"episode {replay.episode.index}: nothing to render, the env "
                             f"failed at its reset ({'; '.join(map(str, replay.mismatches))})")


def _fps(env: gym.Env, fps: float | None) -> float:
    value = fps if fps is not None else min(env.metadata.get("render_fps") or 30, MAX_FPS)
    if not 0 < value <= MAX_FPS:
        raise ConfigError(f"fps must be in (0, {MAX_FPS}], got {value}")
    return float(value)


def _check_gif_path(out_path: str) -> None:
    if not out_path.lower().endswith(".gif"):
        raise ConfigError(f"{out_path}: only GIF output is supported; name the file *.gif")
    parent = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(parent):
        raise ConfigError(f"{out_path}: the directory {parent} does not exist")


def render_episode(run_dir_or_event_log: str | os.PathLike[str], episode: int,
                   out_path: str | os.PathLike[str], fps: float | None = None) -> RenderedEpisode:
    """Re-execute recorded ``episode`` of a run with ``render_mode="rgb_array"`` and write its
    frames to ``out_path`` as an animated GIF (looping, ``fps`` frames per second; default:
    the env's ``render_fps``, at most 50).

    One frame is rendered after the reset and one after each re-executed step: an episode
    of ``n`` steps gives ``n + 1`` frames (``RenderedEpisode.frames``). The GIF lasts
    ``(n + 1) / fps`` seconds; Pillow merges identical consecutive frames into one (their
    delays summed), so the file may hold fewer frames. Should the re-execution differ from
    the recording, the GIF shows the re-execution and the result says where it differed.
    """
    out = os.fspath(out_path)
    _check_gif_path(out)
    recording = load_recording(run_dir_or_event_log, [episode])
    env = build_env(recording.start, render_mode="rgb_array")
    try:
        if "rgb_array" not in env.metadata.get("render_modes", []):
            raise ConfigError(f"env {recording.start.env!r} cannot render to images (its "
                              f"render_modes: {list(env.metadata.get('render_modes', []))})")
        rate = _fps(env, fps)
        replay = Replay(env, recording.episodes[episode])
        sizes: list[tuple[int, int]] = []
        _write_gif(out, _frames(replay, sizes), rate)
    finally:
        env.close()
    return RenderedEpisode(out, episode, len(sizes), sizes[0], rate, replay.step,
                           list(replay.mismatches))


def _write_gif(path: str, images: Iterator[Any], fps: float) -> None:
    """Write the images as a looping GIF: to a temporary file, renamed to ``path`` once whole."""
    first = next(images)
    with replacing(path, binary=True, durable=False) as file:
        first.save(file, format="GIF", save_all=True, append_images=images,
                   duration=round(1000 / fps), loop=0)

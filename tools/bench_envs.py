"""Environments for ``tools/bench_suite.py``, built by ``eventroll run`` in every process of a
run as ``env.name=bench_envs:NAME`` (``tools/`` on ``PYTHONPATH``; the suite puts it there).

* :class:`ImageEnv`: ``uint8`` image observations (84x84 by default) that cost next to
  nothing to make: every step returns the same preallocated frame (random pixels, made
  once), so a run measures what moving and recording the observations costs.
* :func:`timed_cartpole`: CartPole-v1 whose observations end with the wall time
  (``time.time()``, float64) at which they were made, for measuring the latency from a
  step to a live subscriber.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ImageEnv(gym.Env):
    """Observations ``Box(0, 255, shape, uint8)``, two actions, reward 0, truncated after
    ``episode_steps`` steps, never terminated."""

    metadata = {"render_modes": []}

    def __init__(self, shape: Sequence[int] = (84, 84), episode_steps: int = 1000,
                 render_mode: str | None = None) -> None:
        shape = tuple(int(n) for n in shape)
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)
        self.action_space = spaces.Discrete(2)
        self.render_mode = render_mode
        self._frame = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        self._episode_steps = int(episode_steps)
        self._t = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._frame, {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._t += 1
        return self._frame, 0.0, False, self._t >= self._episode_steps, {}


class WallTimeObservation(gym.ObservationWrapper):
    """Appends ``time.time()`` to a flat ``Box`` observation, all as float64: the last
    element of every observation is the wall time at which it was made."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        box = env.observation_space
        self.observation_space = spaces.Box(np.append(box.low.astype(np.float64), 0.0),
                                            np.append(box.high.astype(np.float64), np.inf),
                                            dtype=np.float64)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.append(observation.astype(np.float64), time.time())


def timed_cartpole(**kwargs: Any) -> gym.Env:
    """``gym.make("CartPole-v1", **kwargs)`` with :class:`WallTimeObservation`."""
    return WallTimeObservation(gym.make("CartPole-v1", **kwargs))

"""Small deterministic envs for eventroll's tests and for users' tests."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class FailingEnv(gym.Env):
    """A counter env that raises on step ``fail_step`` of episodes reset with a seed
    divisible by ``fail_every`` (0 never fails). Episodes last ``length`` steps and end
    by termination; observations are ``[t, seed]``, rewards 1.0."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, length: int = 5, fail_step: int = 2, fail_every: int = 0,
                 render_mode: str | None = None) -> None:
        self.observation_space = spaces.Box(0, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.length, self.fail_step, self.fail_every = length, fail_step, fail_every
        self._t, self._seed = 0, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t, self._seed = 0, seed or 0
        return self._observation(), {}

    def step(self, action: Any):
        if self.fail_every and self._seed % self.fail_every == 0 and self._t == self.fail_step:
            raise RuntimeError(f"FailingEnv: planned failure at step {self._t}")
        self._t += 1
        return self._observation(), 1.0, self._t >= self.length, False, {}

    def _observation(self) -> np.ndarray:
        return np.array([self._t, self._seed], dtype=np.float32)


def failing_env(**kwargs: Any) -> FailingEnv:
    """Factory for ``env.name=eventroll.testing:failing_env``."""
    return FailingEnv(**kwargs)

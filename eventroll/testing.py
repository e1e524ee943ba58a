"""Small deterministic envs for eventroll's tests and for users' tests."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class FailingEnv(gym.Env):
    """A counter env that raises on step ``fail_step`` of episodes reset with a seed
    divisible by ``fail_every`` (0 never fails; with ``fail_times`` N > 0 only the first
    N times each such seed is played in this env object; ``fail_step`` -1: in ``reset``),
    and kills its own process with
    SIGKILL on that step of the episode reset with seed ``kill_seed``. Episodes last
    ``length`` steps and end by termination; observations are ``[t, seed]``, rewards
    1.0."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, length: int = 5, fail_step: int = 2, fail_every: int = 0,
                 kill_seed: int | None = None, fail_times: int = 0,
                 render_mode: str | None = None) -> None:
        self.observation_space = spaces.Box(0, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.length, self.fail_step, self.fail_every = length, fail_step, fail_every
        self.kill_seed, self.fail_times = kill_seed, fail_times
        self._failures: dict[int, int] = {}  # seed -> times it failed here
        self._t, self._seed = 0, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t, self._seed = 0, seed or 0
        if self.fail_step < 0 and self._fails():
            raise RuntimeError("FailingEnv: planned failure in reset")
        return self._observation(), {}

    def _fails(self) -> bool:
        """Whether this episode fails (and count it)."""
        if not self.fail_every or self._seed % self.fail_every \
                or 0 < self.fail_times <= self._failures.get(self._seed, 0):
            return False
        self._failures[self._seed] = self._failures.get(self._seed, 0) + 1
        return True

    def step(self, action: Any):
        if self._seed == self.kill_seed and self._t == self.fail_step:
            os.kill(os.getpid(), signal.SIGKILL)
        if self._t == self.fail_step and self._fails():
            raise RuntimeError(f"FailingEnv: planned failure at step {self._t}")
        self._t += 1
        return self._observation(), 1.0, self._t >= self.length, False, {}

    def _observation(self) -> np.ndarray:
        return np.array([self._t, self._seed], dtype=np.float32)


def failing_env(**kwargs: Any) -> FailingEnv:
    """Factory for ``env.name=eventroll.testing:failing_env``."""
    return FailingEnv(**kwargs)


def sample_spaces() -> dict[str, spaces.Space]:
    """One space of every kind eventroll records, nested ones included, by name."""
    return {
        "box": spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
        "box_image": spaces.Box(0, 255, shape=(4, 5, 3), dtype=np.uint8),
        "box_int": spaces.Box(-5, 5, shape=(2, 2), dtype=np.int64),
        "box_scalar": spaces.Box(-1.0, 1.0, shape=(), dtype=np.float64),
        "discrete": spaces.Discrete(5, start=2),
        "multidiscrete": spaces.MultiDiscrete([3, 4, 5]),
        "multibinary": spaces.MultiBinary(6),
        "text": spaces.Text(8, min_length=1),
        "dict": spaces.Dict({"pos": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
                             "id": spaces.Discrete(4)}),
        "tuple": spaces.Tuple((spaces.Discrete(3), spaces.MultiBinary(2))),
        "nested": spaces.Dict({"inner": spaces.Tuple((spaces.Box(0, 1, shape=(2,)),
                                                      spaces.Dict({"k": spaces.Discrete(2)}))),
                               "label": spaces.Text(4, min_length=1)}),
    }


class SpaceEnv(gym.Env):
    """An env whose observation and action spaces are both ``sample_spaces()[kind]``.

    Observations are samples of the space seeded by the reset seed, so a run is
    reproducible; episodes end by termination after ``length`` steps, rewards
    are ``t + 1``; infos carry ``{"t": t}``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, kind: str = "dict", length: int = 4, render_mode: str | None = None) -> None:
        self.observation_space = sample_spaces()[kind]
        self.action_space = sample_spaces()[kind]
        self.length, self._t = length, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self._t = 0
        return self.observation_space.sample(), {"seed": seed}

    def step(self, action: Any):
        self._t += 1
        return (self.observation_space.sample(), float(self._t), self._t >= self.length, False,
                {"t": self._t})


def space_env(**kwargs: Any) -> SpaceEnv:
    """Factory for ``env.name=eventroll.testing:space_env``."""
    return SpaceEnv(**kwargs)


class FaultyPolicy:
    """A seeded random policy over a Discrete action space that, at step ``bad_step`` of
    episodes whose agent seed is divisible by ``every``, gives an action outside the space
    (``fault="action"``) or raises (``fault="raise"``)."""

    def __init__(self, action_space: spaces.Discrete, fault: str = "action", every: int = 3,
                 bad_step: int = 1, **_: Any) -> None:
        self._n, self._fault, self._every, self._bad_step = int(action_space.n), fault, every, bad_step
        self._seed = self._t = 0

    def seed(self, seed: int) -> None:
        self._seed, self._t = seed, 0

    def compute_action(self, observation: Any, *, deterministic: bool = False) -> Any:
        self._t += 1
        if self._t - 1 == self._bad_step and self._seed % self._every == 0:
            if self._fault == "raise":
                raise RuntimeError("FaultyPolicy: planned failure")
            return self._n + 2
        return 0


class LogitsPolicy:
    """A seeded random policy over a Discrete action space that also gives logits: the
    action's logit is 1, the others 0."""

    def __init__(self, action_space: spaces.Discrete, **_: Any) -> None:
        self._n = int(action_space.n)
        self._rng = np.random.default_rng()

    def seed(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def compute_action(self, observation: Any, *, deterministic: bool = False) -> Any:
        return self.compute_action_with_logits(observation, deterministic=deterministic)[0]

    def compute_action_with_logits(self, observation: Any, *,
                                   deterministic: bool = False) -> tuple[int, np.ndarray]:
        action = 0 if deterministic else int(self._rng.integers(self._n))
        logits = np.zeros(self._n, dtype=np.float32)
        logits[action] = 1.0
        return action, logits


class PacedPolicy:
    """A seeded random policy over a Discrete action space that pauses ``pause`` seconds at
    the start of each episode: a run that lasts about as long on any machine (tests that
    attach to a live run need it to be live for a while)."""

    def __init__(self, action_space: spaces.Discrete, pause: float = 0.001, **_: Any) -> None:
        self._n, self._pause = int(action_space.n), float(pause)
        self._rng = np.random.default_rng()

    def seed(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        time.sleep(self._pause)

    def compute_action(self, observation: Any, *, deterministic: bool = False) -> Any:
        return int(self._rng.integers(self._n))

"""Per-episode seeds: episode i uses env seed i and agent seed i of the run's lists.

Seeds derived from a base seed are a numpy array (4 bytes an episode, and so they travel
in ``run.start``), not a list of Python ints (about 40 bytes each: 36 MB for the 450,000
episodes of ten million CartPole steps, in the driver, every worker and every recorder);
explicit seeds stay the list they were given as. Either way ``int(seeds[i])`` is the
seed of episode ``i``."""

from __future__ import annotations

import secrets
from typing import Any
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eventroll.errors import ConfigError


@dataclass
class Seeds:
    """The resolved seeds of a run; ``n_episodes`` may be less than asked."""

    env_base_seed: int
    agent_base_seed: int
    env: Sequence[int]  # a numpy array when derived, the given list when explicit
    agent: Sequence[int]
    warnings: list[str]

    @property
    def n_episodes(self) -> int:
        return len(self.env)


def derive_seeds(base_seed: int, n: int) -> np.ndarray:
    """``n`` seeds (uint32) from a base seed; a prefix does not depend on ``n``."""
    return np.random.SeedSequence(base_seed).generate_state(n, dtype=np.uint32)


def _explicit(name: str, seeds: Sequence[int] | None) -> list[int] | None:
    if seeds is None:
        return None
    values = list(seeds)
    if not values or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0
                             for s in values):
        raise ConfigError(f"seeding.{name} must be a non-empty list of non-negative integers")
    return [int(s) for s in values]


def _base(name: str, seed: Any) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seeding.{name} must be a non-negative integer (or null: drawn at "
                          f"random), got {seed!r}")
    return int(seed)


def resolve_seeds(n_episodes: int, env_base_seed: int | None = None, agent_base_seed: int | None = None,
                  explicit_env_seeds: Sequence[int] | None = None,
                  explicit_agent_seeds: Sequence[int] | None = None) -> Seeds:
    """The seed lists of a run. Base seeds left at None are drawn at random (and recorded)."""
    if n_episodes < 1:
        raise ConfigError(f"runner.n_episodes must be at least 1, got {n_episodes}")
    env_base = secrets.randbits(31) if env_base_seed is None else _base("env_base_seed", env_base_seed)
    agent_base = (secrets.randbits(31) if agent_base_seed is None
                  else _base("agent_base_seed", agent_base_seed))
    env_list = _explicit("explicit_env_seeds", explicit_env_seeds)
    agent_list = _explicit("explicit_agent_seeds", explicit_agent_seeds)
    n = n_episodes
    warnings = []
    for name, values in (("explicit_env_seeds", env_list), ("explicit_agent_seeds", agent_list)):
        if values is not None and len(values) < n:
            warnings.append(f"seeding.{name} holds {len(values)} seeds for {n_episodes} episodes; "
                            f"running {len(values)} episodes")
            n = len(values)
    env_seeds = env_list[:n] if env_list is not None else derive_seeds(env_base, n)
    agent_seeds = agent_list[:n] if agent_list is not None else derive_seeds(agent_base, n)
    return Seeds(env_base, agent_base, env_seeds, agent_seeds, warnings)

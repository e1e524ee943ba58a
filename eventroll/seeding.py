"""Per-episode seeds: episode i uses env seed i and agent seed i of the run's lists.

Seeds derived from a base seed are :class:`DerivedSeeds`: seed ``i`` is word ``i`` of
``numpy.random.SeedSequence(base).generate_state(n)``, computed when asked, so a run of
any length holds two integers for them (and ``run.start`` carries a map of two: see
:meth:`DerivedSeeds.to_record`), where an array would grow by 4 bytes an episode in
every process (3.6 MB for the 450,000 episodes of ten million CartPole steps, and more
for its copies). Explicit seeds stay the list they were given as. Either way
``int(seeds[i])`` is the seed of episode ``i``; :func:`episode_seeds` reads the seeds of a
``run.start``, whichever form they came in."""

from __future__ import annotations

import secrets
from typing import Any
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eventroll.errors import ConfigError
from eventroll.events import is_int


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


# SeedSequence's output function (numpy's generate_state, from O'Neill's seed_seq_fe):
# word i = mix(pool[i % 4] ^ h(i)) * h(i + 1), h(i) = INIT_B * MULT_B**i, all mod 2**32
_INIT_B, _MULT_B, _MASK = 0x8B51F9DD, 0x58F38DED, np.uint64(0xFFFFFFFF)
SEED_SEQUENCE = "seed_sequence"  # run.start's map of derived seeds: {SEED_SEQUENCE: base, "n": n}


class DerivedSeeds(Sequence[int]):
    """``n`` seeds (uint32) from a base seed, equal to
    ``numpy.random.SeedSequence(base).generate_state(n)`` and computed when asked, a block
    of ``BLOCK`` at a time (episodes are asked for in about increasing order); a prefix does
    not depend on ``n``."""

    BLOCK = 1024

    def __init__(self, base: int, n: int) -> None:
        self.base, self.n = int(base), int(n)
        self._pool = np.random.SeedSequence(self.base).pool.astype(np.uint64)
        self._block = -1
        self._words = np.empty(0, np.uint64)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return np.array([self[i] for i in range(*index.indices(self.n))], np.uint32)
        i = int(index)
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(f"episode {index} of a run of {self.n} episodes has no seed")
        block, offset = divmod(i, self.BLOCK)
        if block != self._block:
            self._words, self._block = self._derive(block * self.BLOCK), block
        return int(self._words[offset])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        seeds = np.random.SeedSequence(self.base).generate_state(self.n, dtype=np.uint32)
        return seeds if dtype is None else seeds.astype(dtype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DerivedSeeds) and (other.base, other.n) == (self.base, self.n)

    def __repr__(self) -> str:
        return f"DerivedSeeds(base={self.base}, n={self.n})"

    def to_record(self) -> dict[str, int]:
        """How ``run.start`` carries them."""
        return {SEED_SEQUENCE: self.base, "n": self.n}

    def _derive(self, first: int) -> np.ndarray:
        """Words ``first`` .. ``first + BLOCK - 1`` (products of two 32-bit numbers in
        uint64, masked to 32 bits)."""
        hashes = np.uint64(_INIT_B * pow(_MULT_B, first, 1 << 32) & _MASK) * _POWERS & _MASK
        words = self._pool[(first + _OFFSETS) % len(self._pool)] ^ hashes[:-1]
        words = words * hashes[1:] & _MASK
        return words ^ (words >> np.uint64(16))


def _powers(n: int) -> np.ndarray:
    powers = [1]
    for _ in range(n):
        powers.append(powers[-1] * _MULT_B & _MASK)
    return np.array(powers, np.uint64)


_POWERS = _powers(DerivedSeeds.BLOCK)  # MULT_B**k mod 2**32, k = 0 .. BLOCK
_OFFSETS = np.arange(DerivedSeeds.BLOCK)


def derive_seeds(base_seed: int, n: int) -> DerivedSeeds:
    """``n`` seeds (uint32) from a base seed; a prefix does not depend on ``n``."""
    return DerivedSeeds(base_seed, n)


def episode_seeds(value: Any) -> Sequence[int]:
    """The seeds a ``run.start`` carries (its ``env_seeds`` or ``agent_seeds``), indexable by
    episode: a map of derived seeds as :class:`DerivedSeeds`, a list or array as it is, a
    malformed map (which ``eventroll validate`` reports) as none."""
    if isinstance(value, dict):
        base, n = value.get(SEED_SEQUENCE), value.get("n")
        if _is_seed(base) and _is_seed(n) and set(value) == {SEED_SEQUENCE, "n"}:
            return DerivedSeeds(base, n)
        return ()
    return value


def seeds_record(seeds: Sequence[int]) -> Any:
    """Seeds as ``run.start`` carries them (:func:`episode_seeds` reads them back)."""
    return seeds.to_record() if isinstance(seeds, DerivedSeeds) else seeds


def _is_seed(value: Any) -> bool:
    """A non-negative integer (Python or numpy), not a bool: what a seed, a base seed and a
    count of seeds must be."""
    return is_int(value) and value >= 0


def _explicit(name: str, seeds: Sequence[int] | None) -> list[int] | None:
    if seeds is None:
        return None
    values = list(seeds) if isinstance(seeds, (list, tuple, np.ndarray)) else []
    if not values or not all(map(_is_seed, values)):
        raise ConfigError(f"seeding.{name} must be a non-empty list of non-negative integers, "
                          f"got {seeds!r}")
    return [int(s) for s in values]


def _base(name: str, seed: Any) -> int:
    if not _is_seed(seed):
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

"""The policy protocol, a seeded random policy, and policies by import path."""

from __future__ import annotations

import copy
import inspect
import random
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from gymnasium import spaces

from eventroll.errors import ConfigError
from eventroll.imports import import_object


@runtime_checkable
class Policy(Protocol):
    """What a runner needs of a policy.

    ``seed`` is called at the start of every episode with the episode's agent
    seed; ``compute_action`` maps an observation to an action, greedily when
    ``deterministic`` is true. An optional ``reset()`` is called after ``seed``.
    """

    def seed(self, seed: int) -> None: ...

    def compute_action(self, observation: Any, *, deterministic: bool = False) -> Any: ...


class RandomPolicy:
    """Samples uniformly from the action space, seeded per episode.

    A ``Discrete`` action is drawn with :class:`random.Random` (seeding it costs a
    quarter of a numpy generator's, a draw a sixth of ``Discrete.sample()``'s) and
    given as a numpy scalar of the space's dtype, as ``sample()`` gives it:
    Gymnasium's ``Discrete.contains``, which envs call every step, checks a numpy
    scalar faster than a Python int (2.2 against 2.9 us here; the loop is 5 %
    faster, ``tools/bench_loop.py``). Other spaces sample themselves.
    """

    TABLE_SIZE = 4096  # Discrete spaces up to this size draw from prebuilt scalars

    def __init__(self, action_space: spaces.Space, **_: Any) -> None:
        self._space = copy.deepcopy(action_space)
        self._random = random.Random()
        self._randrange = self._random.randrange
        discrete = type(action_space) is spaces.Discrete
        self._n = int(action_space.n) if discrete else 0  # 0: the space samples
        if discrete:
            start, scalar = int(action_space.start), action_space.dtype.type
            self._values = [scalar(start + i) for i in range(min(self._n, self.TABLE_SIZE))]
            self._scalar = lambda i: scalar(start + i)

    def seed(self, seed: int) -> None:
        if self._n:
            self._random.seed(seed)
        else:
            self._space.seed(seed)

    def compute_action(self, observation: Any, *, deterministic: bool = False) -> Any:
        if self._n:
            i = self._randrange(self._n)
            return self._values[i] if i < self.TABLE_SIZE else self._scalar(i)
        return self._space.sample()


BUILTIN = {"random": RandomPolicy, "random_policy": RandomPolicy}


def check_gives_logits(policy: Any, asked: str, off: str) -> None:
    """Refuse a policy that cannot give the logits the setting ``asked`` asks for."""
    if not callable(getattr(policy, "compute_action_with_logits", None)):
        raise ConfigError(f"{asked} needs {type(policy).__name__}."
                          "compute_action_with_logits(observation, *, deterministic) "
                          f"returning (action, logits); implement it or set {off}")


def build_policy(agent: Any, observation_space: spaces.Space, action_space: spaces.Space) -> Policy:
    """Build the run's policy from a name, a config mapping, a class, a factory or an object.

    Names are ``random`` or an import path; a mapping holds ``name`` and the
    constructor's kwargs. Classes and factories get ``observation_space`` and
    ``action_space`` when their signature accepts them.
    """
    if agent is None:
        agent = "random"
    kwargs: dict[str, Any] = {}
    if isinstance(agent, Mapping):
        kwargs = dict(agent)
        agent = kwargs.pop("name", None)
        if not isinstance(agent, str):
            raise ConfigError("policy config needs 'name': 'random' or an import path "
                              f"(got keys {sorted(kwargs)})")
    if isinstance(agent, str):
        agent = BUILTIN.get(agent) or import_object(agent)
    if isinstance(agent, type) or (callable(agent) and not isinstance(agent, Policy)):
        agent = _construct(agent, kwargs, observation_space, action_space)
    if not isinstance(agent, Policy):
        raise ConfigError(f"{type(agent).__name__} is not a policy: it needs seed(seed) and "
                          "compute_action(observation, *, deterministic=False)")
    return agent


def _construct(factory: Any, kwargs: dict[str, Any], observation_space: spaces.Space,
               action_space: spaces.Space) -> Any:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for name, value in (("observation_space", observation_space), ("action_space", action_space)):
        if accepts_any or name in parameters:
            kwargs.setdefault(name, value)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"cannot build policy {getattr(factory, '__name__', factory)!r} with "
                          f"{sorted(kwargs)}: {exc}") from None

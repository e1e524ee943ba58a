"""Building environments from a Gymnasium id, a ``module:callable``, a factory or an object."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import TimeLimit

from eventroll.errors import ConfigError, one_line
from eventroll.imports import import_object, object_path


@dataclass
class EnvFactory:
    """Everything needed to build the run's env in any process (picklable).

    Exactly one of ``name`` (a Gymnasium id or ``module:callable``), ``factory``
    (a zero-argument callable) or ``env`` (an env object) is set.
    """

    name: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    factory: Callable[[], gym.Env] | None = None
    env: gym.Env | None = None
    wrappers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    max_episode_steps: int | None = None

    def __call__(self, render_mode: str | None = None) -> gym.Env:
        env, limited = self._base(render_mode)
        if self.max_episode_steps and not limited:
            env = TimeLimit(env, self.max_episode_steps)
        for path, kwargs in self.wrappers:
            env = import_object(path)(env, **kwargs)
        return env

    def _base(self, render_mode: str | None) -> tuple[gym.Env, bool]:
        """The unwrapped-by-us env, and whether it already has our time limit."""
        extra = {"render_mode": render_mode} if render_mode else {}
        if self.env is not None:
            return self.env, False
        if self.factory is not None:
            return self.factory(**extra), False
        if self.name is None:
            raise ConfigError("EnvFactory needs a name, a factory or an env")
        maker = _callable_for(self.name)
        if maker is not None:
            return maker(**self.kwargs, **extra), False
        if self.max_episode_steps:
            extra["max_episode_steps"] = self.max_episode_steps
        try:
            return gym.make(self.name, **self.kwargs, **extra), True
        except gym.error.Error as exc:
            raise ConfigError(f"env.name={self.name!r}: {one_line(exc)}. Use a registered "
                              f"Gymnasium id (e.g. CartPole-v1) or 'module:callable'") from None

    @property
    def label(self) -> str:
        """The env's name as recorded in ``run.start``."""
        if self.name is not None:
            return self.name
        target = self.factory if self.factory is not None else type(self.env)
        return object_path(target) if hasattr(target, "__qualname__") else repr(target)



def _callable_for(name: str) -> Callable[..., gym.Env] | None:
    """The callable that ``module:callable`` names, or None for a Gymnasium id."""
    module_name, sep, attr = name.partition(":")
    if not sep or not attr.replace(".", "").replace("_", "").isalnum():
        return None
    try:
        importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"env.name={name!r}: cannot import module {module_name!r} ({exc})") from None
    obj = import_object(name)
    if not callable(obj):
        raise ConfigError(f"env.name={name!r} names a {type(obj).__name__}, not a callable")
    return obj


def env_factory(env: Any, wrappers: Any = None, max_episode_steps: int | None = None) -> EnvFactory:
    """Normalise the ``env`` argument of ``run_with`` into an :class:`EnvFactory`.

    ``env`` is a Gymnasium id or ``module:callable`` string, a mapping with
    ``name`` and the env's kwargs (as in the ``env`` config group), a factory
    callable, or an env object. ``wrappers`` is an ordered mapping from wrapper
    class (or its import path) to kwargs, applied in order.
    """
    wrapper_list = _wrapper_list(wrappers)
    steps = max_episode_steps or None
    if isinstance(env, str):
        return EnvFactory(name=env, wrappers=wrapper_list, max_episode_steps=steps)
    if isinstance(env, Mapping):
        items = dict(env)
        name = items.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError("env config needs 'name': a Gymnasium id or 'module:callable' "
                              f"(got keys {sorted(env)})")
        return EnvFactory(name=name, kwargs=items, wrappers=wrapper_list, max_episode_steps=steps)
    if isinstance(env, gym.Env):
        return EnvFactory(env=env, wrappers=wrapper_list, max_episode_steps=steps)
    if callable(env):
        return EnvFactory(factory=env, wrappers=wrapper_list, max_episode_steps=steps)
    raise ConfigError(f"env must be a Gymnasium id, a config mapping, a factory or a gymnasium.Env, "
                      f"got {type(env).__name__}")


def _wrapper_list(wrappers: Any) -> list[tuple[str, dict[str, Any]]]:
    if not wrappers:
        return []
    if not isinstance(wrappers, Mapping):
        raise ConfigError("wrappers must be an ordered mapping from wrapper class path to kwargs, "
                          f"got {type(wrappers).__name__}")
    result = []
    for key, kwargs in wrappers.items():
        path = key if isinstance(key, str) else object_path(key)
        import_object(path)  # fail here, once, if the path is wrong
        result.append((path, dict(kwargs or {})))
    return result

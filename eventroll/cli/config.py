"""Composing the run's configuration with Hydra, and turning its errors into one line."""

from __future__ import annotations

import difflib
import functools
import os
import re
from typing import Any

from eventroll.errors import ConfigError
from eventroll.forked import ChildFailed, ForkedCall

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")
OPEN_GROUPS = ("env", "policy")  # further keys of these are kwargs, added with +KEY=VALUE


def compose(overrides: list[str]) -> tuple[dict[str, Any], str]:
    """The resolved config (without Hydra's own node) and the run directory."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
            run_dir = str(cfg.hydra.run.dir)
            job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
            container = OmegaConf.to_container(job, resolve=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_explain(exc)) from None
    return container, run_dir


class ComposeInChild:
    """:func:`compose` in a forked process, started at once, so that Hydra composes on one
    core while the caller imports the rollout machinery on the other (each takes about
    0.4 s, most of a short run's start-up). The child forks before the caller has made
    any thread, socket or file, and sends back msgpack. Without ``os.fork``, composes
    when the result is asked for."""

    TIMEOUT = 60.0

    def __init__(self, overrides: list[str]) -> None:
        self._call = ForkedCall(functools.partial(_composed, overrides), "er-compose")

    def result(self) -> tuple[dict[str, Any], str]:
        """The resolved config and the run directory; :class:`ConfigError` on bad input."""
        try:
            answer = self._call.answer(self.TIMEOUT)
        except ChildFailed as exc:
            raise ConfigError(f"the process composing the config failed: {exc}") from None
        if "error" in answer:
            raise ConfigError(answer["error"])
        return answer["config"], answer["run_dir"]


def _composed(overrides: list[str]) -> dict[str, Any]:
    try:
        config, run_dir = compose(overrides)
        return {"config": config, "run_dir": run_dir}
    except ConfigError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported as one line
        return {"error": f"composing the config failed ({type(exc).__name__}: {exc})"}


def _explain(exc: BaseException) -> str:
    """One line that names the culprit and the fix."""
    text = str(exc)
    cause = str(exc.__cause__ or "")
    full_key = re.search(r"full_key: (\S+)", cause)
    if "is not in struct" in cause and full_key:
        return _unknown_key(full_key.group(1))
    missing = re.search(r"Could not find '([^']+)'.*?Available options in '[^']+':\s*(.*?)Config search",
                        text, re.S)
    if missing:
        group, option = missing.group(1).rsplit("/", 1)
        options = missing.group(2).split()
        close = difflib.get_close_matches(option, options, n=3)
        return (f"unknown {group} {option!r}; choose one of: {', '.join(options)}"
                + (f" (did you mean {close[0]}?)" if close else ""))
    return " ".join(text.split()) or type(exc).__name__


def _unknown_key(key: str) -> str:
    known = sorted(flat_keys(default_config()))
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    message = f"unknown config key {key!r}"
    message += f"; did you mean {' or '.join(close)}?" if close else "; see `eventroll run --help`"
    group = key.split(".", 1)[0]
    if group in OPEN_GROUPS and "." in key:
        message += f" To pass {key.split('.', 1)[1]!r} to the {group} as a kwarg, write +{key}=VALUE"
    return message


def default_config() -> dict[str, Any]:
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        sequential = hydra_compose("config", overrides=["runner=sequential"])
        parallel = hydra_compose("config")
    merged = OmegaConf.merge(OmegaConf.to_container(sequential), OmegaConf.to_container(parallel))
    return OmegaConf.to_container(merged)


def flat_keys(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return [prefix] if prefix else []
    keys = [prefix] if prefix else []
    for key, value in tree.items():
        keys += flat_keys(value, f"{prefix}.{key}" if prefix else str(key))
    return keys

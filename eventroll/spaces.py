"""Gymnasium spaces as plain maps (recorded in ``run.start``), and back."""

from __future__ import annotations

from functools import singledispatch
from typing import Any

import numpy as np
from gymnasium import spaces

from eventroll.errors import EventError


@singledispatch
def describe_space(space: spaces.Space) -> dict[str, Any]:
    """A plain map that names the space's type and holds its parameters."""
    return {"type": type(space).__name__, "shape": list(space.shape or ()),
            "dtype": None if space.dtype is None else np.dtype(space.dtype).str}


@describe_space.register
def _(space: spaces.Box) -> dict[str, Any]:
    return {"type": "Box", "low": space.low, "high": space.high,
            "shape": list(space.shape), "dtype": space.dtype.str}


@describe_space.register
def _(space: spaces.Discrete) -> dict[str, Any]:
    return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}


@describe_space.register
def _(space: spaces.MultiDiscrete) -> dict[str, Any]:
    return {"type": "MultiDiscrete", "nvec": space.nvec, "start": space.start,
            "dtype": space.dtype.str}


@describe_space.register
def _(space: spaces.MultiBinary) -> dict[str, Any]:
    return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}


@describe_space.register
def _(space: spaces.Dict) -> dict[str, Any]:
    return {"type": "Dict", "spaces": {k: describe_space(s) for k, s in space.spaces.items()}}


@describe_space.register
def _(space: spaces.Tuple) -> dict[str, Any]:
    return {"type": "Tuple", "spaces": [describe_space(s) for s in space.spaces]}


@describe_space.register
def _(space: spaces.Text) -> dict[str, Any]:
    return {"type": "Text", "min_length": space.min_length, "max_length": space.max_length,
            "charset": space.characters}


def space_from_description(desc: dict[str, Any]) -> spaces.Space:
    """Rebuild a space from :func:`describe_space`'s map."""
    kind = desc.get("type")
    if kind == "Box":
        return spaces.Box(low=desc["low"], high=desc["high"], shape=tuple(desc["shape"]),
                          dtype=np.dtype(desc["dtype"]))
    if kind == "Discrete":
        return spaces.Discrete(desc["n"], start=desc["start"])
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(desc["nvec"], dtype=np.dtype(desc["dtype"]), start=desc["start"])
    if kind == "MultiBinary":
        return spaces.MultiBinary(desc["n"])
    if kind == "Dict":
        return spaces.Dict({k: space_from_description(v) for k, v in desc["spaces"].items()})
    if kind == "Tuple":
        return spaces.Tuple([space_from_description(v) for v in desc["spaces"]])
    if kind == "Text":
        return spaces.Text(desc["max_length"], min_length=desc["min_length"], charset=desc["charset"])
    raise EventError(f"cannot rebuild a space of type {kind!r}")

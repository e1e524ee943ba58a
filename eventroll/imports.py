"""Resolving objects named by import path (``pkg.mod:attr`` or ``pkg.mod.attr``)."""

from __future__ import annotations

import importlib
from typing import Any

from eventroll.errors import ConfigError


def import_object(path: str) -> Any:
    """Import ``pkg.mod:attr`` (or ``pkg.mod.attr``) and return the attribute."""
    if not isinstance(path, str) or not path:
        raise ConfigError(f"expected an import path like 'package.module:name', got {path!r}")
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{path!r} is not an import path; write it as 'package.module:name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} of {path!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r} "
                              f"(from {path!r})") from None
    return obj


def object_path(obj: Any) -> str:
    """The import path of a module-level class or function."""
    return f"{obj.__module__}:{obj.__qualname__}"

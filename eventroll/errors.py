"""Error types. Each also subclasses a builtin, so callers can catch either."""

from __future__ import annotations


class EventrollError(Exception):
    """Base class of every error eventroll raises on purpose."""


class ConfigError(EventrollError, ValueError):
    """A configuration value is wrong; the message names the key and the fix."""


class InputError(EventrollError, ValueError):
    """A path that is not an eventroll artifact: missing, or another kind of file."""


class CodecError(EventrollError, ValueError):
    """Bytes could not be encoded or decoded as eventroll events."""


class EventError(EventrollError, ValueError):
    """A decoded record does not follow the schema of its event kind."""


class BusError(EventrollError, RuntimeError):
    """The event bus failed: a timeout, a lost peer, or a gap in a stream."""



def one_line(exc: BaseException) -> str:
    """An exception's message on one line (tracebacks and reprs may span several)."""
    return " ".join(str(exc).split())

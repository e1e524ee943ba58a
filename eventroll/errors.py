"""Error types. Each also subclasses a builtin, so callers can catch either."""

from __future__ import annotations

import errno
import os
import re


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


FULL = {errno.ENOSPC: "the disk is full", errno.EFBIG: "a file size limit was hit",
        errno.EDQUOT: "the disk quota is used up"}


def write_error(exc: BaseException) -> str:
    """What went wrong writing a file, in a line: the disk or a limit, where the
    exception (an OSError, or HDF5's RuntimeError quoting an errno) says so."""
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None and (found := re.search(r"errno = (\d+)", str(exc))):
        code = int(found.group(1))
    if code in FULL:
        return f"{os.strerror(code)}: {FULL[code]}"
    text = one_line(exc)
    return f"{type(exc).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"

"""A function run in a forked child process, its answer sent back as msgpack through a pipe."""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

REAP_TIMEOUT = 5.0


class ChildFailed(Exception):
    """The child gave no answer: it ended without one, or ran out of time."""


class ForkedCall:
    """``function()``, a map of plain data, computed in a child forked at once: the caller
    forks before it makes any thread, socket or file the child would share, and the child
    makes its own. :meth:`answer` reads the map back (an exception in the child comes as
    ``{"error": one line}``); the child ignores SIGINT, which is the caller's to act on
    (:meth:`stop`). :attr:`pid` is the child's; without ``os.fork`` it is 0, and
    :meth:`answer` calls ``function`` itself."""

    def __init__(self, function: Callable[[], dict[str, Any]], name: str) -> None:
        self._function = function
        self.pid = 0
        self._read = -1  # the pipe's end the answer comes through, until it is read
        if hasattr(os, "fork"):
            self._read, write = os.pipe()
            self.pid = os.fork()
            if self.pid == 0:
                os.close(self._read)
                self._child(write, name)
            os.close(write)

    def _child(self, write: int, name: str) -> None:
        from eventroll import codec
        from eventroll.files import name_process

        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to act on
            name_process(name)
            answer = _called(self._function)
            with os.fdopen(write, "wb") as pipe:
                pipe.write(codec.encode(answer))
        finally:
            os._exit(0)

    def answer(self, timeout: float) -> dict[str, Any]:
        """The child's map, once it is whole; :class:`ChildFailed` if the child ended
        without one, or gave none within ``timeout`` seconds (it is then killed). The child
        is reaped."""
        if not self.pid:
            return self._function()
        from eventroll import codec

        try:
            data = self._receive(timeout)
        finally:
            self._reap()
        if data is None:
            raise ChildFailed(f"it gave no answer within {timeout:g} s")
        if not data:
            raise ChildFailed("it ended without an answer")
        try:
            return codec.decode(data)
        except Exception as exc:  # noqa: BLE001 - a child cut short mid-answer
            raise ChildFailed(f"its answer was cut short ({type(exc).__name__})") from None

    def stop(self) -> None:
        """Kill the child if it still runs, and reap it (its answer not wanted, or read)."""
        if self._read >= 0:  # never read: the pipe is closed here
            os.close(self._read)
            self._read = -1
        try:
            if self.pid and os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
        except ChildProcessError:  # reaped already
            pass

    def _receive(self, timeout: float) -> bytes | None:
        chunks, deadline = [], time.monotonic() + timeout
        read, self._read = self._read, -1
        with os.fdopen(read, "rb", buffering=0) as pipe:
            while (remaining := deadline - time.monotonic()) > 0:
                if not select.select([pipe], [], [], remaining)[0]:
                    break
                chunk = pipe.read(1 << 16)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        os.kill(self.pid, 9)
        return None

    def _reap(self) -> None:
        deadline = time.monotonic() + REAP_TIMEOUT
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
                return
            time.sleep(0.001)


def _called(function: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return function()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        return {"error": f"{type(exc).__name__}: {exc}"}

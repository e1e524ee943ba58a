"""Ctrl-C and SIGTERM during a run: the first stops it cleanly, the second at once.

The driver alone answers these signals; the run's other processes ignore them
(a Ctrl-C in a terminal reaches the whole process group), so that nothing dies
halfway through writing. The first SIGINT or SIGTERM asks the run to stop: no
new episode starts, the episodes being played end, every recorder flushes and
closes its artifact, and the run ends with status ``interrupted`` (exit status
130 for SIGINT, 143 for SIGTERM). A second one raises :class:`KeyboardInterrupt`
at once: the run's processes are killed, and the artifacts keep what they had
flushed, as after a crash.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interruption:
    """Watches for SIGINT and SIGTERM while entered (in the main thread; elsewhere the
    signals keep their handlers). ``on_stop`` callbacks run at the first one, in the
    signal handler: they must only set flags or counters."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._stops: list[Callable[[], None]] = []
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""

    def on_stop(self, stop: Callable[[], None]) -> None:
        """Call ``stop`` at the first signal (at once, if that has come already)."""
        self._stops.append(stop)
        if self.requested:
            stop()

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # the second: stop at once
        self.signal = signum
        for stop in self._stops:
            stop()

    def __enter__(self) -> "Interruption":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, *_: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def ignore_interruptions() -> None:
    """In a process the run starts: leave SIGINT and SIGTERM to the driver."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)

"""The supervisor's watch ends only once every worker's death has been handled."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from types import SimpleNamespace

from eventroll.runners.supervision import Supervisor


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _exit(code: int) -> None:
    sys.exit(code)


def _ended(target, *args):
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    process.join(10)
    return process


def test_an_unhandled_death_keeps_the_watch_going():
    """A worker killed after the others exited is still running business: handling its death
    may start a replacement, which must be watched (the run lost it when the watch ended on
    the last exit code alone)."""
    killed, finished = _ended(_die), _ended(_exit, 0)
    assert (killed.exitcode, finished.exitcode) == (-signal.SIGKILL, 0)
    supervisor = Supervisor(SimpleNamespace(workers=[finished, killed]), handout=None,
                            template=None, interruption=None)
    assert supervisor.running and supervisor.sentinels() == []


def test_workers_that_all_exited_cleanly_end_the_watch():
    supervisor = Supervisor(SimpleNamespace(workers=[_ended(_exit, 0), _ended(_exit, 0)]),
                            handout=None, template=None, interruption=None)
    assert not supervisor.running

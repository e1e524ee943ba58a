"""Workers that die: their streams ended for them, their episodes aborted or played again.

A worker killed by a signal (SIGKILL, the OOM killer, a crash in native code) or
exiting without ending its stream cannot say what it had done. The driver knows
which episodes it took and which it was playing (:class:`Handout`); the hub
knows which of them arrived whole (their ``episode.end`` did). With both, the
driver ends the dead worker's stream in its place, in its ``wseq`` order:

* ``worker.error`` naming the death;
* ``episode.lost`` for each of its episodes that did not arrive whole;
* ``episode.end`` (aborted) for the episode it was playing;
* ``worker.end``.

The episodes it had finished but whose records were still on their way are
played again, from their start, by a replacement worker (a new worker id), which
then takes new episodes like any other. Seeds make the replay the same episode.
The episode it was playing is aborted, or played again as well while
``runner.retries`` allows.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from multiprocessing.process import BaseProcess

import numpy as np

from eventroll.events import EpisodeEnd, EpisodeLost, WorkerEnd, WorkerError
from eventroll.runners.interruption import Interruption
from eventroll.runners.session import RunSession, exit_reason
from eventroll.runners.worker import Handout, WorkerSpec, worker_main

REPLACEMENTS = 4  # workers started in place of dead ones, at most, per run
ARRIVAL_GRACE = 0.2  # s: for what a dead worker had sent to reach the hub


class Supervisor:
    """Watches a parallel run's workers; takes over the stream of any that dies."""

    def __init__(self, session: RunSession, handout: Handout, template: WorkerSpec,
                 interruption: Interruption) -> None:
        self._session = session
        self._interruption = interruption
        self._handout = handout
        self._template = template
        self.workers: dict[int, BaseProcess] = dict(enumerate(session.workers))
        self._initial = len(self.workers)
        self._handled: set[int] = set()
        self._deaths: Counter[int] = Counter()  # per episode: workers that died playing it
        self.errors: list[str] = []

    @property
    def running(self) -> bool:
        """Whether a worker is alive or one has died and :meth:`check` has not yet handled
        it (its handling may start a replacement, which must be watched in turn)."""
        return any(process.exitcode is None
                   or (process.exitcode != 0 and worker not in self._handled)
                   for worker, process in self.workers.items())

    def sentinels(self) -> list[int]:
        """The sentinels of the workers still running: readable once one has ended."""
        return [process.sentinel for process in self.workers.values() if process.exitcode is None]

    def check(self) -> None:
        """Handle every worker that has exited with a failure since the last check."""
        for worker, process in list(self.workers.items()):
            if worker in self._handled or process.exitcode in (None, 0):
                continue
            self._handled.add(worker)
            self.errors.append(self._after_death(worker, process))

    def _after_death(self, worker: int, process: BaseProcess) -> str:
        died = f"worker {worker} (pid {process.pid}) {exit_reason(process.exitcode)}"
        time.sleep(ARRIVAL_GRACE)
        taken = np.flatnonzero(np.frombuffer(self._handout.owners, np.int16) == worker + 1)
        reply = self._session.lost(worker, [int(e) for e in taken])
        if reply["stream_ended"]:  # it said goodbye first: nothing of it is lost
            return died
        ended = set(reply["ended"])
        unfinished = [int(e) for e in taken if e not in ended]
        playing = int(self._handout.playing[worker])
        aborted = playing if playing in unfinished else None
        if aborted is not None:
            self._deaths[aborted] += 1
            if self._deaths[aborted] <= self._template.settings.retries:
                aborted = None  # played again, as a retry
        replay = [e for e in unfinished if e != aborted]
        replacement = self._replacement(replay)
        what = (f"episode {aborted} aborted" if aborted is not None else "no episode aborted")
        if replay:
            what += (f"; episodes {_listed(replay)} played again by worker {replacement}"
                     if replacement is not None else
                     f"; episodes {_listed(replay)} lost (no replacement worker left)")
        message = f"{died}: {what}"
        self._end_stream(worker, process.pid, reply["last_wseq"] + 1, unfinished, aborted,
                         len(ended), message)
        # only now, the dead worker's stream ended and acknowledged: the replacement's
        # records of the episodes it plays again come after their episode.lost
        if replacement is not None:
            spec = dataclasses.replace(self._template, worker=replacement, first=tuple(replay))
            self.workers[replacement] = self._session.spawn(f"eventroll-worker-{replacement}",
                                                            worker_main, (spec,))
        return message

    def _replacement(self, replay: list[int]) -> int | None:
        """The id of the worker to start in place of a dead one, to play ``replay`` first,
        then take new episodes; None if none is to be started."""
        left = replay or self._handout.counter.value < self._template.n_episodes
        if len(self.workers) - self._initial >= REPLACEMENTS or not left \
                or self._interruption.requested:
            return None
        return len(self.workers)

    def _end_stream(self, worker: int, pid: int, next_wseq: int, unfinished: list[int],
                    aborted: int | None, arrived: int, message: str) -> None:
        """Send what the dead worker could not, as it: its stream continues at ``next_wseq``."""
        publisher = self._session.source(worker, first_wseq=next_wseq)
        try:
            publisher.add(WorkerError(pid=pid, episode=aborted, error=message))
            for episode in unfinished:
                fate = "aborted" if episode == aborted else "played again"
                publisher.add(EpisodeLost(episode=episode, reason=f"worker {worker} died before "
                                          f"episode {episode} arrived whole; it is {fate}"))
            if aborted is not None:
                publisher.add(EpisodeEnd(episode=aborted, length=0, return_=0.0, terminated=False,
                                         truncated=False, aborted=True, wall_time=0.0))
            publisher.finish(WorkerEnd(pid=pid, episodes=arrived + (aborted is not None),
                                       last_wseq=publisher.next_wseq))
        finally:
            publisher.close()


def _listed(episodes: list[int], most: int = 10) -> str:
    shown = ", ".join(map(str, episodes[:most]))
    return shown + (f" and {len(episodes) - most} more" if len(episodes) > most else "")

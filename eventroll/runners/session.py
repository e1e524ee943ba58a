"""One run's processes: the hub, the durable recorders, the workers, and the driver.

A :class:`RunSession` is created per ``run_with`` call and owns everything it
starts: a private socket directory, the hub process, the recorder processes
(:func:`~eventroll.recorders.base.process_groups`) and one process per worker. All of them are started (forked, where the platform allows)
before this process creates any socket of its own, so no socket or context
crosses a fork. Workers then wait for :meth:`RunSession.go`, which the driver
gives once the hub has confirmed every durable subscriber.
Every process it starts is reaped when it closes, with a timeout and then a kill.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from eventroll import bus, codec
from eventroll.errors import BusError
from eventroll.events import Event
from eventroll.files import name_process, socket_directory
from eventroll.live import announce
from eventroll.memory import keep_freed_memory
from eventroll.runners.interruption import ignore_interruptions
from eventroll.recorders.base import RecorderSpec, member_reports, process_groups, recorder_main


@dataclass(frozen=True)
class Timeouts:
    """Every wait of a run, in seconds."""

    start: float = 60.0  # hub up and every durable subscriber registered
    stall: float = 120.0  # a peer accepting nothing while we wait to send
    finish: float = 60.0  # recorders finishing their artifacts
    reap: float = 10.0  # a process exiting once told to


@dataclass(frozen=True)
class ProcessSpec:
    """A further process of the run (a worker): ``target(*args)``."""

    name: str
    target: Any
    args: tuple


def process_context(start_method: str | None = None) -> BaseContext:
    """``fork`` where available (fast; the session forks before it opens any socket),
    else ``spawn``."""
    if start_method is None:
        start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(start_method)


def reap(processes: list[BaseProcess], timeout: float) -> None:
    """Join every process; kill any that outlives ``timeout`` (the run's processes ignore
    SIGTERM, :func:`child_main`)."""
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(2.0)


def exit_reason(exitcode: int) -> str:
    """How a process ended, from its exit code: 'killed by SIGKILL', 'exit status 3'."""
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def child_main(target: Any, *args: Any) -> None:
    """Entry point of every process a session starts: it takes the name of its role
    (:func:`name_process`), reuses the memory of large buffers (:func:`keep_freed_memory`),
    SIGINT and SIGTERM are the driver's to answer (:mod:`eventroll.runners.interruption`),
    then ``target(*args)``."""
    name_process(multiprocessing.current_process().name)
    keep_freed_memory()
    ignore_interruptions()
    target(*args)


class RunSession:
    """Starts the hub and the recorders, and connects the driver as a source."""

    def __init__(self, recorders: list[RecorderSpec], *, timeouts: Timeouts = Timeouts(),
                 start_method: str | None = None, remote: Any = None) -> None:
        """``remote``: an :class:`eventroll.remote.RemoteLive`, the live fan-out on TCP too."""
        self._remote = remote
        self.timeouts = timeouts
        self.context = process_context(start_method)
        self._recorder_specs = recorders
        self._socket_dir = socket_directory()
        self.endpoints = bus.Endpoints.in_directory(self._socket_dir)
        self.go_event = self.context.Event()
        self._processes: list[BaseProcess] = []
        self._hub: BaseProcess | None = None
        self._recorders: dict[str, BaseProcess] = {}
        self.workers: list[BaseProcess] = []
        self._worker_specs: list[ProcessSpec] = []
        self._client: bus.HubClient | None = None
        self.driver: bus.Publisher | None = None
        self._live: bus.LiveSubscription | None = None
        self._bus_file: str | None = None
        self._finished = False

    def start(self, workers: list[ProcessSpec] = ()) -> None:
        """Start every process, then connect and wait until the recorders are registered."""
        try:
            self._start(self._recorder_specs, workers)
        except BaseException:
            self.close()
            raise

    def go(self) -> None:
        """Let the workers begin."""
        self.go_event.set()

    def announce(self, run_dir: str, run_id: str) -> None:
        """Tell live subscribers where the run is (``bus.json`` in ``run_dir``, until
        :meth:`close`)."""
        self._bus_file = announce(run_dir, self.endpoints.live, run_id)

    def _spawn(self, name: str, target: Any, args: tuple) -> BaseProcess:
        process = self.context.Process(target=child_main, args=(target, *args), name=name,
                                       daemon=True)
        process.start()
        self._processes.append(process)
        return process

    def _start(self, recorders: list[RecorderSpec], workers: list[ProcessSpec]) -> None:
        hub = self._hub = self._spawn("eventroll-hub", bus.hub_main,
                                      (self.endpoints, self.timeouts.stall, self.timeouts.finish,
                                       self._remote))
        for name, specs in process_groups(recorders):
            self._recorders[name] = self._spawn(
                f"eventroll-{name}", recorder_main,
                (specs, self.endpoints.durable, name, self.timeouts.start))
        # keep the specs: spawned children unpickle their args (and the shared counter's
        # semaphore) after start() returns, and start() drops its own references
        self._worker_specs = list(workers)
        self.workers = [self._spawn(spec.name, spec.target, spec.args) for spec in workers]
        self._client = bus.HubClient(self.endpoints.control)
        self._wait_registered(hub, set(self._recorders))
        self._live = bus.LiveSubscription(self.endpoints.live, topics=(b"progress",))
        self.driver = self.source(-1)

    def source(self, worker: int, first_wseq: int = 0, *, pack: bool = True) -> bus.Publisher:
        """A publisher in this process for source ``worker`` (its first event numbered
        ``first_wseq``; ``pack``: packing whole episodes), with the session's timeouts."""
        return bus.Publisher(self.endpoints.ingress, worker, stall_timeout=self.timeouts.stall,
                             ack_timeout=self.timeouts.finish, first_wseq=first_wseq,
                             pack=pack)

    def spawn(self, name: str, target: Any, args: tuple) -> BaseProcess:
        """Start one more process of the run (a replacement worker), reaped with the rest.
        It is forked after this process opened its sockets; it must not touch them, and a
        worker does not: it opens its own."""
        return self._spawn(name, target, args)

    def track_episodes(self, n_episodes: int) -> None:
        """Have the hub keep which of the run's episodes have ended (for :meth:`lost`)."""
        self._request("track", episodes=n_episodes)

    def lost(self, worker: int, episodes: list[int]) -> dict[str, Any]:
        """Tell the hub that source ``worker`` died; it takes in what arrived of it and
        answers whether its stream had ended, its last wseq, and which of ``episodes``
        ended."""
        return self._request("lost", worker=worker, episodes=episodes)

    def _request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        reply = self._client.request(cmd, self.timeouts.stall, **fields)
        if "error" in reply:
            raise BusError(f"the hub refused {cmd!r}: {reply['error']}")
        return reply

    def _wait_registered(self, hub: BaseProcess, names: set[str]) -> None:
        deadline = time.monotonic() + self.timeouts.start
        while True:
            for process in [hub, *self._recorders.values()]:
                if process.exitcode is not None:
                    raise BusError(f"{process.name} exited with status {process.exitcode} "
                                   "before the run started")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BusError(f"the hub and the recorders {sorted(names)} were not ready within "
                               f"{self.timeouts.start:g} s")
            try:
                status = self._client.request("status", min(remaining, 1.0))
            except BusError:
                self._client.close()  # a DEALER may hold an unanswered request; start afresh
                self._client = bus.HubClient(self.endpoints.control)
                continue
            if names <= set(status["subscribers"]):
                return
            time.sleep(0.02)

    def emit(self, event: Event) -> None:
        """Send one event from the driver and wait until the hub has it, so it comes
        before anything a worker sends afterwards."""
        self.driver.add(event)
        self.driver.sync()

    def status(self) -> dict[str, Any]:
        return self._request("status")

    def progress(self, timeout: float, wake: Iterable[int] = ()) -> dict[str, Any] | None:
        """The hub's latest progress counters, or None if none arrived in ``timeout``
        (or before one of the file descriptors ``wake`` became readable)."""
        latest = None
        frames = self._live.receive(timeout, wake)
        while frames is not None:
            if frames[0] == b"progress" and len(frames) == 2:
                latest = codec.decode(frames[1])
            frames = self._live.receive(0)
        return latest

    def check(self) -> None:
        """Raise :class:`BusError` if the hub has died: nothing can reach the recorders."""
        hub = self._hub
        if hub is not None and hub.exitcode is not None and not self._finished:
            raise BusError(f"the hub (pid {hub.pid}) {exit_reason(hub.exitcode)} mid-run: the "
                           "run stopped; every artifact holds what it had flushed, and `eventroll "
                           "replay` rebuilds trajectories and statistics from the event log")

    def finish(self, last: Event) -> dict[str, Any]:
        """End the driver's stream with ``last``, finish the hub and the recorders."""
        self.driver.finish(last)
        report = self._client.request("finish", self.timeouts.finish + self.timeouts.stall)
        self._finished = True
        durable: dict[str, Any] = {}
        for name, process_report in report["durable"].items():
            durable.update(member_reports(name, process_report))
        report["durable"] = durable
        reap(self._processes, self.timeouts.reap)
        for name, process in self._recorders.items():
            if process.exitcode != 0:
                rebuild = ("" if name == "eventlog" else "; `eventroll replay` rebuilds them from "
                           "the event log")
                report["errors"].append(
                    f"recorder process {name!r} {exit_reason(process.exitcode)}: its artifacts "
                    f"hold what it had flushed{rebuild}")
        return report

    def close(self, *, at_once: bool = False) -> None:
        """Close the driver's sockets and reap every process; ``at_once`` kills them
        without waiting (a second Ctrl-C)."""
        if self._bus_file is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._bus_file)
            self._bus_file = None
        for endpoint in (self.driver, self._live, self._client):
            if endpoint is not None:
                endpoint.close()
        self.driver = self._live = self._client = None
        # an unfinished hub waits for its "finish" forever: stop it at once
        reap(self._processes, 0.0 if at_once else self.timeouts.reap if self._finished else 0.5)
        shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __enter__(self) -> "RunSession":
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(at_once=exc_type is not None and issubclass(exc_type, KeyboardInterrupt))

"""The event bus: a hub process, event sources and durable subscribers.

Every socket here is created by the process that uses it, inside that process.

Wire protocol (multipart ZeroMQ messages)::

  source  -> hub  ingress  ROUTER: [HEADER, BODY]             reply on END/ACK: [b"ack", NEXT]
  durable -> hub  durable  ROUTER: [b"register", name]         reply: [b"confirm"]
  hub -> durable                 : [b"events", SEQ, HEADER, BODY] | [b"fin", U64]
  durable -> hub                 : [b"done", report]
  hub     -> live PUB            : [b"events", SEQ, HEADER, BODY] | [b"progress", map]
  driver  -> hub  control ROUTER : [request map]                reply: [reply map]

HEADER carries the source's worker id, the worker sequence number (``wseq``) of
the first event, the number of events, steps and episode ends in the message,
and flags (END marks the source's last message), followed by the index of each
episode that ends in the message (int64 each): the hub learns which episodes
ended without decoding BODY, so that once a worker is lost the driver can ask
which of its episodes never arrived whole. SEQ is the global sequence
number the hub gave the first event; the events of a message get consecutive
numbers. NEXT is the wseq the hub expects next from that source, i.e. one past
the last event it has forwarded. BODY holds the message's events, one msgpack map
after the other, a map of whole episodes packed standing for their events
(:mod:`eventroll.packing`; a message without events, an END or ACK alone, has no BODY):
one frame per message, however many events it carries, since every frame costs
each socket on its way a system call. The hub forwards BODY untouched, so it
never decodes it; a subscriber splits it (:func:`eventroll.codec.split_records`).
"""

from __future__ import annotations

import os
import struct
import time
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import zmq

from eventroll import codec
from eventroll.errors import BusError, CodecError
from eventroll.events import DRIVER, Event
from eventroll.packing import EpisodePack
from eventroll.stream import IndexSet, range_message

HEADER = struct.Struct("<BBiQIIII")  # version, flags, worker, first wseq, events, steps, ends, aborted
SEQ = struct.Struct("<Q")
U64 = struct.Struct("<Q")
VERSION = 1
FLAG_END = 1  # the source's last message
FLAG_ACK = 2  # the source waits for the hub's acknowledgement

LINGER_MS = 2000
# High-water marks, in messages, each of at most about 256 KiB (BusSink.MESSAGE_BYTES):
# they bound what a pipe holds at each end, images included
SOURCE_HWM = 16  # messages queued per source before it blocks (backpressure)
DURABLE_HWM = 32  # messages queued for a durable subscriber before the hub waits for it
LIVE_HWM = 64  # messages held for a live subscriber (up to 262,144 CartPole steps); it reads
# what it missed from the event log (one following an endpoint has none: it fails on a gap)
POLL_MS = 50
MAX_SOURCES = 4096  # workers (replacements included) and the driver: more is a hostile peer
MAX_ERRORS = 100  # error messages the hub keeps; it counts every rejection
PROGRESS_INTERVAL = 0.1
BACKOFF_MIN = 0.0002  # s: the first wait of the hub for a full subscriber, doubling
BACKOFF_MAX = 0.005


@dataclass(frozen=True)
class Endpoints:
    """Where the hub of one run listens."""

    ingress: str
    durable: str
    live: str
    control: str

    @classmethod
    def in_directory(cls, directory: str) -> "Endpoints":
        """ipc endpoints in a (short) directory, one socket file each."""
        return cls(*(f"ipc://{os.path.join(directory, name)}"
                     for name in ("ingress", "durable", "live", "control")))


@dataclass(frozen=True)
class Header:
    flags: int
    worker: int
    first_wseq: int
    n_events: int
    n_steps: int
    n_episode_ends: int
    n_aborted: int
    ended: tuple[int, ...] = ()  # the episodes that end in the message

    @classmethod
    def unpack(cls, data: bytes) -> "Header":
        if len(data) < HEADER.size:
            raise CodecError(f"message header has {len(data)} bytes, expected {HEADER.size} "
                             "and 8 per episode end")
        version, *rest = HEADER.unpack_from(data)
        if version != VERSION:
            raise CodecError(f"message header version {version}, expected {VERSION}")
        n_ends = rest[5]
        if len(data) != HEADER.size + 8 * n_ends:
            raise CodecError(f"message header has {len(data)} bytes, expected {HEADER.size} "
                             f"and 8 for each of its {n_ends} episode ends")
        return cls(*rest, struct.unpack_from(f"<{n_ends}q", data, HEADER.size))

    @staticmethod
    def pack(flags: int, worker: int, first_wseq: int, n_events: int, n_steps: int,
             ended: list[int], n_aborted: int) -> bytes:
        return (HEADER.pack(VERSION, flags, worker, first_wseq, n_events, n_steps, len(ended),
                            n_aborted) + struct.pack(f"<{len(ended)}q", *ended))

    @property
    def last_wseq(self) -> int:
        return self.first_wseq + self.n_events - 1


def _socket(ctx: zmq.Context, kind: int, **options: int) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, LINGER_MS)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name), value)
    return sock


def _poll_recv(sock: zmq.Socket, timeout: float, *, copy: bool = True) -> Any:
    """Receive one multipart message, or None after ``timeout`` seconds; ``copy=False``:
    as zmq.Frame s, received without a copy."""
    if sock.poll(int(timeout * 1000), zmq.POLLIN):
        return sock.recv_multipart(copy=copy)
    return None


def _always() -> bool:
    return True


Frames = list[bytes | zmq.Frame]  # a zmq.Frame when received without a copy (copy=False)


def _bytes(frame: bytes | zmq.Frame) -> bytes:
    return frame.bytes if isinstance(frame, zmq.Frame) else frame


def _send(sock: zmq.Socket, frames: Frames, timeout: float, what: str,
          alive: Callable[[], bool] = _always) -> None:
    """Send, blocking at most ``timeout`` seconds while the peer is behind, and no longer
    than ``alive()`` holds. Large frames go without a copy (as zmq.Frame they are shared,
    not copied, however many sockets they go to)."""
    deadline = time.monotonic() + timeout
    backoff = BACKOFF_MIN
    while True:
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            return
        except zmq.Again:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BusError(f"{what}: the peer accepted nothing for {timeout:g} s") from None
            if not alive():
                raise BusError(f"{what}: the run's driver is gone") from None
            if sock.type == zmq.ROUTER:
                # a ROUTER polls as writable even when one peer's pipe is full: sleep, or
                # the hub would spin and take the CPU the slow subscriber needs
                time.sleep(min(backoff, remaining))
                backoff = min(backoff * 2, BACKOFF_MAX)
            else:
                sock.poll(min(int(remaining * 1000) + 1, 500), zmq.POLLOUT)


class Publisher:
    """One source's sending side: batches encoded events and sends them to the hub.

    ``add`` stamps the envelope and encodes; ``flush`` sends what is pending as
    one message, blocking (up to ``stall_timeout``) while the hub is behind;
    ``finish`` sends the last event with the END flag and waits for the hub's
    acknowledgement, so nothing is lost when the process exits right after.
    """

    def __init__(self, endpoint: str, worker: int, *, stall_timeout: float = 120.0,
                 ack_timeout: float = 60.0, alive: Callable[[], bool] = _always,
                 first_wseq: int = 0, pack: bool = True) -> None:
        self.worker = worker
        self._pack = EpisodePack() if pack else None
        self._alive = alive
        self._stall_timeout = stall_timeout
        self._ack_timeout = ack_timeout
        self._ctx = zmq.Context()
        self._sock = _socket(self._ctx, zmq.DEALER, SNDHWM=SOURCE_HWM)
        self._sock.connect(endpoint)
        self._next_wseq = first_wseq
        self._new_message()

    def _new_message(self) -> None:
        """Start the next message empty: it begins at the next wseq."""
        self._first_wseq = self._next_wseq
        self._records: list[bytes] = []
        self._ended: list[int] = []  # episodes whose episode.end is pending
        self._steps = self._aborted = self._bytes = 0
        self.last_flush = time.monotonic()

    @property
    def next_wseq(self) -> int:
        return self._next_wseq

    @property
    def pending_steps(self) -> int:
        """Steps added and not yet sent."""
        return self._steps

    @property
    def pending_bytes(self) -> int:
        """Encoded bytes added and not yet sent (about as many for events held to pack)."""
        return self._bytes + (self._pack.nbytes if self._pack is not None else 0)

    def add(self, event: Event) -> None:
        event.worker = self.worker
        event.wseq = self._next_wseq
        event.time = time.time()
        if self._pack is None or not self._pack.take(event):
            self._release()  # what the pack holds came first
            record = codec.encode(event.to_record())
            self._records.append(record)
            self._bytes += len(record)
        self._next_wseq += 1
        kind = event.KIND
        if kind == "step.batch":
            self._steps += event.n  # type: ignore[attr-defined]
        elif kind == "episode.end":
            self._ended.append(event.episode)  # type: ignore[attr-defined]
            self._aborted += bool(event.aborted)  # type: ignore[attr-defined]

    def _release(self) -> None:
        """Encode what the pack holds into the message."""
        if self._pack is not None:
            records = self._pack.records()
            self._records += records
            self._bytes += sum(map(len, records))

    def flush(self, *, end: bool = False, ack: bool = False) -> None:
        self._release()
        records = self._records
        if not records and not (end or ack):
            return
        flags = (FLAG_END if end else 0) | (FLAG_ACK if ack else 0)
        header = Header.pack(flags, self.worker, self._first_wseq,
                             self._next_wseq - self._first_wseq, self._steps, self._ended,
                             self._aborted)
        _send(self._sock, [header, b"".join(records)] if records else [header],
              self._stall_timeout, f"worker {self.worker} sending to the hub", self._alive)
        self._new_message()

    def sync(self) -> None:
        """Send what is pending and wait until the hub has forwarded it."""
        self.flush(ack=True)
        self._wait_ack("events")

    def finish(self, last: Event) -> None:
        """Send ``last`` as the end of this source's stream and wait for the ack."""
        self.add(last)
        self.flush(end=True)
        self._wait_ack("the end of the stream")

    def _wait_ack(self, what: str) -> None:
        deadline = time.monotonic() + self._ack_timeout
        reply = None
        while reply is None and time.monotonic() < deadline and self._alive():
            reply = _poll_recv(self._sock, min(0.5, max(deadline - time.monotonic(), 0.0)))
        if reply is None:
            raise BusError(f"the hub did not acknowledge {what} of worker {self.worker} "
                           f"within {self._ack_timeout:g} s")
        if reply != [b"ack", U64.pack(self._next_wseq)]:
            raise BusError(f"the hub acknowledged worker {self.worker}'s events with {reply!r:.80}")

    def close(self) -> None:
        self._sock.close()
        self._ctx.term()


@dataclass
class _SourceState:
    expected_wseq: int = 0
    ended: bool = False
    lost: bool = False  # the driver declared the source dead; its stream ends where it broke
    connection: bytes = b""  # the identity of the socket it sent its last message from


class EpisodeEnds:
    """Which of a run's ``n`` episodes have ended, as one bit each."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._ended = IndexSet(n)

    def check(self, episodes: tuple[int, ...]) -> None:
        for episode in episodes:
            if not 0 <= episode < self.n:
                raise CodecError(f"episode end {episode} out of the run's range 0..{self.n - 1}")

    def add(self, episodes: tuple[int, ...]) -> None:
        for episode in episodes:
            self._ended.add(episode)

    def __contains__(self, episode: int) -> bool:
        return episode < self.n and episode in self._ended


@dataclass
class HubReport:
    """What the hub saw, returned to the driver when the run finishes."""

    events: int = 0
    steps: int = 0
    episode_ends: int = 0
    aborted: int = 0
    sources: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    rejected: int = 0
    live_dropped: int = 0
    durable: dict[str, Any] = field(default_factory=dict)

    def note(self, error: str) -> bool:
        """Keep ``error`` if fewer than ``MAX_ERRORS`` are kept (a hostile peer must not
        grow the hub); whether it was kept."""
        if len(self.errors) >= MAX_ERRORS:
            return False
        self.errors.append(error)
        return True

    def to_map(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self),
                "sources": {str(k): v for k, v in self.sources.items()}}


class Hub:
    """Receives from sources, stamps global sequence numbers, fans out.

    Durable subscribers get every message (the hub blocks on them, and so the
    sources block on the hub); the live PUB socket never blocks and may drop.
    """

    def __init__(self, endpoints: Endpoints, *, stall_timeout: float = 120.0,
                 finish_timeout: float = 60.0, remote: Any = None) -> None:
        self._stall_timeout = stall_timeout
        self._finish_timeout = finish_timeout
        self._ctx = zmq.Context()
        self._ingress = _socket(self._ctx, zmq.ROUTER, RCVHWM=SOURCE_HWM)
        self._durable = _socket(self._ctx, zmq.ROUTER, ROUTER_MANDATORY=1, SNDHWM=DURABLE_HWM)
        self._live = _socket(self._ctx, zmq.PUB, SNDHWM=LIVE_HWM)
        self._control = _socket(self._ctx, zmq.ROUTER)
        for sock, endpoint in ((self._ingress, endpoints.ingress), (self._durable, endpoints.durable),
                               (self._live, endpoints.live), (self._control, endpoints.control)):
            sock.bind(endpoint)
        self._publishers = [self._live]  # the live fan-out: ipc, and TCP when asked
        self._authenticator = None
        if remote is not None:
            from eventroll.remote import remote_publisher

            sock, self._authenticator = remote_publisher(self._ctx, remote, LIVE_HWM)
            self._publishers.append(sock)
        self._subscribers: dict[bytes, str] = {}
        self._sources: dict[int, _SourceState] = {}
        self._seq = 0
        self._ends: EpisodeEnds | None = None  # tracked once the driver says how many
        self._dead: set[bytes] = set()  # connections of sources the driver declared lost
        self._report = HubReport()
        self._finished = False
        self._last_progress = 0.0

    # -- the loop --------------------------------------------------------------
    def serve(self) -> None:
        poller = zmq.Poller()
        for sock in (self._ingress, self._durable, self._control):
            poller.register(sock, zmq.POLLIN)
        parent = os.getppid()
        try:
            while not self._finished:
                ready = dict(poller.poll(POLL_MS))
                if not ready and os.getppid() != parent:
                    return  # the driver died; its children must not outlive it
                if self._control in ready:
                    self._on_control(*self._control.recv_multipart())
                if self._durable in ready:
                    self._on_durable(self._durable.recv_multipart())
                if self._ingress in ready:
                    for _ in range(64):  # drain a burst, but keep control responsive
                        try:
                            self._on_ingress(self._ingress.recv_multipart(zmq.NOBLOCK,
                                                                          copy=False))
                        except zmq.Again:
                            break
                self._publish_progress()
        finally:
            if self._authenticator is not None:
                self._authenticator.stop()
            # the local live fan-out drops what its subscribers have not taken (they read it
            # from the log; a stalled one must not hold the hub up); a remote one has no log
            self._live.close(linger=0)
            for sock in (self._ingress, self._durable, self._control, *self._publishers[1:]):
                sock.close()
            self._ctx.term()

    def _on_ingress(self, frames: list[zmq.Frame]) -> None:
        """One message from a source, received without a copy: its BODY is forwarded as
        it came, shared by every socket it goes to."""
        identity, payload = frames[0].bytes, frames[1:]
        try:
            header = Header.unpack(payload[0].bytes if payload else b"")
            if len(payload) != (2 if header.n_events else 1):
                raise CodecError(f"a message of {header.n_events} events has {len(payload)} "
                                 f"frames, expected {2 if header.n_events else 1}")
            if self._ends is not None:
                self._ends.check(header.ended)
        except CodecError as exc:
            self._reject(f"ingress: {exc}")
            return
        if identity in self._dead:
            self._reject(f"ingress: worker {header.worker} sent from a connection of a source "
                         "declared lost (bytes still on their way when it died)")
            return
        source = self._sources.get(header.worker)
        if source is None:
            if len(self._sources) >= MAX_SOURCES and header.worker != DRIVER:
                self._reject(f"ingress: worker {header.worker} would be source number "
                             f"{MAX_SOURCES + 1}; a run has at most {MAX_SOURCES}")
                return
            source = self._sources[header.worker] = _SourceState()
        source.connection = identity
        if source.ended:
            self._reject(f"ingress: worker {header.worker} sent after the end of its stream")
            return
        if header.n_events and header.first_wseq != source.expected_wseq:
            self._report.note(range_message(
                f"worker {header.worker}", source.expected_wseq, header.first_wseq, "wseq"))
        if header.n_events:
            source.expected_wseq = header.last_wseq + 1
            self._forward(payload, header.n_events)
            self._report.steps += header.n_steps
            self._report.episode_ends += header.n_episode_ends
            self._report.aborted += header.n_aborted
            if self._ends is not None:
                self._ends.add(header.ended)
        if header.flags & FLAG_END:
            source.ended = True
        if header.flags & (FLAG_END | FLAG_ACK):
            self._ingress.send_multipart([identity, b"ack", U64.pack(source.expected_wseq)])

    def _forward(self, payload: Frames, n_events: int) -> None:
        frames = [b"events", SEQ.pack(self._seq), *payload]
        self._seq += n_events
        self._report.events += n_events
        for identity in list(self._subscribers):
            self._send_durable(identity, frames)
        self._report.live_dropped += self._publish(frames)

    def _publish(self, frames: Frames) -> int:
        """Send ``frames`` on the live fan-out (ipc, and TCP if asked) without waiting;
        how many of its sockets dropped them."""
        dropped = 0
        for publisher in self._publishers:
            try:
                publisher.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                dropped += 1
        return dropped

    def _send_durable(self, identity: bytes, frames: Frames) -> None:
        name = self._subscribers[identity]
        try:
            _send(self._durable, [identity, *frames], self._stall_timeout,
                  f"durable subscriber {name!r}")
        except (BusError, zmq.ZMQError) as exc:
            self._report.errors.append(f"durable subscriber {name!r} dropped: {exc}")
            del self._subscribers[identity]

    def _reject(self, reason: str) -> None:
        self._report.rejected += 1
        self._report.note(f"rejected a malformed message ({reason})")

    def _publish_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        progress = {"events": self._report.events, "steps": self._report.steps,
                    "episode_ends": self._report.episode_ends, "aborted": self._report.aborted}
        self._publish([b"progress", codec.encode(progress)])

    # -- durable subscribers -------------------------------------------------------
    def _on_durable(self, frames: list[bytes]) -> None:
        if len(frames) == 3 and frames[1] == b"register":
            identity, _, name = frames
            self._subscribers[identity] = name.decode("utf-8", "replace")
            self._durable.send_multipart([identity, b"confirm"])
        else:
            self._reject(f"durable: unexpected {frames[1:2]!r:.40}")

    def _finish_durables(self) -> None:
        """Send FIN to every durable subscriber and collect their reports."""
        waiting = dict(self._subscribers)
        for identity in waiting:
            self._send_durable(identity, [b"fin", U64.pack(self._seq)])
        deadline = time.monotonic() + self._finish_timeout
        while waiting and time.monotonic() < deadline:
            frames = _poll_recv(self._durable, min(0.5, max(deadline - time.monotonic(), 0.0)))
            if frames is None or len(frames) != 3 or frames[1] != b"done":
                continue
            name = waiting.pop(frames[0], None)
            if name is not None:
                try:
                    self._report.durable[name] = codec.decode(frames[2])
                except CodecError as exc:
                    self._report.errors.append(f"durable subscriber {name!r}: bad report ({exc})")
        for name in waiting.values():
            self._report.errors.append(f"durable subscriber {name!r} did not finish within "
                                       f"{self._finish_timeout:g} s")

    # -- control ------------------------------------------------------------------
    def _on_control(self, identity: bytes, request: bytes = b"", *_: bytes) -> None:
        try:
            message = codec.decode(request)
            command = message.get("cmd")
        except (CodecError, AttributeError):
            message, command = {}, None
        try:
            reply = self._control_reply(command, message)
        except (KeyError, TypeError, ValueError) as exc:
            reply = {"error": f"bad control request {command!r:.20}: {type(exc).__name__}: {exc}"}
        self._control.send_multipart([identity, codec.encode(reply)])

    def _control_reply(self, command: Any, message: dict[str, Any]) -> dict[str, Any]:
        if command == "status":
            return {**self._report.to_map(), "subscribers": sorted(self._subscribers.values())}
        if command == "track":
            self._ends = EpisodeEnds(int(message["episodes"]))
            return {"tracking": self._ends.n}
        if command == "lost":
            return self._lost(int(message["worker"]), message.get("episodes", []))
        if command == "finish":
            self._finish_sources()
            self._finish_durables()
            self._finished = True
            return self._report.to_map()
        return {"error": f"unknown control request {command!r:.60}"}

    def _lost(self, worker: int, episodes: list[int]) -> dict[str, Any]:
        """The driver found source ``worker`` dead: take in what it sent before it died
        and say which of ``episodes`` (those it took) ended; the driver then ends the
        stream in its place."""
        while True:
            try:
                self._on_ingress(self._ingress.recv_multipart(zmq.NOBLOCK, copy=False))
            except zmq.Again:
                break
        state = self._sources.setdefault(worker, _SourceState())
        state.lost = True
        # what arrives from its connection from now on is refused: the answer below is final
        self._dead.add(state.connection)
        ends = self._ends
        return {"stream_ended": state.ended, "last_wseq": state.expected_wseq - 1,
                "ended": [] if ends is None else [e for e in episodes if e in ends]}

    def _finish_sources(self) -> None:
        untold = 0
        for worker, state in sorted(self._sources.items()):
            self._report.sources[worker] = {"last_wseq": state.expected_wseq - 1,
                                            "ended": state.ended, "lost": state.lost}
            if not state.ended:
                untold += not self._report.note(f"worker {worker}: stream ended without its "
                                                f"end marker after wseq {state.expected_wseq - 1}")
        if untold:
            self._report.errors.append(f"{untold} more sources ended without their end marker")


def hub_main(endpoints: Endpoints, stall_timeout: float, finish_timeout: float,
             remote: Any = None) -> None:
    """Process entry point of the hub (``remote``: an :class:`eventroll.remote.RemoteLive`)."""
    Hub(endpoints, stall_timeout=stall_timeout, finish_timeout=finish_timeout,
        remote=remote).serve()


class HubClient:
    """The driver's control connection to the hub."""

    def __init__(self, endpoint: str) -> None:
        self._ctx = zmq.Context()
        self._sock = _socket(self._ctx, zmq.DEALER)
        self._sock.connect(endpoint)

    def request(self, cmd: str, timeout: float, **fields: Any) -> dict[str, Any]:
        self._sock.send(codec.encode({"cmd": cmd, **fields}))
        reply = _poll_recv(self._sock, timeout)
        if reply is None:
            raise BusError(f"the hub did not answer {cmd!r} within {timeout:g} s")
        return codec.decode(reply[0])

    def close(self) -> None:
        self._sock.close(linger=0)
        self._ctx.term()


@dataclass(frozen=True)
class Delivery:
    """One message as a durable subscriber receives it: ``n_events`` events, numbered
    from ``first_seq``, in ``body`` (see the wire protocol above)."""

    first_seq: int
    n_events: int
    body: bytes | memoryview  # a view of the frame when received without a copy

    @classmethod
    def from_frames(cls, frames: Frames) -> "Delivery":
        """The message ``[b"events", SEQ, HEADER, BODY]`` (HEADER checked by the hub)."""
        kind = _bytes(frames[0])
        if len(frames) != 4 or kind != b"events" or len(frames[1]) != SEQ.size:
            raise CodecError(f"unexpected message from the hub: {kind!r:.40}")
        (first_seq,) = SEQ.unpack(_bytes(frames[1]))
        body = frames[3].buffer if isinstance(frames[3], zmq.Frame) else frames[3]
        return cls(first_seq, Header.unpack(_bytes(frames[2])).n_events, body)


class DurableSubscription:
    """A durable subscriber's connection: registers, then receives every message."""

    def __init__(self, endpoint: str, name: str, *, timeout: float = 30.0) -> None:
        self.name = name
        self._ctx = zmq.Context()
        self._sock = _socket(self._ctx, zmq.DEALER, RCVHWM=DURABLE_HWM)
        self._sock.connect(endpoint)
        self._sock.send_multipart([b"register", name.encode()])
        if _poll_recv(self._sock, timeout) != [b"confirm"]:
            self.close()
            raise BusError(f"the hub did not confirm durable subscriber {name!r} within {timeout:g} s")
        self.total: int | None = None

    def receive(self, timeout: float) -> Delivery | None:
        """The next message, or None on a timeout or at the end (then ``total`` is set).
        Its body is received without a copy."""
        frames = _poll_recv(self._sock, timeout, copy=False)
        if frames is None:
            return None
        if len(frames) == 2 and frames[0].bytes == b"fin" and len(frames[1]) == U64.size:
            (self.total,) = U64.unpack(frames[1].bytes)
            return None
        return Delivery.from_frames(frames)

    def done(self, report: dict[str, Any]) -> None:
        self._sock.send_multipart([b"done", codec.encode(report)])

    def close(self) -> None:
        self._sock.close()
        self._ctx.term()


class LiveSubscription:
    """A live subscriber to the hub's PUB socket: may miss messages, never slows the run."""

    def __init__(self, endpoint: str, topics: tuple[bytes, ...] = (b"events", b"progress"),
                 curve: tuple[str, str] | None = None) -> None:
        """``curve``: (the server's public key file, this client's secret key file) for a
        run that listens with CURVE (:mod:`eventroll.remote`)."""
        self._ctx = zmq.Context()
        self._sock = _socket(self._ctx, zmq.SUB, RCVHWM=LIVE_HWM)
        if curve is not None:
            from eventroll.remote import curve_client

            curve_client(self._sock, *curve)
        for topic in topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, topic)
        self._sock.connect(endpoint)

    def receive(self, timeout: float, wake: Iterable[int] = ()) -> list[bytes] | None:
        """One message, or None after ``timeout`` seconds or as soon as one of the file
        descriptors ``wake`` is readable (the sentinel of a process that has ended)."""
        if not wake:
            return _poll_recv(self._sock, timeout)
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        for fd in wake:
            poller.register(fd, zmq.POLLIN)
        if self._sock in dict(poller.poll(int(timeout * 1000))):
            return self._sock.recv_multipart()
        return None

    def close(self) -> None:
        self._sock.close(linger=0)
        self._ctx.term()

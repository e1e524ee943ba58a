"""The bus with real processes and sockets: gaps are named, garbage is refused and counted."""

from __future__ import annotations

import socket
import struct
import time

import pytest
import zmq

from eventroll import bus, codec, read_events
from eventroll.events import Custom, EpisodeEnd, RunEnd
from eventroll.recorders.eventlog import EventLogRecorder
from eventroll.runners.session import RecorderSpec, RunSession, Timeouts

TIMEOUTS = Timeouts(start=30, stall=10, finish=10, reap=5)


def foreign_source(session: RunSession) -> tuple[zmq.Context, zmq.Socket]:
    """A socket of another process's kind, connected to the hub's ingress: what it sends
    is up to the test."""
    context = zmq.Context()
    raw = context.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 1000)
    raw.connect(session.endpoints.ingress)
    return context, raw


def close(context: zmq.Context, raw: zmq.Socket) -> None:
    raw.close()
    context.term()


def session_with_log(tmp_path) -> tuple[RunSession, str]:
    path = str(tmp_path / "events.msgpack")
    session = RunSession([RecorderSpec("eventlog", EventLogRecorder, {"path": path, "run_id": "t"})],
                         timeouts=TIMEOUTS)
    session.start()
    session.go()
    return session, path


def run_end() -> RunEnd:
    return RunEnd(run_id="t", status="completed", episodes=0, aborted=0, steps=0, wall_time=0.0)


class TestGaps:
    def test_a_gap_names_the_worker_and_the_range(self, tmp_path):
        """Events missing from a worker's stream are reported with worker id and wseq range."""
        session, path = session_with_log(tmp_path)
        with session:
            source = bus.Publisher(session.endpoints.ingress, 5, stall_timeout=5, ack_timeout=5)
            try:
                for i in range(2):
                    source.add(Custom(name="x", fields={"i": i}))
                source.flush()
                source._next_wseq = source._first_wseq = 5  # lose wseq 2..4 on purpose
                source.finish(Custom(name="x", fields={"i": 5}))
            finally:
                source.close()
            report = session.finish(run_end())
        assert "worker 5: events wseq 2..4 missing" in report["errors"]
        recorder = report["durable"]["eventlog"]
        assert "worker 5: events wseq 2..4 missing" in recorder["errors"]
        assert [e.wseq for e in read_events(path) if e.worker == 5] == [0, 1, 5]

    def test_a_stream_without_its_end_marker_is_reported(self, tmp_path):
        """A source that stops without its end marker is named in the hub's report."""
        session, _ = session_with_log(tmp_path)
        with session:
            source = bus.Publisher(session.endpoints.ingress, 3, stall_timeout=5, ack_timeout=5)
            source.add(Custom(name="x"))
            source.flush()
            source.close()
            report = session.finish(run_end())
        assert any("worker 3: stream ended without its end marker after wseq 0" in e
                   for e in report["errors"])


class TestHostileInput:
    def test_malformed_messages_are_refused_and_counted(self, tmp_path):
        """Garbage to the hub and garbage events to the recorder are refused, counted, not logged;
        both keep working and the good events are recorded."""
        session, path = session_with_log(tmp_path)
        with session:
            context, raw = foreign_source(session)
            raw.send_multipart([b"garbage"])  # a header of the wrong size
            header = bus.HEADER.pack(bus.VERSION, 0, 9, 0, 2, 0, 0, 0)
            raw.send_multipart([header, b"\xc1\xc1", b"\x81\xa4kind\xa4nope"])  # 2 bodies
            one = bus.HEADER.pack(bus.VERSION, 0, 9, 0, 1, 0, 0, 0)
            raw.send_multipart([one, b"\xc1\xc1"])  # bad msgpack
            raw.send_multipart([bus.HEADER.pack(bus.VERSION, 0, 9, 1, 1, 0, 0, 0),
                                b"\x81\xa4kind\xa4nope"])  # bad kind
            good = codec.encode(Custom(name="lost", worker=9, wseq=2).to_record())
            raw.send_multipart([bus.HEADER.pack(bus.VERSION, 0, 9, 2, 2, 0, 0, 0), good])  # 1 of 2
            close(context, raw)
            source = bus.Publisher(session.endpoints.ingress, 0, stall_timeout=5, ack_timeout=5)
            try:
                source.finish(Custom(name="good"))
            finally:
                source.close()
            report = session.finish(run_end())
        assert report["rejected"] == 2
        recorder = report["durable"]["eventlog"]
        assert recorder["rejected"] == 3
        assert any("unknown event kind 'nope'" in e for e in recorder["errors"])
        assert any("header announces 2 events, its body holds 1" in e for e in recorder["errors"])
        assert [e.KIND for e in read_events(path)] == ["custom", "run.end"]

    def test_episode_ends_in_headers_are_checked_and_kept(self, tmp_path):
        """The hub keeps which episodes ended from the message headers: it refuses a header
        whose episode list does not match its count or leaves the run's range, and tells
        the driver which episodes of a dead source arrived whole."""
        session, path = session_with_log(tmp_path)
        with session:
            session.track_episodes(5)
            context, raw = foreign_source(session)
            ends = [codec.encode(EpisodeEnd(episode=e, length=0, return_=0.0, terminated=True,
                                            truncated=False, aborted=False, wall_time=0.0,
                                            worker=9, wseq=i).to_record())
                    for i, e in enumerate((1, 3))]
            short = bus.HEADER.pack(bus.VERSION, 0, 9, 0, 2, 0, 2, 0) + struct.pack("<q", 1)
            raw.send_multipart([short, b"".join(ends)])  # two ends announced, one listed
            outside = bus.Header.pack(0, 9, 0, 2, 0, [1, 7], 0)
            raw.send_multipart([outside, b"".join(ends)])  # episode 7 of 0..4
            raw.send_multipart([bus.Header.pack(0, 9, 0, 2, 0, [1, 3], 0), b"".join(ends)])
            close(context, raw)
            lost = session.lost(9, [1, 2, 3])
            report = session.finish(run_end())
        assert lost == {"stream_ended": False, "last_wseq": 1, "ended": [1, 3]}
        assert report["rejected"] == 2
        assert any("8 for each of its 2 episode ends" in e for e in report["errors"])
        assert any("episode end 7 out of the run's range 0..4" in e for e in report["errors"])
        assert [e.KIND for e in read_events(path)] == ["episode.end", "episode.end", "run.end"]

    def test_a_lost_source_connection_is_refused_afterwards(self, tmp_path):
        """Once the driver declared a source lost, bytes from its old connection that come
        late are refused (the hub's answer about its episodes stays true); the driver's new
        connection continues the source's stream."""
        session, path = session_with_log(tmp_path)
        with session:
            session.track_episodes(5)
            context, raw = foreign_source(session)
            first = codec.encode(Custom(name="a", worker=9, wseq=0).to_record())
            raw.send_multipart([bus.Header.pack(0, 9, 0, 1, 0, [], 0), first])
            time.sleep(0.3)
            lost = session.lost(9, [])
            late = codec.encode(Custom(name="late", worker=9, wseq=1).to_record())
            raw.send_multipart([bus.Header.pack(0, 9, 1, 1, 0, [], 0), late])
            time.sleep(0.3)
            close(context, raw)
            takeover = session.source(9, first_wseq=lost["last_wseq"] + 1)
            try:
                takeover.finish(Custom(name="b"))
            finally:
                takeover.close()
            report = session.finish(run_end())
        assert lost["last_wseq"] == 0
        assert report["rejected"] == 1
        assert any("connection of a source declared lost" in e for e in report["errors"])
        assert [e.name for e in read_events(path) if e.KIND == "custom"] == ["a", "b"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_keys(base, *pairs: tuple[str, str]) -> None:
    """CURVE key files NAME.key and NAME.key_secret in base/DIRECTORY, per (DIRECTORY, NAME)."""
    import zmq.auth

    for directory, name in pairs:
        (base / directory).mkdir()
        zmq.auth.create_certificates(str(base / directory), name)


class TestRemoteLive:
    def test_beyond_loopback_only_authorized_clients_get_in(self, tmp_path):
        """The live fan-out on TCP beyond loopback uses CURVE: a client with an authorized
        key receives the run's events; one with another key, or with none, gets nothing."""
        from eventroll.bus import LiveSubscription
        from eventroll.remote import RemoteLive

        make_keys(tmp_path, ("server", "server"), ("authorized", "alice"), ("other", "mallory"))
        port = free_port()
        remote = RemoteLive(f"tcp://0.0.0.0:{port}", server_key=str(tmp_path / "server/server.key_secret"),
                            authorized_keys=str(tmp_path / "authorized"))
        path = str(tmp_path / "events.msgpack")
        session = RunSession([RecorderSpec("eventlog", EventLogRecorder, {"path": path, "run_id": "t"})],
                             timeouts=TIMEOUTS, remote=remote)
        address, server = f"tcp://127.0.0.1:{port}", str(tmp_path / "server/server.key")
        with session:
            session.start()
            session.go()
            clients = {"alice": LiveSubscription(address, curve=(server, str(tmp_path / "authorized/alice.key_secret"))),
                       "mallory": LiveSubscription(address, curve=(server, str(tmp_path / "other/mallory.key_secret"))),
                       "plain": LiveSubscription(address)}
            time.sleep(1.0)  # connections and handshakes
            source = session.source(0)
            try:
                for _ in range(5):
                    source.add(Custom(name="hello"))
                    source.flush()
                    time.sleep(0.1)
                source.finish(Custom(name="bye"))
            finally:
                source.close()
            heard = {}
            for name, client in clients.items():
                frames = client.receive(1.0)
                while frames is not None and frames[0] != b"events":
                    frames = client.receive(1.0)
                heard[name] = frames is not None
                client.close()
            session.finish(run_end())
        assert heard == {"alice": True, "mallory": False, "plain": False}

    def test_beyond_loopback_without_keys_is_refused(self):
        from eventroll.errors import ConfigError
        from eventroll.remote import RemoteLive

        with pytest.raises(ConfigError, match="listens beyond loopback: set live.server_key"):
            RemoteLive("tcp://0.0.0.0:5555")
        assert RemoteLive("tcp://127.0.0.1:5555").loopback


def test_subscribe_to_a_run_listening_with_curve(tmp_path):
    """`eventroll.subscribe` on a run's TCP endpoint with CURVE keys follows the run."""
    import threading
    from eventroll import ParallelRunner
    from eventroll.live import subscribe

    make_keys(tmp_path, ("server", "server"), ("clients", "alice"))
    port = free_port()
    live = {"listen": f"tcp://0.0.0.0:{port}", "authorized_keys": str(tmp_path / "clients"),
            "server_key": str(tmp_path / "server/server.key_secret")}
    received = []

    def follow() -> None:
        keys = (str(tmp_path / "server/server.key"), str(tmp_path / "clients/alice.key_secret"))
        for event in subscribe(f"tcp://127.0.0.1:{port}", ["episode.end", "run.end"],
                               arrays=False, curve=keys):
            received.append(event)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    # long enough (a second or two) for the follower's CURVE handshake to be done mid-run
    # even on a loaded machine: a subscriber on an endpoint gets what comes after it attached
    result = ParallelRunner(n_episodes=3000, console=None, live=live, flush_interval=0.01,
                            env_base_seed=1, agent_base_seed=1).run_with(
        "CartPole-v1", run_dir=str(tmp_path / "run"))
    follower.join(15)
    assert result.ok and not follower.is_alive()
    assert received and received[-1].KIND == "run.end"


def test_a_flood_of_bad_messages_keeps_the_hub_bounded(tmp_path):
    """A foreign process sending thousands of messages under thousands of worker ids,
    with gaps: every one is counted, the hub keeps at most MAX_SOURCES sources and
    MAX_ERRORS messages, and the run's own events still arrive."""
    session, path = session_with_log(tmp_path)
    with session:
        source = bus.Publisher(session.endpoints.ingress, 1_000_000, stall_timeout=5,
                               ack_timeout=5)
        try:
            source.add(Custom(name="before"))
            source.sync()
            context, raw = foreign_source(session)
            body = codec.encode(Custom(name="x", worker=0, wseq=5).to_record())
            for worker in range(bus.MAX_SOURCES + 500):
                raw.send_multipart([bus.Header.pack(0, worker, 5, 1, 0, [], 0), body])
            time.sleep(1.0)
            close(context, raw)
            source.finish(Custom(name="after"))
        finally:
            source.close()
        report = session.finish(run_end())
    assert report["rejected"] >= 500  # the sources beyond MAX_SOURCES
    assert len(report["errors"]) <= bus.MAX_ERRORS + 1
    assert report["errors"][-1].endswith("more sources ended without their end marker")
    assert len(report["sources"]) <= bus.MAX_SOURCES + 1  # and the driver
    names = [e.name for e in read_events(path) if e.KIND == "custom" and e.worker == 1_000_000]
    assert names == ["before", "after"]


def test_tail_follows_a_run_over_curve(tmp_path):
    """`eventroll tail tcp://HOST:PORT --server-key --client-key` follows a run that
    listens with CURVE, to its run.end."""
    import json
    import subprocess
    import sys

    make_keys(tmp_path, ("server", "run"), ("clients", "alice"))
    port = free_port()
    cli = [sys.executable, "-m", "eventroll.cli"]
    tail = subprocess.Popen([*cli, "tail", f"tcp://127.0.0.1:{port}", "--kind", "run.end",
                             "--server-key", str(tmp_path / "server/run.key"),
                             "--client-key", str(tmp_path / "clients/alice.key_secret")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = subprocess.run([*cli, "run", "runner.n_episodes=2000", f"live.listen=tcp://0.0.0.0:{port}",
                          "policy.name=eventroll.testing:PacedPolicy",  # live for a second
                          f"live.server_key={tmp_path / 'server/run.key_secret'}",
                          f"live.authorized_keys={tmp_path / 'clients'}",
                          f"hydra.run.dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out, err = tail.communicate(timeout=30)
    assert tail.returncode == 0, err
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["run.end"]

"""The live fan-out on a TCP address, for subscribers on other machines.

By default a run listens on ipc sockets only. ``RemoteLive`` adds the live
fan-out on a TCP address. On loopback (127.0.0.1, ::1, localhost) it is plain;
anywhere else it uses ZeroMQ CURVE: the hub encrypts with its secret key
(``server_key``), and only the clients whose public keys are in
``authorized_keys`` get in (pyzmq's ``zmq.auth``). Keys are the files
``zmq.auth.create_certificates(directory, name)`` writes: ``name.key`` (public)
and ``name.key_secret``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from eventroll.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class RemoteLive:
    """Where and how the live fan-out listens on TCP (see the module's docstring)."""

    listen: str
    server_key: str | None = None
    authorized_keys: str | None = None

    def __post_init__(self) -> None:
        if not self.listen.startswith("tcp://") or ":" not in self.listen[6:]:
            raise ConfigError(f"live.listen={self.listen!r}: give tcp://HOST:PORT")
        if not self.loopback and not (self.server_key and self.authorized_keys):
            raise ConfigError(f"live.listen={self.listen!r} listens beyond loopback: set "
                              "live.server_key (a secret key file) and live.authorized_keys (a "
                              "directory of client public keys) for CURVE encryption and "
                              "authentication, or listen on tcp://127.0.0.1:PORT")
        for name, path, test in (("server_key", self.server_key, os.path.isfile),
                                 ("authorized_keys", self.authorized_keys, os.path.isdir)):
            if path is not None and not test(path):
                raise ConfigError(f"live.{name}={path!r} does not exist; make keys with "
                                  "zmq.auth.create_certificates(directory, name)")

    @property
    def loopback(self) -> bool:
        return self.listen[6:].rsplit(":", 1)[0] in LOOPBACK

    @classmethod
    def from_config(cls, config: Any) -> "RemoteLive | None":
        """From the ``live:`` config (listen null: none)."""
        values = dict(config or {})
        unknown = sorted(set(values) - {"listen", "server_key", "authorized_keys"})
        if unknown:
            raise ConfigError(f"unknown live option(s) {unknown}; known: listen, server_key, "
                              "authorized_keys")
        return cls(**values) if values.get("listen") else None


def remote_publisher(context: zmq.Context, remote: RemoteLive,
                     high_water_mark: int) -> tuple[zmq.Socket, ThreadAuthenticator | None]:
    """The hub's PUB socket on ``remote.listen``, with CURVE where keys are given, and the
    authenticator thread that admits the authorized clients (stop it on closing)."""
    sock = context.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, high_water_mark)
    authenticator = None
    if remote.server_key:
        authenticator = ThreadAuthenticator(context)
        authenticator.start()
        authenticator.configure_curve(domain="*", location=remote.authorized_keys)
        public, secret = zmq.auth.load_certificate(remote.server_key)
        sock.curve_server = True
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    sock.bind(remote.listen)
    return sock, authenticator


def curve_client(sock: zmq.Socket, server_key: str, client_key: str) -> None:
    """Set up a client socket for a CURVE server: ``server_key`` the server's public key
    file, ``client_key`` this client's secret key file."""
    server_public, _ = zmq.auth.load_certificate(server_key)
    public, secret = zmq.auth.load_certificate(client_key)
    if secret is None:
        raise ConfigError(f"{client_key} holds no secret key; give the client's .key_secret file")
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret

"""memcached's text protocol, only as far as the runner needs it: ``flush_all`` on one server.

After a schema change Keystone's cache may hold entries the old release wrote;
emptying it makes every node read afresh. One connection per command, every
socket operation bounded, a server that does not answer tried again briefly
(it may be restarting) and then named in a CacheError.
"""

from __future__ import annotations

import socket

from runner.errors import CacheError
from runner.model import host_and_port
from runner.waits import MEMCACHED_ANSWERS, WaitPolicy, WaitTimeout, wait_until

# memcached answers a command with one line; anything longer is not memcached.
MAX_REPLY_BYTES = 1024


class MemcachedClient:
    """The ``Cache`` port over memcached's text protocol on TCP."""

    def __init__(self, timeout_s: float = 5.0, answers: WaitPolicy = MEMCACHED_ANSWERS):
        self.timeout_s = timeout_s
        self.answers = answers

    def flush_all(self, server: str) -> None:
        """Empty the memcached at ``server`` (HOST:PORT); CacheError when it does not answer ``OK``."""
        host, port = host_and_port(server)
        try:
            reply = wait_until(self.answers, lambda: self._exchange(host, port, b"flush_all\r\n"), bool)
        except WaitTimeout as exc:
            raise CacheError(
                f"memcached {server} did not answer flush_all",
                observed=str(exc.last_observed),
                hint=f"check that memcached listens on {server} and that this machine reaches it",
            ) from exc
        if reply != "OK":
            raise CacheError(
                f"memcached {server} refused flush_all",
                observed=f"answered {reply[:80]!r}, not 'OK'",
                hint=f"check that {server} is a memcached (and not started with flush_all disabled, -F)",
            )

    def _exchange(self, host: str, port: int, command: bytes) -> str:
        """One connection, one command, its one-line answer; OSError when there is none in time."""
        with socket.create_connection((host, port), timeout=self.timeout_s) as connection:
            connection.settimeout(self.timeout_s)
            connection.sendall(command)
            received = b""
            while not received.endswith(b"\r\n") and len(received) < MAX_REPLY_BYTES:
                chunk = connection.recv(MAX_REPLY_BYTES)
                if not chunk:
                    raise ConnectionResetError(f"closed after {received[:80]!r}")
                received += chunk
        return received.decode("utf-8", errors="replace").strip()

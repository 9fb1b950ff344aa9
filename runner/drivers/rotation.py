"""A node's place in the load balancers: every HAProxy runtime socket, every backend of the node.

Changing a node's state means changing it on every HAProxy in front of the
cluster (Kolla runs one per controller); a node counts as drained or UP only
when every socket reports every one of its servers so.
"""

from __future__ import annotations

from runner.drivers.haproxy import HaproxyRuntime, ServerStat
from runner.model import ServerRef
from runner.waits import HAPROXY_SERVERS_UP, SERVER_DRAINED, wait_until


class HaproxyRotation:
    """The ``Rotation`` port over HAProxy runtime APIs."""

    def __init__(self, runtimes: tuple[HaproxyRuntime, ...]):
        self.runtimes = runtimes

    def _set(self, servers: tuple[ServerRef, ...], state: str) -> None:
        for runtime in self.runtimes:
            for ref in servers:
                runtime.set_server_state(ref.backend, ref.server, state)

    def _stats(self, servers: tuple[ServerRef, ...]) -> list[ServerStat]:
        wanted = {(ref.backend, ref.server) for ref in servers}
        return [
            s for runtime in self.runtimes for s in runtime.show_stat() if (s.backend, s.server) in wanted
        ]

    def _complete(self, rows: list[ServerStat], servers: tuple[ServerRef, ...]) -> bool:
        # A server missing from one socket must not count as drained or UP there.
        return len(rows) == len(servers) * len(self.runtimes)

    def drain(self, servers: tuple[ServerRef, ...]) -> None:
        """No new sessions; current ones finish."""
        self._set(servers, "drain")

    def wait_drained(self, servers: tuple[ServerRef, ...], timeout_s: float) -> None:
        """Until no socket shows a current or queued session on the servers (WaitTimeout otherwise)."""
        wait_until(
            SERVER_DRAINED.with_timeout(timeout_s),
            lambda: self._stats(servers),
            lambda rows: (
                self._complete(rows, servers) and all(r.current_sessions == 0 and r.queued == 0 for r in rows)
            ),
        )

    def maint(self, servers: tuple[ServerRef, ...]) -> None:
        """Out of rotation: no traffic, no health checks."""
        self._set(servers, "maint")

    def ready(self, servers: tuple[ServerRef, ...]) -> None:
        """Back into rotation, marked healthy (the caller has just checked the node's health itself)."""
        self._set(servers, "ready")
        for runtime in self.runtimes:
            for ref in servers:
                runtime.set_server_health_up(ref.backend, ref.server)

    def wait_up(self, servers: tuple[ServerRef, ...]) -> None:
        """Until every socket shows every server UP (WaitTimeout otherwise)."""
        wait_until(
            HAPROXY_SERVERS_UP,
            lambda: self._stats(servers),
            lambda rows: self._complete(rows, servers) and all(r.is_up for r in rows),
        )

    def not_up(self, servers: tuple[ServerRef, ...]) -> list[ServerRef]:
        """The servers some socket does not show UP (or does not show at all)."""
        rows = self._stats(servers)
        return [
            ref
            for ref in servers
            if len(matching := [r for r in rows if (r.backend, r.server) == (ref.backend, ref.server)])
            != len(self.runtimes)
            or not all(r.is_up for r in matching)
        ]

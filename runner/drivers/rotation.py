"""A node's place in the load balancers: every HAProxy runtime socket, every backend of the node.

Changing a node's state means changing it on every HAProxy in front of the
cluster (Kolla runs one per controller); a node counts as drained or UP only
when every socket reports every one of its servers so.

A reload or restart of HAProxy without saved server states forgets DRAIN and
MAINT: the server is READY again while the runner believes it out. ``lost``
says where a state is missing (and whether another process now answers that
socket); ``keep`` puts it back. The drain wait keeps DRAIN; the node step keeps
MAINT while the node is swapped.
"""

from __future__ import annotations

from runner.drivers.haproxy import HaproxyRuntime, ProcessInfo, ServerStat, ServerState
from runner.model import ServerRef
from runner.waits import HAPROXY_SERVERS_UP, SERVER_DRAINED, wait_until


class HaproxyRotation:
    """The ``Rotation`` port over HAProxy runtime APIs."""

    def __init__(self, runtimes: tuple[HaproxyRuntime, ...]):
        self.runtimes = runtimes
        # The process last seen behind each socket, to tell a reload from an operator's change.
        self._processes: dict[int, ProcessInfo] = {}

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

    def wait_drained(self, servers: tuple[ServerRef, ...], timeout_s: float) -> list[str]:
        """Until no socket shows a current or queued session on the servers (WaitTimeout otherwise).

        DRAIN lost meanwhile (a reload) is set again; returns where that happened.
        """
        reapplied: list[str] = []

        def stats() -> list[ServerStat]:
            reapplied.extend(self.keep(servers, "drain"))
            return self._stats(servers)

        wait_until(
            SERVER_DRAINED.with_timeout(timeout_s),
            stats,
            lambda rows: (
                self._complete(rows, servers) and all(r.current_sessions == 0 and r.queued == 0 for r in rows)
            ),
        )
        return reapplied

    def lost(self, servers: tuple[ServerRef, ...], state: str) -> list[str]:
        """Where a server is not in ``state`` ("drain" or "maint"; MAINT counts as out for "drain")."""
        return [note for _, _, note in self._missing(servers, state)]

    def keep(self, servers: tuple[ServerRef, ...], state: str) -> list[str]:
        """Set ``state`` again wherever it was lost; say where, for the journal."""
        missing = self._missing(servers, state)
        for runtime, ref, _ in missing:
            runtime.set_server_state(ref.backend, ref.server, state)
        return [f"{note}: {state} set again" for _, _, note in missing]

    def _missing(
        self, servers: tuple[ServerRef, ...], state: str
    ) -> list[tuple[HaproxyRuntime, ServerRef, str]]:
        def holds(row: ServerState) -> bool:
            return row.in_maintenance or (state == "drain" and row.draining)

        missing = []
        for index, runtime in enumerate(self.runtimes):
            process = runtime.show_info()
            previous = self._processes.get(index, process)
            self._processes[index] = process
            rows = {(s.backend, s.server): s for s in runtime.show_servers_state()}
            for ref in servers:
                row = rows.get((ref.backend, ref.server))
                if row is None or holds(row):
                    continue  # a server missing from a socket never counts as drained or UP anyway
                why = (
                    f"HAProxy was reloaded or restarted (pid {previous.pid} -> {process.pid})"
                    if previous.is_succeeded_by(process)
                    else "someone else changed it"
                )
                missing.append((runtime, ref, f"{ref} is not in {state} at {runtime.address}; {why}"))
        return missing

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

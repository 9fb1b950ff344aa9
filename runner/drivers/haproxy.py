"""HAProxy's runtime API (the admin "stats socket"), over a unix or TCP socket.

Parsing is kept in pure functions (``parse_show_stat``,
``parse_servers_state``) so it is unit-tested on captured output; the
``RuntimeSocket`` class only moves bytes.
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from runner.errors import HaproxyError
from runner.model import SocketAddress
from runner.waits import WaitPolicy, WaitTimeout, wait_until

RECV_BYTES = 65536


class OperationalState(Enum):
    """What HAProxy's checks say of a server (``show servers state``'s srv_op_state)."""

    STOPPED = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3


# srv_admin_state bits (HAProxy's SRV_ADMF_*).
ADMIN_FORCED_MAINT = 0x01
ADMIN_INHERITED_MAINT = 0x02
ADMIN_CONFIG_MAINT = 0x04
ADMIN_FORCED_DRAIN = 0x08
ADMIN_INHERITED_DRAIN = 0x10
ADMIN_RESOLUTION_MAINT = 0x20
ADMIN_HOSTNAME_MAINT = 0x40
ADMIN_ANY_MAINT = (
    ADMIN_FORCED_MAINT
    | ADMIN_INHERITED_MAINT
    | ADMIN_CONFIG_MAINT
    | ADMIN_RESOLUTION_MAINT
    | ADMIN_HOSTNAME_MAINT
)
ADMIN_ANY_DRAIN = ADMIN_FORCED_DRAIN | ADMIN_INHERITED_DRAIN


@dataclass(frozen=True)
class ServerStat:
    """One server row of ``show stat``: traffic and the status column as displayed."""

    backend: str
    server: str
    status: str  # "UP", "UP 1/2", "DOWN", "DRAIN", "MAINT", "MAINT (via b/s)", "no check", ...
    current_sessions: int  # scur
    queued: int  # qcur

    @property
    def is_up(self) -> bool:
        """UP and not on its way down (``UP 1/2`` is a failing check that has not yet tripped)."""
        return self.status == "UP"

    @property
    def in_transition(self) -> bool:
        """Between UP and DOWN: ``UP 1/2`` (checks failing) or ``DOWN 1/2`` (checks passing)."""
        return self.status.startswith(("UP ", "DOWN ")) and "/" in self.status


@dataclass(frozen=True)
class ServerState:
    """One server of ``show servers state``: the admin and operational states as numbers."""

    backend: str
    server: str
    operational: OperationalState
    admin_flags: int

    @property
    def in_maintenance(self) -> bool:
        """Any kind of MAINT, forced, inherited, from the configuration or from DNS."""
        return bool(self.admin_flags & ADMIN_ANY_MAINT)

    @property
    def draining(self) -> bool:
        """DRAIN set on the server or inherited from a tracked one."""
        return bool(self.admin_flags & ADMIN_ANY_DRAIN)

    @property
    def ready(self) -> bool:
        """Admin state READY: neither MAINT nor DRAIN."""
        return self.admin_flags == 0


@dataclass(frozen=True)
class ProcessInfo:
    """Which HAProxy process answers a socket (``show info``): a reload or a restart changes it."""

    pid: int
    uptime_s: int

    def is_succeeded_by(self, later: ProcessInfo) -> bool:
        """Whether ``later`` (read after this) comes from another process: a new pid, or a younger one."""
        return later.pid != self.pid or later.uptime_s < self.uptime_s


def parse_show_info(text: str) -> ProcessInfo:
    """``show info``: ``Name: value`` lines; the worker's pid and its uptime."""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return ProcessInfo(pid=int(fields["Pid"]), uptime_s=int(fields["Uptime_sec"]))
    except (KeyError, ValueError) as exc:
        raise HaproxyError("unexpected answer to 'show info'", observed=text[:300]) from exc


def parse_show_stat(text: str) -> list[ServerStat]:
    """Server rows of ``show stat`` (the CSV whose header starts with ``# ``)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise HaproxyError("unexpected answer to 'show stat'", observed=text[:300])
    reader = csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    stats = []
    for row in reader:
        if row["svname"] in ("FRONTEND", "BACKEND"):
            continue
        stats.append(
            ServerStat(
                backend=row["pxname"],
                server=row["svname"],
                status=row["status"],
                current_sessions=int(row["scur"] or 0),
                queued=int(row["qcur"] or 0),
            )
        )
    return stats


def parse_servers_state(text: str) -> list[ServerState]:
    """``show servers state``: a version line, a ``#`` header, then one row per server."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((line for line in lines if line.startswith("# ")), None)
    if not lines or header is None:
        raise HaproxyError("unexpected answer to 'show servers state'", observed=text[:300])
    columns = header[2:].split()
    states = []
    for line in lines:
        if line.startswith("#") or line == lines[0]:
            continue
        row = dict(zip(columns, line.split(), strict=False))
        states.append(
            ServerState(
                backend=row["be_name"],
                server=row["srv_name"],
                operational=OperationalState(int(row["srv_op_state"])),
                admin_flags=int(row["srv_admin_state"]),
            )
        )
    return states


class HaproxyRuntime(Protocol):
    """What the runner needs of one HAProxy: read states, change a server's admin state."""

    address: SocketAddress

    def show_stat(self) -> list[ServerStat]: ...

    def show_info(self) -> ProcessInfo: ...

    def show_servers_state(self) -> list[ServerState]: ...

    def set_server_state(self, backend: str, server: str, state: str) -> None: ...

    def set_server_health_up(self, backend: str, server: str) -> None: ...

    def access_level(self) -> str: ...


class RuntimeSocket:
    """The runtime API of one HAProxy, one connection per command.

    With ``reconnect``, a socket that does not answer is tried again under that
    policy before the command fails: during a run, HAProxy being restarted or
    reloaded must not stop it. Preflight looks once.
    """

    def __init__(self, address: SocketAddress, timeout_s: float = 5.0, reconnect: WaitPolicy | None = None):
        self.address = address
        self.timeout_s = timeout_s
        self.reconnect = reconnect

    def command(self, line: str) -> str:
        """Send one command and return the whole answer (HAProxy closes after it)."""
        if self.reconnect is None:
            return self._exchange(line)
        try:
            return wait_until(self.reconnect, lambda: self._exchange(line, raw=True), lambda _: True)
        except WaitTimeout as exc:
            raise self._unanswered(line, exc.last_observed) from exc

    def _unanswered(self, line: str, observed: object) -> HaproxyError:
        return HaproxyError(
            f"HAProxy runtime API at {self.address} did not answer {line.split(maxsplit=1)[0]!r}",
            observed=str(observed),
            hint="check that HAProxy runs and that its 'stats socket' is where the inventory says",
        )

    def _exchange(self, line: str, *, raw: bool = False) -> str:
        """One connection, one command; OSError as it is (``raw``) or as a HaproxyError."""
        try:
            if self.address.unix_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                target: str | tuple[str, int] = self.address.unix_path
            else:
                assert self.address.host is not None
                assert self.address.port is not None
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                target = (self.address.host, self.address.port)
            with sock:
                sock.settimeout(self.timeout_s)
                sock.connect(target)
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(RECV_BYTES):
                    chunks.append(chunk)
        except OSError as exc:
            if raw:
                raise
            raise self._unanswered(line, exc) from exc
        return b"".join(chunks).decode(errors="replace")

    def show_info(self) -> ProcessInfo:
        """The process answering: its pid and uptime."""
        return parse_show_info(self.command("show info"))

    def show_stat(self) -> list[ServerStat]:
        """Every server's displayed status and its current and queued sessions."""
        return parse_show_stat(self.command("show stat"))

    def show_servers_state(self) -> list[ServerState]:
        """Every server's admin and operational state."""
        return parse_servers_state(self.command("show servers state"))

    def _set_server(self, backend: str, server: str, change: str, hint: str) -> None:
        """``set server B/S <change>``: HAProxy answers nothing when it complies."""
        answer = self.command(f"set server {backend}/{server} {change}").strip()
        if answer:
            raise HaproxyError(
                f"HAProxy at {self.address} refused to set {backend}/{server} {change}",
                observed=answer,
                hint=hint,
            )

    def set_server_state(self, backend: str, server: str, state: str) -> None:
        """``set server B/S state ready|drain|maint``."""
        if state not in ("ready", "drain", "maint"):
            raise ValueError(f"not a server admin state: {state}")
        self._set_server(
            backend,
            server,
            f"state {state}",
            "check the backend and server names in the inventory against 'show stat'",
        )

    def set_server_health_up(self, backend: str, server: str) -> None:
        """``set server B/S health up``: the node's health was checked directly just before.

        Leaving MAINT shows ``UP 1/2`` until HAProxy's own next check passes;
        this ends that wait early, and the next check still applies.
        """
        self._set_server(
            backend,
            server,
            "health up",
            "the server needs health checks enabled ('check' on its server line)",
        )

    def access_level(self) -> str:
        """``show cli level``: user, operator or admin."""
        return self.command("show cli level").strip()

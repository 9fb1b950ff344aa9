"""HaproxyRotation against HAProxy runtimes that forget their states, as a reload without saved states does."""

from __future__ import annotations

import pytest

from runner.drivers.haproxy import (
    ADMIN_FORCED_DRAIN,
    ADMIN_FORCED_MAINT,
    OperationalState,
    ProcessInfo,
    ServerStat,
    ServerState,
    parse_show_info,
)
from runner.drivers.rotation import HaproxyRotation
from runner.errors import HaproxyError
from runner.model import ServerRef, SocketAddress

K1 = (ServerRef("internal", "k1"), ServerRef("public", "k1"))
FLAGS = {"ready": 0, "drain": ADMIN_FORCED_DRAIN, "maint": ADMIN_FORCED_MAINT}


class ReloadingRuntime:
    """One HAProxy: the states set on it, until it is reloaded (new pid, every server READY)."""

    def __init__(self, name: str) -> None:
        self.address = SocketAddress(unix_path=f"/run/{name}.sock")
        self.pid = 8
        self.flags = {(ref.backend, ref.server): 0 for ref in (*K1, ServerRef("internal", "k2"))}
        self.sets: list[str] = []

    def reload(self) -> None:
        self.pid += 1
        self.flags = dict.fromkeys(self.flags, 0)

    def show_info(self) -> ProcessInfo:
        return ProcessInfo(pid=self.pid, uptime_s=10)

    def show_stat(self) -> list[ServerStat]:
        return [ServerStat(b, s, "UP", 0, 0) for b, s in self.flags]

    def show_servers_state(self) -> list[ServerState]:
        return [ServerState(b, s, OperationalState.RUNNING, f) for (b, s), f in self.flags.items()]

    def set_server_state(self, backend: str, server: str, state: str) -> None:
        self.sets.append(f"{backend}/{server} {state}")
        self.flags[(backend, server)] = FLAGS[state]

    def set_server_health_up(self, backend: str, server: str) -> None:
        pass

    def access_level(self) -> str:
        return "admin"


def test_a_reload_that_forgot_maint_is_seen_and_maint_is_set_again_only_there() -> None:
    first, second = ReloadingRuntime("a"), ReloadingRuntime("b")
    rotation = HaproxyRotation((first, second))
    rotation.maint(K1)
    assert rotation.keep(K1, "maint") == []
    second.reload()
    lost = rotation.lost(K1, "maint")
    assert len(lost) == 2
    assert all("/run/b.sock" in note and "reloaded or restarted (pid 8 -> 9)" in note for note in lost)
    second.sets.clear()
    notes = rotation.keep(K1, "maint")
    assert [n.endswith("maint set again") for n in notes] == [True, True]
    assert second.sets == ["internal/k1 maint", "public/k1 maint"]
    assert rotation.lost(K1, "maint") == []
    assert first.flags[("internal", "k2")] == 0  # other nodes are not touched


def test_a_state_changed_by_someone_else_is_named_so() -> None:
    runtime = ReloadingRuntime("a")
    rotation = HaproxyRotation((runtime,))
    rotation.drain(K1)
    assert rotation.lost(K1, "drain") == []
    runtime.flags[("internal", "k1")] = 0  # an operator set it ready; the process is the same
    assert rotation.lost(K1, "drain") == [
        "internal/k1 is not in drain at unix:/run/a.sock; someone else changed it"
    ]


def test_maint_counts_as_out_for_a_drain_but_drain_does_not_count_for_maint() -> None:
    runtime = ReloadingRuntime("a")
    rotation = HaproxyRotation((runtime,))
    rotation.maint(K1)
    assert rotation.lost(K1, "drain") == []
    rotation.drain(K1)
    assert len(rotation.lost(K1, "maint")) == 2


def test_the_drain_wait_sets_drain_again_after_a_reload() -> None:
    runtime = ReloadingRuntime("a")
    rotation = HaproxyRotation((runtime,))
    rotation.drain(K1)
    runtime.reload()
    reapplied = rotation.wait_drained(K1, timeout_s=5)
    assert len(reapplied) == 2
    assert all(runtime.flags[(ref.backend, ref.server)] == ADMIN_FORCED_DRAIN for ref in K1)


def test_show_info_gives_the_worker_and_its_age() -> None:
    info = parse_show_info("Name: HAProxy\nVersion: 2.6.12\nPid: 8\nUptime_sec: 42\nProcess_num: 1\n")
    assert info == ProcessInfo(pid=8, uptime_s=42)
    assert info.is_succeeded_by(ProcessInfo(pid=9, uptime_s=0))
    assert info.is_succeeded_by(ProcessInfo(pid=8, uptime_s=3))  # restarted, same pid in its container
    assert not info.is_succeeded_by(ProcessInfo(pid=8, uptime_s=50))
    with pytest.raises(HaproxyError, match="show info"):
        parse_show_info("Unknown command\n")

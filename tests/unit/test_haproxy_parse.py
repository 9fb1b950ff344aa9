"""Parsing HAProxy's runtime API answers, captured from the lab's HAProxy 2.6.

data/show_stat.csv and data/show_servers_state.txt were captured with
keystone-1 in DRAIN, keystone-2 in MAINT, and keystone-3 in DRAIN with its
container stopped: its check fails, so `show stat` says DOWN although its
admin state is still drain; only `show servers state` tells.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.drivers.haproxy import (
    OperationalState,
    parse_servers_state,
    parse_show_stat,
)
from runner.errors import HaproxyError
from runner.model import SocketAddress

DATA = Path(__file__).parent / "data"


def _stat_with_status(status: str) -> str:
    """The captured answer with keystone-1's status column replaced."""
    lines = (DATA / "show_stat.csv").read_text().splitlines()
    header = lines[0][2:].split(",")
    column = header.index("status")
    out = []
    for line in lines:
        fields = line.split(",")
        if len(fields) > 1 and fields[1] == "keystone-1":
            fields[column] = status
        out.append(",".join(fields))
    return "\n".join(out)


def test_captured_show_stat_gives_each_server_its_displayed_status() -> None:
    stats = {s.server: s for s in parse_show_stat((DATA / "show_stat.csv").read_text())}
    assert set(stats) == {"keystone-1", "keystone-2", "keystone-3"}  # FRONTEND/BACKEND rows dropped
    assert stats["keystone-1"].status == "DRAIN"
    assert stats["keystone-2"].status == "MAINT"
    assert stats["keystone-3"].status == "DOWN"
    assert not any(s.is_up for s in stats.values())
    assert all(s.current_sessions == 0 and s.queued == 0 for s in stats.values())
    assert {s.backend for s in stats.values()} == {"keystone_internal_back"}


@pytest.mark.parametrize(
    ("status", "is_up", "in_transition"),
    [
        ("UP", True, False),
        ("UP 1/2", False, True),
        ("DOWN 1/2", False, True),
        ("DOWN", False, False),
        ("MAINT (via b/s)", False, False),
        ("no check", False, False),
    ],
)
def test_only_a_plain_up_counts_as_up(status: str, is_up: bool, in_transition: bool) -> None:
    stats = {s.server: s for s in parse_show_stat(_stat_with_status(status))}
    assert stats["keystone-1"].status == status
    assert stats["keystone-1"].is_up is is_up
    assert stats["keystone-1"].in_transition is in_transition


def test_servers_state_shows_drain_under_a_failing_check() -> None:
    states = {s.server: s for s in parse_servers_state((DATA / "show_servers_state.txt").read_text())}
    drained, maint, drained_down = states["keystone-1"], states["keystone-2"], states["keystone-3"]
    assert drained.draining
    assert not drained.in_maintenance
    assert not drained.ready
    assert drained.operational is OperationalState.RUNNING
    assert maint.in_maintenance
    assert not maint.draining
    assert maint.operational is OperationalState.STOPPED
    # show stat said DOWN; the admin state is still drain.
    assert drained_down.draining
    assert not drained_down.in_maintenance
    assert drained_down.operational is OperationalState.STOPPED


def test_an_answer_that_is_not_a_stat_table_is_an_error() -> None:
    with pytest.raises(HaproxyError, match="show stat"):
        parse_show_stat("Permission denied\n")
    with pytest.raises(HaproxyError, match="show servers state"):
        parse_servers_state("Unknown command\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/run/haproxy/admin.sock", "unix:/run/haproxy/admin.sock"),
        ("unix:/x.sock", "unix:/x.sock"),
        ("tcp:127.0.0.1:9999", "tcp:127.0.0.1:9999"),
        ("127.0.0.1:9999", "tcp:127.0.0.1:9999"),
    ],
)
def test_socket_addresses(text: str, expected: str) -> None:
    assert str(SocketAddress.parse(text)) == expected


def test_a_socket_address_without_port_is_refused() -> None:
    with pytest.raises(ValueError, match="not a runtime API address"):
        SocketAddress.parse("haproxy.example")

"""Facts: parsing what the one preflight container of the target image printed; HAProxy states settled."""

from __future__ import annotations

from runner.drivers.haproxy import OperationalState, ProcessInfo, ServerStat, ServerState
from runner.facts import parse_facts_output, socket_facts
from runner.model import SocketAddress

OUTPUT = """\
EXPAND 742c857f1dfb
CONTRACT c88cdce8f248
KEYS /etc/keystone/fernet-keys 3
KEYS /etc/keystone/credential-keys -1
BEGIN check
INFO keystone.cmd.cli [-] Your database is not up to date.
Expand: 47147121 (head: 742c857f1dfb)
END check 2
BEGIN doctor
Symptom: debug mode is enabled
END doctor 2
"""


def test_heads_keys_and_both_commands_with_their_exit_codes() -> None:
    facts = parse_facts_output(OUTPUT)
    assert facts.heads == {"742c857f1dfb", "c88cdce8f248"}
    assert facts.key_files == {"/etc/keystone/fernet-keys": 3, "/etc/keystone/credential-keys": -1}
    assert facts.check is not None
    assert facts.check.exit_code == 2
    assert "not up to date" in facts.check.output
    assert facts.doctor is not None
    assert facts.doctor.output.strip() == "Symptom: debug mode is enabled"


def test_without_the_database_there_is_no_check_and_no_doctor() -> None:
    facts = parse_facts_output("EXPAND a\nCONTRACT b\n")
    assert facts.check is None
    assert facts.doctor is None
    assert facts.heads == {"a", "b"}


def test_a_line_that_looks_like_a_marker_inside_a_section_stays_in_it() -> None:
    facts = parse_facts_output("EXPAND a\nCONTRACT b\nBEGIN check\nEXPAND z\nEND check 0\n")
    assert facts.expand_head == "a"
    assert facts.check is not None
    assert "EXPAND z" in facts.check.output


class _FlappingRuntime:
    """An HAProxy whose check is caught at "UP 1/2" once, then settles UP."""

    address = SocketAddress(unix_path="/admin.sock")

    def __init__(self) -> None:
        self.seen = ["UP 1/2", "UP"]

    def show_stat(self) -> list[ServerStat]:
        status = self.seen.pop(0) if len(self.seen) > 1 else self.seen[0]
        return [ServerStat("internal", "k1", status, 0, 0)]

    def show_servers_state(self) -> list[ServerState]:
        return [ServerState("internal", "k1", OperationalState.RUNNING, 0)]

    def show_info(self) -> ProcessInfo:
        return ProcessInfo(pid=8, uptime_s=60)

    def set_server_state(self, backend: str, server: str, state: str) -> None:
        raise AssertionError("facts change nothing")

    def set_server_health_up(self, backend: str, server: str) -> None:
        raise AssertionError("facts change nothing")

    def access_level(self) -> str:
        return "admin"


def test_preflight_judges_the_state_a_check_settles_on() -> None:
    facts = socket_facts(_FlappingRuntime())
    stat = facts.stat("internal", "k1")
    assert stat is not None
    assert stat.status == "UP"

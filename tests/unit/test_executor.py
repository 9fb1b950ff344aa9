"""Steps and the executor's stop rules, against typed fakes of every driver (no Docker)."""

from __future__ import annotations

import dataclasses
import json
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from runner.drivers.containers import ContainerFacts, Finished
from runner.drivers.database import BinlogSettings
from runner.drivers.docker_node import DockerNode
from runner.drivers.key_digests import KEY_DIGEST_SCRIPT
from runner.drivers.warm_keystone import ManageSetup
from runner.errors import (
    DockerError,
    DrainError,
    ExitCode,
    HealthError,
    KeysError,
    MigrationError,
    PreflightError,
    RollbackError,
)
from runner.executor import CLOSED_AFTER_FAILURE, Executor
from runner.facts.target import inventory_setup
from runner.interrupts import ForcedStop, Interrupted, StopRequests
from runner.journal import Event, Journal, StepStatus
from runner.model import BindMount, Inventory
from runner.plan import Plan, build_plan, with_current_environment
from runner.rollback import run_rollback
from runner.steps import Contract, NodeUpgrade, RunContext, StepKind
from tests.unit.fakes import FakeCluster, FakeEngine, FakeHttp, fake_cluster, gates_in_order
from tests.unit.test_plan import NEW_HEADS, OLD_HEADS, _facts, _inventory

EXPANDED = frozenset({"e-new", "c-old"})
# A node's events in the journal, in the order apply makes them.
NODE_EVENTS = [
    e.value
    for e in (
        Event.DRAIN,
        Event.DRAINED,
        Event.MAINT,
        Event.STOPPED,
        Event.RENAMED,
        Event.STARTED,
        Event.HEALTHY,
        Event.VERSION,
        Event.TOKENS,
        Event.WARMED,
        Event.FULL_CPU,
        Event.READY,
        Event.UP,
    )
]


def _setup(
    tmp_path: Path, *, keep_old: bool = False, trust: bool = False
) -> tuple[Inventory, Plan, FakeCluster, Journal]:
    inventory = dataclasses.replace(_inventory(), state_dir=tmp_path, backup_dir=tmp_path / "backups")
    facts = _facts(inventory)
    if trust:
        facts = dataclasses.replace(
            facts, database=dataclasses.replace(facts.database, binlog=BinlogSettings(True, False, False))
        )
    plan = build_plan(inventory, facts, run_id="run1", keep_old=keep_old)
    cluster = fake_cluster(inventory.nodes, OLD_HEADS, {"--expand": EXPANDED, "--contract": NEW_HEADS})
    journal = Journal.start(tmp_path, plan.to_dict(), "inventory.toml")
    return inventory, plan, cluster, journal


def _run(plan: Plan, cluster: FakeCluster, journal: Journal, tmp_path: Path) -> Executor:
    executor = Executor(plan, RunContext(cluster.drivers(), journal, tmp_path / "runs" / journal.run_id))
    executor.run()
    return executor


def test_a_node_is_drained_before_it_is_stopped_and_up_before_the_next(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    _run(plan, cluster, journal, tmp_path)
    k1 = [c for c in gates_in_order(cluster.calls) if c.endswith("k1") or c.endswith(" k1")]
    assert k1 == [
        "drain k1",
        "wait-drained k1",
        "maint k1",
        "stop k1",
        "set-aside k1",
        "start-target k1",
        "health k1",
        "release k1",
        "full-cpu k1",  # booted at a low CPU weight, its own once healthy
        "ready k1",
        "wait-up k1",
        "release k1",  # the contract gate asks every node again
        "discard-old k1",
    ]
    # One node at a time: k2 is not touched before k1 is UP.
    assert cluster.calls.index("drain k2") > cluster.calls.index("wait-up k1")
    for name in ("k1", "k2", "k3"):
        record = journal.step(f"node:{name}")
        assert [e["event"] for e in record.events] == NODE_EVENTS
        assert record.intended is None
    assert journal.step("contract").status is StepStatus.DONE


def test_contract_is_refused_while_a_node_runs_the_old_release(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    # k3 is skipped in the plan (as if already upgraded) but in fact still runs 28.1.0.
    steps = tuple(
        dataclasses.replace(s, skip_reason="already runs 29.1.0") if s.id == "node:k3" else s
        for s in plan.steps
    )
    steps = tuple(dataclasses.replace(s, gate_timeout_s=0.3) if isinstance(s, Contract) else s for s in steps)
    with pytest.raises(MigrationError, match="refusing to contract") as raised:
        _run(dataclasses.replace(plan, steps=steps), cluster, journal, tmp_path)
    assert "not on target: ['k3']" in str(raised.value)
    assert "run keystone-manage db_sync --contract" not in cluster.calls
    assert journal.step("contract").status is StepStatus.FAILED
    # Refused at its gate, contract changed nothing: the run can still be rolled back.
    executor = Executor(
        dataclasses.replace(plan, steps=steps), RunContext(cluster.drivers(), journal, tmp_path)
    )
    assert executor.undo() == ["node:k2", "node:k1"]
    assert {n.release for n in cluster.nodes.values()} == {"28.1.0"}


def test_keep_old_is_decided_in_the_plan_and_keeps_every_old_node(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path, keep_old=True)
    cleanup = plan.step("cleanup")
    assert (
        cleanup.skip_reason
        == "kept for rollback (--keep-old): c-k1-ku-old-run1, c-k2-ku-old-run1, c-k3-ku-old-run1"
    )
    _run(plan, cluster, journal, tmp_path)
    assert not [c for c in cluster.calls if c.startswith("discard-old")]
    assert journal.step("cleanup").status is StepStatus.SKIPPED
    assert all(node.kept for node in cluster.nodes.values())


def test_without_keep_old_cleanup_removes_every_old_node(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    _run(plan, cluster, journal, tmp_path)
    removed = [e["container"] for e in journal.events_of("cleanup", Event.REMOVED)]
    assert removed == ["c-k1-ku-old-run1", "c-k2-ku-old-run1", "c-k3-ku-old-run1"]
    assert not any(node.kept for node in cluster.nodes.values())


def test_the_trust_setting_is_put_back_when_the_run_fails(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path, trust=True)
    cluster.engine.exit_code = 1  # expand fails
    with pytest.raises(MigrationError):
        _run(plan, cluster, journal, tmp_path)
    assert [c for c in cluster.calls if c.startswith("trust")] == ["trust 1", "trust 0"]
    assert journal.step("trust-function-creators").events[0]["previous"] == 0
    restore = journal.step("restore-trust")
    assert (restore.status, restore.detail) == (StepStatus.DONE, CLOSED_AFTER_FAILURE)
    assert journal.step("node:k1").status is StepStatus.PENDING


def test_resume_sets_the_trust_again_before_expand_and_puts_it_back_at_the_end(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path, trust=True)
    cluster.engine.exit_code = 1  # expand fails; the run puts the trust back
    with pytest.raises(MigrationError):
        _run(plan, cluster, journal, tmp_path)
    cluster.engine.exit_code = 0
    cluster.calls.clear()
    Executor(plan, RunContext(cluster.drivers(), journal, tmp_path / "runs" / journal.run_id)).resume()
    trust = [c for c in cluster.calls if c.startswith("trust")]
    assert trust == ["trust 1", "trust 0"]
    # Set before the resumed expand ran its db_sync, put back after contract.
    assert cluster.calls.index("trust 1") < next(i for i, c in enumerate(cluster.calls) if "--expand" in c)
    assert cluster.calls.index("trust 0") > next(i for i, c in enumerate(cluster.calls) if "--contract" in c)
    assert journal.step("restore-trust").status is StepStatus.DONE
    assert [e["previous"] for e in journal.events_of("trust-function-creators", Event.TRUST_SET)] == [0, 0]


def test_the_trust_setting_is_not_touched_when_it_was_never_set(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path, trust=True)
    cluster.nodes["k1"].fail_start = True
    plan = dataclasses.replace(
        plan, steps=tuple(s for s in plan.steps if s.kind is not StepKind.TRUST_FUNCTION_CREATORS)
    )
    with pytest.raises(HealthError):
        _run(plan, cluster, journal, tmp_path)
    assert not [c for c in cluster.calls if c.startswith("trust")]
    assert journal.step("restore-trust").status is StepStatus.PENDING


def test_a_failed_expand_stops_the_run_with_the_containers_last_lines(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.engine.exit_code = 1
    cluster.engine.output = (
        "\n".join(f"line {i}" for i in range(50)) + "\nsqlalchemy.exc.OperationalError: boom"
    )
    with pytest.raises(MigrationError) as raised:
        _run(plan, cluster, journal, tmp_path)
    assert raised.value.exit_code is ExitCode.MIGRATION
    assert "db_sync --expand failed" in str(raised.value)
    assert "OperationalError: boom" in str(raised.value)
    assert "line 0" not in str(raised.value)  # the last lines, not the whole output
    assert cluster.engine.commands == [["keystone-manage", "db_sync", "--expand"]]  # nothing after it ran
    assert journal.step("expand").status is StepStatus.FAILED
    assert journal.step("migrate").status is StepStatus.PENDING
    logs = list((tmp_path / "runs").rglob("expand.log"))
    assert len(logs) == 1
    assert "line 0" in logs[0].read_text()  # the whole output is kept in the run's log


def test_a_node_that_does_not_drain_goes_back_into_rotation_and_stops_the_run(tmp_path: Path) -> None:
    inventory, plan, cluster, journal = _setup(tmp_path)
    cluster.rotation.stuck = set(inventory.node("k2").servers)
    with pytest.raises(DrainError, match="node k2 did not drain") as raised:
        _run(plan, cluster, journal, tmp_path)
    assert raised.value.exit_code is ExitCode.DRAIN
    assert "back in rotation on 28.1.0" in str(raised.value)
    k2 = [c for c in cluster.calls if c.endswith(" k2")]
    assert k2 == ["drain k2", "wait-drained k2", "ready k2", "wait-up k2"]  # never stopped, only put back
    assert journal.step("node:k1").status is StepStatus.DONE
    assert journal.step("node:k2").status is StepStatus.FAILED
    assert journal.rolled_back("node:k2")
    assert journal.step("contract").status is StepStatus.PENDING


def test_a_migration_that_outlives_its_timeout_is_reported_and_left_running(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.engine.outlived = True
    with pytest.raises(
        MigrationError, match=r"db_sync --expand did not finish within run\.migration_timeout_s"
    ) as raised:
        _run(plan, cluster, journal, tmp_path)
    assert "resume" in str(raised.value)
    assert cluster.engine.running_throwaways() == ["c-1"]  # reported, never removed or killed
    assert journal.step("expand").status is StepStatus.FAILED
    assert not [c for c in cluster.calls if c.startswith(("drain", "stop"))]


def test_keys_that_differ_on_one_node_stop_the_run_before_any_node_is_touched(tmp_path: Path) -> None:
    inventory, plan, cluster, journal = _setup(tmp_path)
    repository = inventory.key_repositories[0]
    cluster.nodes["k2"].keys = {repository: "b2" * 32}
    with pytest.raises(KeysError, match="do not hold the same keys on every node") as raised:
        _run(plan, cluster, journal, tmp_path)
    assert raised.value.exit_code is ExitCode.KEYS
    assert (
        f"{repository}: a1a1a1a1a1a1 on node k1, node k3, the throwaway container; b2b2b2b2b2b2 on node k2"
        in str(raised.value)
    )
    assert not [c for c in cluster.calls if c.startswith(("drain", "stop"))]
    (compared,) = journal.events_of("keys-before", Event.KEYS_COMPARED)
    assert compared["digests"]["node k2"][repository] == "b2" * 6  # short digests only


def test_keys_are_compared_before_the_first_node_and_after_the_last(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    _run(plan, cluster, journal, tmp_path)
    order = [s.id for s in plan.steps]
    assert order.index("keys-before") == order.index("node:k1") - 1
    assert order.index("keys-after") == order.index("node:k3") + 1
    assert journal.events_of("keys-after", Event.KEYS_COMPARED)


class _WarmReader:
    """A warm keystone-manage container that answers readings only (``digest``: what it sees)."""

    def __init__(self, digest: str | None) -> None:
        self.digest = digest
        self.read_for: list[tuple[str, str]] = []

    def begin(self, setup: ManageSetup, labels: Mapping[str, str]) -> None: ...

    def run(
        self, setup: ManageSetup, argv: Sequence[str], timeout_s: float, environment: object = None
    ) -> Finished | None:
        return None  # migrations run in containers of their own

    def read(
        self, engine: str, image: str, mounts: Sequence[BindMount], command: Sequence[str]
    ) -> Finished | None:
        self.read_for.append((engine, image))
        if self.digest is None:
            return None  # it cannot take it
        repositories = command[command.index(KEY_DIGEST_SCRIPT) + 1 :]
        return Finished(0, "\n".join(f"KEYDIGEST {r} 2 {self.digest}" for r in repositories))

    def close(self, *, wait: bool = True) -> None: ...


def _run_with_warm(
    plan: Plan, cluster: FakeCluster, journal: Journal, tmp_path: Path, warm: _WarmReader
) -> None:
    drivers = dataclasses.replace(cluster.drivers(), keystone_manage=warm)
    Executor(plan, RunContext(drivers, journal, tmp_path / "runs" / journal.run_id)).run()


def test_the_throwaways_keys_are_read_in_the_warm_container_when_there_is_one(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    warm = _WarmReader("a1" * 32)
    _run_with_warm(plan, cluster, journal, tmp_path, warm)
    assert warm.read_for == [("local", plan.target_image)] * 2
    assert not [c for c in cluster.calls if c.startswith("run ") and "KEYDIGEST" in c], (
        "no container of its own"
    )
    for step in ("keys-before", "keys-after"):
        (compared,) = journal.events_of(step, Event.KEYS_COMPARED)
        assert compared["throwaway_read_in"] == "the warm keystone-manage container"


def test_other_keys_in_the_warm_container_stop_the_run_before_any_node(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    with pytest.raises(KeysError, match="do not hold the same keys on every node") as raised:
        _run_with_warm(plan, cluster, journal, tmp_path, _WarmReader("c3" * 32))
    assert "c3c3c3c3c3c3 on the throwaway container" in str(raised.value)
    assert not [c for c in cluster.calls if c.startswith(("drain", "stop"))]


def test_a_warm_container_that_cannot_read_leaves_it_to_a_container_of_its_own(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    warm = _WarmReader(None)
    _run_with_warm(plan, cluster, journal, tmp_path, warm)
    assert len(warm.read_for) == 2
    assert sum(c.startswith("run ") and KEY_DIGEST_SCRIPT in c for c in cluster.calls) == 2
    (compared,) = journal.events_of("keys-before", Event.KEYS_COMPARED)
    assert compared["throwaway_read_in"] == "a container of its own"


def test_a_swapped_node_goes_back_only_once_tokens_are_accepted_both_ways(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    _run(plan, cluster, journal, tmp_path)
    peers = [e["peer"] for n in ("k1", "k2", "k3") for e in journal.events_of(f"node:{n}", Event.TOKENS)]
    assert peers == ["k2", "k3", "k2"]  # the next old node while there is one, then the one before
    k1 = cluster.calls.index("ready k1")
    assert "http://k1 issues a token" in cluster.calls[:k1]
    assert "http://k2 validates a token" in cluster.calls[:k1]
    assert "http://k1 validates a token" in cluster.calls[:k1]


def test_a_node_whose_tokens_a_peer_rejects_is_rolled_back(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.tokens.foreign = {"http://k1"}
    with pytest.raises(HealthError, match=r"node k1 failed on 29\.1\.0 and was rolled back") as raised:
        _run(plan, cluster, journal, tmp_path)
    assert "node k2 rejects a token node k1 issued" in str(raised.value)
    k1 = [c for c in cluster.calls if c.endswith(" k1")]
    # Never back into rotation on the target: restored to the old release first.
    assert k1.index("restore-old k1") < k1.index("ready k1")
    assert k1.count("ready k1") == 1
    assert journal.rolled_back("node:k1")


def test_a_swapped_nodes_release_is_read_while_it_boots(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    steps = tuple(
        dataclasses.replace(s, health_timeout_s=3.0) if isinstance(s, NodeUpgrade) else s for s in plan.steps
    )
    cluster.nodes["k1"].answers_once_read = True
    _run(dataclasses.replace(plan, steps=steps), cluster, journal, tmp_path)
    (version,) = journal.events_of("node:k1", Event.VERSION)
    assert version["version"] == "29.1.0"
    assert journal.step("node:k1").status is StepStatus.DONE


@pytest.mark.parametrize("while_booting", [None, "exec failed: container is restarting"])
def test_a_release_unread_while_the_node_boots_is_read_again_once_it_answers(
    tmp_path: Path, while_booting: str | None
) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.nodes["k1"].unreadable = [while_booting]
    _run(plan, cluster, journal, tmp_path)
    (version,) = journal.events_of("node:k1", Event.VERSION)
    assert version["version"] == "29.1.0"
    calls = gates_in_order(cluster.calls)
    assert calls.index("health k1") < len(calls) - 1 - calls[::-1].index("release k1"), (
        "read again once healthy"
    )


def test_a_node_on_another_release_is_rolled_back_and_its_last_lines_are_kept(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.nodes["k1"].target_release = "28.1.0"  # the replacement serves the old release
    with pytest.raises(HealthError, match=r"node k1 failed on 29\.1\.0 and was rolled back") as raised:
        _run(plan, cluster, journal, tmp_path)
    # Read before the rollback removed the replacement: its output is in the error.
    assert "the node says it runs 28.1.0, expected 29.1.0" in str(raised.value)
    assert "last 20 lines of k1" in str(raised.value)
    assert "resume" in (raised.value.hint or "")
    assert "rollback" in (raised.value.hint or "")


def test_the_trust_setting_stays_while_a_migration_left_running_may_need_it(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path, trust=True)
    cluster.engine.outlived = True
    with pytest.raises(MigrationError, match="did not finish within"):
        _run(plan, cluster, journal, tmp_path)
    assert journal.step("expand").intended is not None  # the db_sync may still be running
    assert journal.step("restore-trust").status is StepStatus.PENDING
    assert "trust 0" not in cluster.calls
    assert "trust 1" in cluster.calls


def test_rollback_refuses_while_a_migration_of_the_run_still_runs(tmp_path: Path) -> None:
    inventory, plan, cluster, journal = _setup(tmp_path, trust=True)
    cluster.engine.outlived = True
    with pytest.raises(MigrationError):
        _run(plan, cluster, journal, tmp_path)
    assert [e["event"] for e in journal.events_of("expand", Event.LEFT_RUNNING)] == ["left running"]
    with pytest.raises(PreflightError, match="still running") as raised:
        run_rollback(inventory, cluster.drivers(), lambda _journal, _plan: True)
    assert "c-" in str(raised.value)
    assert "trust 0" not in cluster.calls  # the migration may still need it


def test_maint_lost_to_a_reload_before_the_stop_means_draining_again(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.rotation.reloads_after_maint = 1  # the first MAINT of k1 is forgotten
    _run(plan, cluster, journal, tmp_path)
    k1 = [c for c in cluster.calls if c.endswith(" k1")]
    assert k1[:7] == [
        "drain k1",
        "wait-drained k1",
        "maint k1",
        "drain k1",
        "wait-drained k1",
        "maint k1",
        "stop k1",
    ]
    events = [e["event"] for e in journal.step("node:k1").events]
    assert events.count(Event.REAPPLIED) == 1
    assert journal.step("node:k1").status is StepStatus.DONE


def test_a_node_that_keeps_coming_back_into_rotation_is_never_stopped(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.rotation.reloads_after_maint = 99
    with pytest.raises(DrainError, match="node k1 keeps coming back into rotation") as raised:
        _run(plan, cluster, journal, tmp_path)
    assert "server-state-file" in str(raised.value)
    assert not [c for c in cluster.calls if c.startswith("stop ")]
    assert journal.rolled_back("node:k1")


def test_a_node_that_fails_after_its_swap_is_rolled_back_before_the_run_stops(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.nodes["k2"].fail_start = True
    with pytest.raises(HealthError, match=r"node k2 failed on 29\.1\.0 and was rolled back") as raised:
        _run(plan, cluster, journal, tmp_path)
    assert raised.value.exit_code is ExitCode.HEALTH
    assert "cannot create c-k2" in str(raised.value)  # what failed
    k2 = [c for c in gates_in_order(cluster.calls) if c.endswith(" k2")]
    assert k2[k2.index("start-target k2") :] == [
        "start-target k2",
        "restore-old k2",
        "health k2",
        "release k2",
        "ready k2",
        "wait-up k2",
    ]
    assert cluster.nodes["k2"].release == "28.1.0"
    assert cluster.nodes["k1"].release == "29.1.0"  # the run stops; k1 stays done
    record = journal.step("node:k2")
    assert (record.status, record.intended) == (StepStatus.FAILED, None)
    assert record.events[-1]["event"] == "rolled back"
    assert journal.step("node:k3").status is StepStatus.PENDING


def test_a_rollback_that_fails_says_what_state_each_node_is_in(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.nodes["k2"].fail_start = True
    cluster.nodes["k2"].fail_restore = True
    with pytest.raises(RollbackError, match="rolling it back failed too") as raised:
        _run(plan, cluster, journal, tmp_path)
    assert raised.value.exit_code is ExitCode.ROLLBACK
    message = str(raised.value)
    assert "node k1: runs 29.1.0, UP everywhere" in message
    assert "node k2: runs 28.1.0" in message
    assert "old copy kept as c-k2-ku-old-run1" in message
    # The journal on disk keeps the effect that was announced and never recorded as done.
    record = Journal.load(tmp_path)
    assert record is not None
    intended = record.step("node:k2").intended
    assert intended is not None
    assert (intended["event"], intended["old_name"]) == ("old node restored", "c-k2-ku-old-run1")
    assert record.step("node:k2").status is StepStatus.FAILED


def test_undo_brings_swapped_nodes_back_newest_first(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    steps = tuple(s for s in plan.steps if s.id not in ("contract", "cleanup"))
    executor = Executor(
        dataclasses.replace(plan, steps=steps), RunContext(cluster.drivers(), journal, tmp_path)
    )
    executor.run()
    cluster.calls.clear()
    assert executor.undo() == ["node:k3", "node:k2", "node:k1"]
    restored = [c for c in cluster.calls if c.startswith("restore-old")]
    assert restored == ["restore-old k3", "restore-old k2", "restore-old k1"]
    # Each node leaves rotation (drained) before its old copy comes back.
    assert cluster.calls[:4] == ["drain k3", "wait-drained k3", "maint k3", "restore-old k3"]
    assert {n.release for n in cluster.nodes.values()} == {"28.1.0"}
    assert journal.step("node:k1").status is StepStatus.UNDONE
    assert journal.step("expand").status is StepStatus.DONE  # kept: the old release serves on it


def test_undo_is_refused_once_contract_has_started(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    executor = _run(plan, cluster, journal, tmp_path)
    cluster.calls.clear()
    with pytest.raises(RollbackError, match="schema was contracted") as raised:
        executor.undo()
    assert "old nodes kept for rollback were removed" in str(raised.value)
    assert raised.value.exit_code is ExitCode.ROLLBACK
    assert cluster.calls == []  # refused before anything changed


def test_undo_is_refused_once_cleanup_removed_the_old_nodes(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    # The schema was already at the target: contract is skipped, cleanup still removes the old nodes.
    steps = tuple(
        dataclasses.replace(s, skip_reason="at target") if s.kind is StepKind.CONTRACT else s
        for s in plan.steps
    )
    executor = _run(dataclasses.replace(plan, steps=steps), cluster, journal, tmp_path)
    cluster.calls.clear()
    with pytest.raises(RollbackError, match="old nodes kept for rollback were removed"):
        executor.undo()
    assert cluster.calls == []


def test_the_plan_round_trips_through_json_exactly(tmp_path: Path) -> None:
    for keep_old, trust in ((False, False), (True, True)):
        inventory, plan, _, _ = _setup(tmp_path, keep_old=keep_old, trust=trust)
        written = json.dumps(plan.to_dict())
        # Environment values are never written down (a value may be a secret): only their names.
        assert "init_command" not in written
        assert "OS_DATABASE__CONNECTION_PARAMETERS" in written
        read = Plan.from_dict(json.loads(written))
        assert with_current_environment(read, inventory, inventory_setup(inventory)) == plan


def test_step_ids_stay_unique_across_hops() -> None:
    inventory = _inventory()
    first = build_plan(inventory, _facts(inventory), run_id="r", hop="24.1.0")
    second = build_plan(inventory, _facts(inventory), run_id="r", hop="25.0.0")
    both = dataclasses.replace(first, steps=first.steps + second.steps)
    assert len({s.id for s in both.steps}) == len(both.steps)
    assert "25.0.0/node:k1" in {s.id for s in both.steps}
    with pytest.raises(ValueError, match="unique"):
        dataclasses.replace(first, steps=first.steps + first.steps)


def test_a_first_signal_stops_between_steps_and_a_second_stops_at_once(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    stop = StopRequests()
    stop._handle(signal.SIGTERM, None)  # as the handler does when the signal arrives
    context = RunContext(cluster.drivers(), journal, tmp_path, stop)
    with pytest.raises(Interrupted, match="stopped on SIGTERM before step backup") as raised:
        Executor(plan, context).run()
    assert raised.value.exit_code is ExitCode.INTERRUPTED
    assert cluster.calls == []  # nothing started
    with pytest.raises(ForcedStop, match="SIGINT again"):
        stop._handle(signal.SIGINT, None)


def test_a_node_whose_old_release_was_unknown_is_rolled_back_on_its_health_alone(tmp_path: Path) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    # Images without the version label: the plan could not name the release the nodes ran.
    steps = tuple(
        dataclasses.replace(s, from_release=None) if isinstance(s, NodeUpgrade) else s for s in plan.steps
    )
    cluster.nodes["k1"].fail_start = True
    with pytest.raises(HealthError, match="was rolled back"):
        _run(dataclasses.replace(plan, steps=steps), cluster, journal, tmp_path)
    assert journal.rolled_back("node:k1")


class _EngineWithoutTheOldImage(FakeEngine):
    """A node's container whose image was removed from the engine."""

    def container(self, name: str) -> ContainerFacts | None:
        return ContainerFacts("id-k1", name, "running", "sha256:gone", "ks:28", "28.1.0", {}, {"Config": {}})

    def stop(self, container: str, timeout_s: int) -> None:
        self.calls.append(f"engine-stop {container}")


def test_a_node_whose_replacement_cannot_be_derived_is_not_stopped() -> None:
    engine = _EngineWithoutTheOldImage([])
    node = _inventory().nodes[0]
    with pytest.raises(DockerError, match="the image of c-k1 is gone"):
        DockerNode(node, engine, FakeHttp()).stop()
    assert engine.calls == []

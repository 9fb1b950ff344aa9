"""The offline plans (--cold, restore), the release-path and drift findings: pure, no Docker."""

from __future__ import annotations

from dataclasses import replace

from runner.facts import DatabaseFacts, NodeFacts
from runner.facts.drift import DriftFacts
from runner.plan import Plan, build_plan
from runner.plan_offline import cold_plan, restore_plan
from runner.schema import Difference
from runner.steps import (
    Backup,
    LoadBackup,
    NodeIn,
    NodeOut,
    OfflineMigration,
    Undo,
    step_from_dict,
)
from tests.unit.test_plan import _facts, _inventory, _node


def _rolling() -> Plan:
    inventory = _inventory()
    return build_plan(inventory, _facts(inventory), run_id="r")


def test_cold_stops_every_node_before_the_backup_and_the_schema_and_starts_them_after() -> None:
    cold = cold_plan(_rolling())
    assert cold.procedure == "cold"
    assert [s.id for s in cold.steps] == [
        "keys-before", "node-out:k1", "node-out:k2", "node-out:k3", "backup", "offline-migration",
        "node-in:k1", "node-in:k2", "node-in:k3", "keys-after", "flush-cache", "cleanup",
    ]  # fmt: skip
    offline = cold.step("offline-migration")
    assert isinstance(offline, OfflineMigration)
    assert offline.undo_rule is Undo.ENDS_WINDOW
    node_in = cold.step("node-in:k2")
    assert isinstance(node_in, NodeIn)
    assert (node_in.image, node_in.release, node_in.from_release) == ("ks:29", "29.1.0", "28.1.0")
    assert node_in.kept_as == cold.step("cleanup").to_dict()["params"]["kept_as"][1]


def test_offline_plans_survive_the_journal_exactly() -> None:
    cold = cold_plan(_rolling())
    again = Plan.from_dict(cold.to_dict())
    assert again.to_dict() == cold.to_dict()
    assert isinstance(step_from_dict(cold.step("node-out:k1").to_dict()), NodeOut)


def test_a_cluster_at_the_target_runs_no_offline_migration() -> None:
    inventory = _inventory()
    at_target = build_plan(
        inventory, _facts(inventory, database=DatabaseFacts(None, frozenset({"e-new", "c-new"}))), run_id="r"
    )
    assert cold_plan(at_target).step("offline-migration").skipped


def test_restore_starts_every_node_on_the_image_that_served_when_the_backup_was_taken() -> None:
    plan = restore_plan(
        _rolling(),
        backup_image="db:1",
        dump="/b/keystone.sql.gz",
        sha256="f" * 64,
        images={"k1": "ks:28", "k2": "ks:28", "k3": "ks:28-patched"},
        release="28.1.0",
        safety=Backup(id="backup", why="now", image="db:1", directory="/b/r", release="29.1.0"),
    )
    assert plan.procedure == "restore"
    assert [s.id for s in plan.steps] == [
        "node-out:k1", "node-out:k2", "node-out:k3", "backup", "load-backup",
        "node-in:k1", "node-in:k2", "node-in:k3", "cleanup",
    ]  # fmt: skip
    assert not any(s.skipped for s in plan.steps)
    safety = plan.step("backup")
    assert isinstance(safety, Backup)
    assert (safety.restore_check, safety.release) == (False, "29.1.0")  # restorable in turn
    load = plan.step("load-backup")
    assert isinstance(load, LoadBackup)
    assert (load.dump, load.undo_rule) == ("/b/keystone.sql.gz", Undo.ENDS_WINDOW)
    k3 = plan.step("node-in:k3")
    assert isinstance(k3, NodeIn)
    assert (k3.image, k3.release) == ("ks:28-patched", "28.1.0")
    assert plan.findings == ()


def _refusals(**changes: object) -> list[str]:
    inventory = _inventory()
    return [f.check for f in build_plan(inventory, _facts(inventory, **changes), run_id="r").findings]


def test_a_downgrade_and_an_unsupported_skip_are_findings_with_the_path() -> None:
    inventory = _inventory()
    newer = tuple(_node(n, "30.0.0") for n in inventory.nodes)
    assert _refusals(nodes=newer) == ["release-path"]
    older = tuple(_node(n, "27.1.0") for n in inventory.nodes)
    assert _refusals(nodes=older) == []  # 2025.1 -> 2026.1: SLURP
    oldest = tuple(_node(n, "26.1.0") for n in inventory.nodes)
    plan = build_plan(inventory, _facts(inventory, nodes=oldest), run_id="r")
    assert [f.check for f in plan.findings] == ["release-path"]
    assert "26.x -> 27.x -> 29.x" in plan.findings[0].hint


def test_a_database_alembic_never_migrated_is_a_finding() -> None:
    legacy = DatabaseFacts(None, frozenset(), None, frozenset({"migrate_version", "user"}))
    assert "release-path" in _refusals(database=legacy)


def test_drift_refuses_each_difference_nobody_accepted() -> None:
    differences = (
        Difference("column:trust.remaining_uses", "missing", "expected int(11) NULL"),
        Difference("index:local_user.ix_x", "extra", "found (name)"),
    )
    drift = DriftFacts(
        image="ks:28", differences=differences, accepted=("index:local_user.ix_x", "table:typo")
    )
    inventory = _inventory()
    plan = build_plan(inventory, _facts(inventory, drift=drift), run_id="r")
    assert [(f.check, f.what.rsplit(": ", 1)[1]) for f in plan.findings] == [
        ("schema-drift", "column:trust.remaining_uses")
    ]
    assert "--accept-drift column:trust.remaining_uses" in plan.findings[0].hint
    assert any("accepted for this run" in n for n in plan.notices)
    assert any("table:typo" in n for n in plan.notices)
    skipped = replace(drift, differences=(), accepted=(), skipped="a run is under way")
    assert not build_plan(inventory, _facts(inventory, drift=skipped), run_id="r").findings


def test_node_facts_without_a_container_do_not_enter_the_path() -> None:
    inventory = _inventory()
    gone = (
        NodeFacts(inventory.nodes[0], None, None, None, "refused"),
        *(_node(n) for n in inventory.nodes[1:]),
    )
    assert "release-path" not in _refusals(nodes=gone)

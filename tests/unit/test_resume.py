"""Resume: the journal's plan goes on where the run stopped; the cluster must be where the journal says."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runner.errors import HealthError
from runner.executor import Executor
from runner.history import disagreements, unfinished
from runner.journal import Journal, StepStatus
from runner.plan import Plan
from runner.steps import RunContext
from tests.unit.fakes import FakeCluster, gates_in_order
from tests.unit.test_executor import _setup
from tests.unit.test_plan import NEW_HEADS, _facts, _node


def _killed_in_k2_swap(tmp_path: Path) -> tuple[Plan, FakeCluster, Journal]:
    """A run whose runner died after k2's old container was stopped and renamed."""
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.nodes["k2"].killed_in = "set_aside"
    with pytest.raises(KeyboardInterrupt):
        Executor(plan, RunContext(cluster.drivers(), journal, tmp_path)).run()
    cluster.nodes["k2"].killed_in = None
    loaded = Journal.load(tmp_path)
    assert loaded is not None
    return Plan.from_dict(loaded.document["plan"]), cluster, loaded


def test_a_run_killed_mid_swap_is_put_back_then_finished(tmp_path: Path) -> None:
    plan, cluster, journal = _killed_in_k2_swap(tmp_path)
    assert journal.step("node:k2").status is StepStatus.RUNNING
    assert unfinished(journal, plan) == ["node:k1 done", "node:k2 running"]
    cluster.calls.clear()
    Executor(plan, RunContext(cluster.drivers(), journal, tmp_path)).resume()
    k2 = [c for c in gates_in_order(cluster.calls) if c.endswith(" k2")]
    # Stopped and renamed, never started: the old one comes back first, then the swap runs afresh.
    assert k2[:4] == ["restore-old k2", "health k2", "release k2", "ready k2"]
    assert k2[5:8] == ["drain k2", "wait-drained k2", "maint k2"]
    assert "stop k1" not in cluster.calls  # done stays done
    assert {n.release for n in cluster.nodes.values()} == {"29.1.0"}
    assert cluster.database.heads == NEW_HEADS
    assert all(journal.step(s.id).status is StepStatus.DONE for s in plan.steps if not s.skipped)
    assert journal.step("node:k2").intended is None


def test_the_cluster_must_be_where_the_journal_left_it(tmp_path: Path) -> None:
    inventory, plan, _, journal = _setup(tmp_path)
    journal.end("node:k1", StepStatus.DONE)
    journal.end("expand", StepStatus.DONE)
    expanded = dataclasses.replace(_facts(inventory).database, heads=frozenset({"e-new", "c-old"}))
    # k1 runs 29.1.0 and k2..k3 28.1.0, as the journal says: resume may go on.
    agreeing = _facts(
        inventory,
        nodes=(_node(inventory.nodes[0], "29.1.0"), *(_node(n) for n in inventory.nodes[1:])),
        database=expanded,
    )
    assert disagreements(plan, journal, agreeing) == []
    # Someone put k1 back on 28.1.0 by hand and moved k3 on; the schema is not expanded.
    changed = _facts(
        inventory,
        nodes=(_node(inventory.nodes[0]), _node(inventory.nodes[1]), _node(inventory.nodes[2], "29.1.0")),
    )
    found = disagreements(plan, journal, changed)
    assert len(found) == 3
    assert "node k1 was upgraded to 29.1.0; its container c-k1 carries 28.1.0" in found[0]
    assert "node k3 still runs 28.1.0; its container c-k3 carries 29.1.0" in found[1]
    assert "do not hold the target's expand head e-new" in found[2]


def test_a_finished_or_rolled_back_run_leaves_nothing_unfinished(tmp_path: Path) -> None:
    _, plan, _, journal = _setup(tmp_path)
    journal.end("node:k1", StepStatus.DONE)
    assert unfinished(journal, plan) == ["node:k1 done"]
    journal.finish("rolled back")
    assert unfinished(journal, plan) == []


def test_a_node_rolled_back_by_the_run_is_upgraded_afresh_without_being_put_back_twice(
    tmp_path: Path,
) -> None:
    _, plan, cluster, journal = _setup(tmp_path)
    cluster.nodes["k2"].fail_start = True
    with pytest.raises(HealthError):
        Executor(plan, RunContext(cluster.drivers(), journal, tmp_path)).run()
    assert unfinished(journal, plan) == ["node:k1 done"]  # k2 is whole again: not half-done
    cluster.nodes["k2"].fail_start = False  # the operator fixed the image
    cluster.calls.clear()
    Executor(plan, RunContext(cluster.drivers(), journal, tmp_path)).resume()
    k2 = [c for c in cluster.calls if c.endswith(" k2")]
    assert k2[:3] == ["drain k2", "wait-drained k2", "maint k2"]
    assert "restore-old k2" not in k2
    assert {n.release for n in cluster.nodes.values()} == {"29.1.0"}

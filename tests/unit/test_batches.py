"""[run] nodes_at_once: nodes swapped in batches, refused when too few would stay in rotation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runner.errors import HealthError, RollbackError
from runner.executor import Executor, batched
from runner.journal import Event, Journal, StepStatus
from runner.model import Inventory
from runner.plan import Plan, build_plan
from runner.steps import NodeUpgrade, RunContext
from tests.unit.fakes import FakeCluster, fake_cluster
from tests.unit.test_plan import NEW_HEADS, OLD_HEADS, _facts, _inventory, _node

EXPANDED = OLD_HEADS | {"expand2"}


def _plan(
    at_once: int, min_in_rotation: int = 1, names: tuple[str, ...] = ("k1", "k2", "k3")
) -> tuple[Inventory, Plan]:
    inventory = dataclasses.replace(_inventory(names), nodes_at_once=at_once, min_in_rotation=min_in_rotation)
    return inventory, build_plan(inventory, _facts(inventory), run_id="run1")


def test_nodes_are_grouped_in_batches_and_peers_are_outside_their_batch() -> None:
    _, plan = _plan(2)
    assert not plan.refused
    nodes = {s.node_name: s for s in plan.steps if isinstance(s, NodeUpgrade)}
    assert {name: step.batch for name, step in nodes.items()} == {"k1": 0, "k2": 0, "k3": 1}
    # k1's token gate checks against a node still serving (k3), not k2, which is out with it.
    assert [p.name for p in nodes["k1"].peers] == ["k3"]
    assert [p.name for p in nodes["k3"].peers] == ["k2", "k1"]
    # One at a time (the default): no batches, every other node a peer.
    _, alone = _plan(1)
    assert {s.batch for s in alone.steps if isinstance(s, NodeUpgrade)} == {None}
    # The batch survives the journal (resume reads the plan back from it).
    again = type(plan).from_dict(plan.to_dict())
    assert [s.batch for s in again.steps if isinstance(s, NodeUpgrade)] == [0, 0, 1]


@pytest.mark.parametrize(("at_once", "min_in_rotation"), [(3, 1), (2, 2), (5, 1), (1, 3)])
def test_a_batch_that_would_leave_too_few_in_rotation_is_refused(at_once: int, min_in_rotation: int) -> None:
    _, plan = _plan(at_once, min_in_rotation)
    assert [f.check for f in plan.findings] == ["in-rotation"]
    assert "min_in_rotation" in plan.findings[0].what


def _run_batched(tmp_path: Path, at_once: int = 2) -> tuple[Plan, FakeCluster, Journal, Executor]:
    inventory, plan = _plan(at_once)
    cluster = fake_cluster(inventory.nodes, OLD_HEADS, {"--expand": EXPANDED, "--contract": NEW_HEADS})
    journal = Journal.start(tmp_path, plan.to_dict(), "inventory.toml")
    executor = Executor(plan, RunContext(cluster.drivers(), journal, tmp_path / "runs" / journal.run_id))
    return plan, cluster, journal, executor


def test_a_batch_goes_through_each_phase_together(tmp_path: Path) -> None:
    _, cluster, journal, executor = _run_batched(tmp_path)
    executor.run()
    calls = cluster.calls
    # Both out of rotation before either stops; both started before either is gated; k3 after both are UP.
    assert calls.index("maint k2") < calls.index("stop k1")
    assert calls.index("start-target k2") < calls.index("health k1")
    assert calls.index("drain k3") > max(calls.index("wait-up k1"), calls.index("wait-up k2"))
    for name in ("k1", "k2", "k3"):
        assert journal.step(f"node:{name}").status is StepStatus.DONE
        assert cluster.nodes[name].release == "29.1.0"


def test_when_one_node_of_a_batch_fails_the_whole_batch_is_put_back(tmp_path: Path) -> None:
    _, cluster, journal, executor = _run_batched(tmp_path)
    cluster.nodes["k2"].fail_start = True
    with pytest.raises(HealthError, match="node k2 failed"):
        executor.run()
    for name in ("k1", "k2"):
        assert cluster.nodes[name].release == "28.1.0", name
        assert journal.step(f"node:{name}").status is StepStatus.FAILED
        assert journal.rolled_back(f"node:{name}")
        assert journal.events_of(f"node:{name}", Event.UP), name  # back in rotation
    assert journal.step("node:k1").detail == "rolled back with node:k2 (same batch)"
    assert not [c for c in cluster.calls if c.endswith("k3") and not c.startswith("release")]
    assert journal.step("node:k3").status is StepStatus.PENDING


def test_resume_after_a_failed_batch_runs_the_batch_again(tmp_path: Path) -> None:
    plan, cluster, journal, executor = _run_batched(tmp_path)
    cluster.nodes["k2"].fail_start = True
    with pytest.raises(HealthError):
        executor.run()
    cluster.nodes["k2"].fail_start = False
    cluster.calls.clear()
    Executor(plan, RunContext(cluster.drivers(), journal, tmp_path / "runs" / journal.run_id)).resume()
    assert cluster.calls.index("start-target k2") < cluster.calls.index("health k1")
    assert all(cluster.nodes[n].release == "29.1.0" for n in ("k1", "k2", "k3"))


def test_a_batch_stays_together_around_a_node_already_on_the_target(tmp_path: Path) -> None:
    inventory = dataclasses.replace(_inventory(("k1", "k2", "k3", "k4")), nodes_at_once=2)
    facts = _facts(inventory)
    done = _node(inventory.nodes[1], "29.1.0")
    plan = build_plan(
        inventory, dataclasses.replace(facts, nodes=(facts.nodes[0], done, *facts.nodes[2:])), run_id="r"
    )
    groups = [[s.id for s in group] for group in batched(plan.steps) if len(group) > 1]
    assert groups == [["node:k1", "node:k3"]]  # k2 is skipped; k4 alone in the next batch


def test_every_node_of_a_failed_batch_is_put_back_even_when_one_cannot_be(tmp_path: Path) -> None:
    _, cluster, journal, executor = _run_batched(tmp_path, at_once=3)
    cluster.nodes["k3"].fail_start = True
    cluster.nodes["k2"].fail_restore = True
    with pytest.raises(RollbackError, match="putting back its batch failed too") as raised:
        executor.run()
    assert "node:k2" in str(raised.value)
    assert cluster.nodes["k1"].release == "28.1.0"  # put back, though k2 could not be
    assert journal.rolled_back("node:k1")
    assert journal.rolled_back("node:k3")

"""The last run, as its journal recorded it: read back, checked against the cluster. Pure but for reading the file.

``resume`` and ``rollback`` start from here; ``upgrade`` asks it whether an
earlier run was left unfinished.
"""

from __future__ import annotations

from pathlib import Path

from runner.errors import RollbackError
from runner.facts import ClusterFacts
from runner.journal import SCHEMA_VERSION, Journal, StepStatus
from runner.plan import Plan
from runner.steps import NodeUpgrade, StepKind

FINISHED = ("succeeded", "rolled back")


def last_run(state_dir: Path) -> tuple[Journal, Plan]:
    """The journal of the last run and its plan exactly as it ran; RollbackError when there is none."""
    journal = Journal.load(state_dir)
    if journal is None:
        raise RollbackError(
            "there is no earlier run here",
            observed=f"no journal in {state_dir}",
            hint="resume and rollback act on the last run recorded in the inventory's state directory",
        )
    schema = journal.document.get("schema")
    if schema != SCHEMA_VERSION:
        raise RollbackError(
            "the last run's journal was written by another version of keystone-upgrade",
            observed=f"journal schema {schema}; this version reads schema {SCHEMA_VERSION}",
            hint="resume or roll back with the version that made the run, or by hand from the journal's events",
        )
    return journal, Plan.from_dict(journal.document["plan"])


def unfinished(journal: Journal, plan: Plan) -> list[str]:
    """What an earlier run left half-way (empty when a new run may start)."""
    if journal.document["status"] in FINISHED:
        return []
    left = []
    for step in plan.steps:
        status = journal.step(step.id).status
        if status is StepStatus.RUNNING or (
            step.kind is StepKind.NODE
            and (
                status is StepStatus.DONE
                or (status is StepStatus.FAILED and not journal.rolled_back(step.id))
            )
        ):
            left.append(f"{step.id} {status.value}")
    return left


def disagreements(plan: Plan, journal: Journal, facts: ClusterFacts) -> list[str]:
    """Where the cluster is not what the journal says the run left; empty when resume can go on."""
    found = []
    for step in plan.steps:
        if not isinstance(step, NodeUpgrade):
            continue
        status = journal.step(step.id).status
        node = next((n for n in facts.nodes if n.config.name == step.node.name), None)
        container = node.container if node is not None else None
        running = container.keystone_version if container is not None else None
        if status is StepStatus.DONE and running != step.release:
            found.append(
                f"the journal says node {step.node.name} was upgraded to {step.release}; "
                f"its container {step.node.container} carries {running or 'nothing (missing)'}"
            )
        elif (
            status in (StepStatus.PENDING, StepStatus.UNDONE) or journal.rolled_back(step.id)
        ) and running != step.from_release:
            found.append(
                f"the journal says node {step.node.name} still runs {step.from_release}; "
                f"its container {step.node.container} carries {running or 'nothing (missing)'}"
            )
    expanded = any(
        journal.step(s.id).status is StepStatus.DONE for s in plan.steps if s.kind is StepKind.EXPAND
    )
    expand_head = facts.target.expand_head
    if expanded and expand_head is not None and expand_head not in facts.database.heads:
        found.append(
            f"the journal says expand was done; the database's heads {sorted(facts.database.heads)} "
            f"do not hold the target's expand head {expand_head}"
        )
    return found

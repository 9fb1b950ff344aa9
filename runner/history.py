"""The last run, as its journal recorded it: read back, checked against the cluster. Pure but for reading the file.

``resume`` and ``rollback`` start from here; ``upgrade`` asks it whether an
earlier run was left unfinished.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from runner.errors import RollbackError
from runner.facts import ClusterFacts
from runner.journal import Journal, StepStatus
from runner.journal_shape import damaged_journal
from runner.plan import Plan
from runner.steps import NodeUpgrade, StepKind

# Steps that leave a node changed (swapped, stopped): a run stopped after one is resumed or rolled back.
NODE_KINDS = frozenset({StepKind.NODE, StepKind.NODE_OUT, StepKind.NODE_IN})

ROLLED_BACK = "rolled back"  # the journal status of a run put back (rollback, or an offline run undone)
FINISHED = ("succeeded", ROLLED_BACK)


def last_run(state_dir: Path) -> tuple[Journal, Plan]:
    """The journal of the last run and its plan exactly as it ran.

    RollbackError when there is none; ConfigError (exit 3) when the journal is
    damaged or was written by another version (``Journal.load``, ``journal_plan``).
    """
    journal = Journal.load(state_dir)
    if journal is None:
        raise RollbackError(
            "there is no earlier run here",
            observed=f"no journal in {state_dir}",
            hint="resume and rollback act on the last run recorded in the inventory's state directory",
        )
    return journal, journal_plan(journal)


def journal_plan(journal: Journal) -> Plan:
    """The plan the journal holds, read back with every field of every step of the type it must have.

    ConfigError (exit 3) when it cannot be: a step of an unknown kind, a missing
    or extra parameter, a parameter of the wrong type.
    """
    try:
        plan = Plan.from_dict(journal.document["plan"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise damaged_journal(
            journal.path, [f"plan: cannot be read back ({type(exc).__name__}: {exc})"]
        ) from exc
    problems = _mismatches(plan, "plan")
    for step in plan.steps:
        problems += _mismatches(step, f"plan step {step.id}")
    if problems:
        raise damaged_journal(journal.path, problems)
    return plan


def _mismatches(record: Any, where: str) -> list[str]:
    """The fields of a dataclass whose value is not of the field's declared type (steps checked apart)."""
    try:
        hints = typing.get_type_hints(type(record))
    except NameError:  # an annotation only a type checker can resolve: nothing to check against
        return []
    found = []
    for field in fields(record):
        value = getattr(record, field.name)
        if field.name != "steps" and not _fits(value, hints[field.name]):
            found.append(
                f"{where}: {field.name} is {type(value).__name__} {value!r:.60}, not {hints[field.name]}"
            )
    return found


def _fits(value: Any, hint: Any) -> bool:  # noqa: PLR0911 - one answer per kind of hint
    """Whether ``value`` is of the type ``hint`` names (a bool is no number; an int is a float)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(item, args[0]) for item in value)
        return len(args) == len(value) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if isinstance(hint, type) and is_dataclass(hint):
        return isinstance(value, hint) and not _mismatches(value, "")
    return True  # a type the journal's JSON does not carry as such (a Path, an enum): left to the step


def unfinished(journal: Journal, plan: Plan) -> list[str]:
    """What an earlier run left half-way (empty when a new run may start)."""
    if journal.document["status"] in FINISHED:
        return []
    left = []
    for step in plan.steps:
        status = journal.step(step.id).status
        if status is StepStatus.RUNNING or (
            step.kind in NODE_KINDS
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
            continue  # only a rolling swap says which release its node runs between steps
        status = journal.step(step.id).status
        node = next((n for n in facts.nodes if n.config.name == step.node.name), None)
        running = node.known_release if node is not None else None
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

"""A damaged journal is one clear error (exit 3) in every reader: status, resume, rollback, upgrade.

Each reader starts at ``Journal.load`` (status, and an upgrade asking whether the last run
finished) or ``history.last_run`` (resume, rollback), so every damaged journal here goes
through both; nothing is written while reading.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner.errors import ConfigError, ExitCode
from runner.history import journal_plan, last_run
from runner.journal import JOURNAL_FILE, Event, Journal, StepStatus
from runner.plan import build_plan
from runner.report import build_report, render_report
from tests.unit.test_plan import _facts, _inventory

RUN_ID = "20261124T000000Z-abcdef"


def _valid_document(tmp_path: Path) -> dict[str, Any]:
    """A journal as a real run writes it: a plan from build_plan, a few transitions."""
    inventory = _inventory(("k1", "k2"))
    plan = build_plan(inventory, _facts(inventory), run_id=RUN_ID)
    journal = Journal.start(tmp_path, plan.to_dict(), "inventory.toml")
    first = plan.steps[0].id
    journal.begin(first)
    journal.intend(first, Event.DUMPED, directory="/backups")
    journal.event(first, Event.DUMPED, dump="keystone.sql.gz", sha256="0" * 64, tables=3)
    journal.end(first, StepStatus.DONE)
    node = next(s.id for s in plan.steps if s.kind == "node")
    journal.begin(node)
    journal.intend(node, Event.DRAIN)
    journal.finish("failed")
    document: dict[str, Any] = json.loads((tmp_path / JOURNAL_FILE).read_text())
    (tmp_path / JOURNAL_FILE).unlink()
    return document


def _node_index(document: dict[str, Any]) -> int:
    return next(i for i, s in enumerate(document["plan"]["steps"]) if s["kind"] == "node")


def _set(*place: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set the value at a place in the document (a key or an index at each level)."""

    def mutate(document: dict[str, Any]) -> None:
        parent: Any = document
        for step in place[:-1]:
            parent = parent[_index(document, step)]
        parent[_index(document, place[-1])] = value

    return mutate


def _drop(*place: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        parent: Any = document
        for step in place[:-1]:
            parent = parent[_index(document, step)]
        del parent[_index(document, place[-1])]

    return mutate


def _index(document: dict[str, Any], step: Any) -> Any:
    return _node_index(document) if step == "NODE" else step


def _swap_steps(document: dict[str, Any]) -> None:
    document["steps"][0], document["steps"][1] = document["steps"][1], document["steps"][0]


def _duplicate_first_step(document: dict[str, Any]) -> None:
    document["plan"]["steps"].append(document["plan"]["steps"][0])
    document["steps"].append(document["steps"][0])


def _no_steps(document: dict[str, Any]) -> None:
    document["plan"]["steps"] = document["steps"] = []


def _unknown_kind(document: dict[str, Any]) -> None:
    document["plan"]["steps"][0]["kind"] = "teleport"
    document["steps"][0]["kind"] = "teleport"


@dataclass(frozen=True)
class Case:
    id: str
    damage: Callable[[dict[str, Any]], None] | bytes
    expected: str
    # True: the document's shape is fine, only its plan cannot be read back (resume, rollback, upgrade).
    plan_only: bool = False


CASES = [
    # Not a JSON document at all.
    Case("empty", b"", "not a readable JSON document"),
    Case("truncated", b'{"schema": 2, "run_id": ', "not a readable JSON document"),
    Case("not-utf8", b"\xff\xfe{}", "not a readable JSON document"),
    Case("nan", b'{"schema": 2, "started_at": NaN}', "NaN is not a number a journal holds"),
    Case("infinity", b'{"schema": 2, "started_at": -Infinity}', "-Infinity is not a number a journal holds"),
    Case("nested-too-deep", b"[" * 100_000 + b"]" * 100_000, "not a readable JSON document"),
    Case("null", b"null", "it is a JSON NoneType, not an object"),
    Case("array", b"[]", "it is a JSON list, not an object"),
    Case("string", b'"journal"', "it is a JSON str, not an object"),
    # Another version, or no version.
    Case("schema-missing", _drop("schema"), "schema None: this version of keystone-upgrade reads schema 2"),
    Case("schema-old", _set("schema", value=1), "journal schema 1; this version reads schema 2"),
    Case("schema-newer", _set("schema", value=3), "written by another version of keystone-upgrade"),
    Case("schema-string", _set("schema", value="2"), "schema '2'"),
    Case("schema-float", _set("schema", value=2.0), "schema 2.0"),
    Case("schema-bool", _set("schema", value=True), "schema True"),
    # The document's own fields.
    Case("run-id-missing", _drop("run_id"), "journal: 'run_id' is missing"),
    Case("run-id-int", _set("run_id", value=5), "journal: 'run_id' is int, not str"),
    Case("status-missing", _drop("status"), "journal: 'status' is missing"),
    Case("status-null", _set("status", value=None), "journal: 'status' is NoneType, not str"),
    Case("inventory-missing", _drop("inventory"), "journal: 'inventory' is missing"),
    Case(
        "started-string",
        _set("started_at", value="yesterday"),
        "journal: 'started_at' is str, not int or float",
    ),
    Case("started-bool", _set("started_at", value=True), "journal: 'started_at' is bool, not int or float"),
    Case(
        "finished-string",
        _set("finished_at", value="now"),
        "journal: 'finished_at' is str, not int or float or null",
    ),
    Case(
        "resumed-string", _set("resumed_at", value="twice"), "journal: 'resumed_at' is str, not list or null"
    ),
    Case("resumed-nulls", _set("resumed_at", value=[None]), "journal: 'resumed_at' must hold only numbers"),
    # The plan's copy, as the report reads it.
    Case("plan-missing", _drop("plan"), "journal: 'plan' is missing"),
    Case("plan-array", _set("plan", value=[]), "journal: 'plan' is list, not dict"),
    Case("plan-image-missing", _drop("plan", "target_image"), "plan: 'target_image' is missing"),
    Case(
        "plan-version-int",
        _set("plan", "target_version", value=29),
        "plan: 'target_version' is int, not str or null",
    ),
    Case(
        "plan-sources-string",
        _set("plan", "source_versions", value="28.1.0"),
        "plan: 'source_versions' is str, not list",
    ),
    Case(
        "plan-sources-ints",
        _set("plan", "source_versions", value=[28]),
        "plan: 'source_versions' must hold only strings",
    ),
    Case("plan-steps-table", _set("plan", "steps", value={}), "plan: 'steps' is dict, not list"),
    Case(
        "plan-run-id-other",
        _set("plan", "run_id", value="20261124T000000Z-ffffff"),
        "plan: its run_id is not the journal's",
    ),
    Case("plan-step-no-id", _drop("plan", "steps", 0, "id"), "plan step #1: needs a string 'id' and 'kind'"),
    Case(
        "plan-step-string",
        _set("plan", "steps", 0, value="backup"),
        "plan step #1: needs a string 'id' and 'kind'",
    ),
    Case("plan-no-steps", _no_steps, "plan: it has no steps"),
    # The steps' records.
    Case("steps-missing", _drop("steps"), "journal: 'steps' is missing"),
    Case("steps-table", _set("steps", value={}), "journal: 'steps' is dict, not list"),
    Case("steps-empty", _set("steps", value=[]), "the recorded steps are not the plan's steps"),
    Case("steps-swapped", _swap_steps, "the recorded steps are not the plan's steps, in its order"),
    Case("step-twice", _duplicate_first_step, "plan: a step id appears twice"),
    Case("step-string", _set("steps", 0, value="backup"), "step #1: is str, not an object"),
    Case("step-id-int", _set("steps", 0, "id", value=5), "step #1: 'id' is int, not str"),
    Case(
        "step-status-unknown",
        _set("steps", 0, "status", value="exploded"),
        "step #1: status 'exploded' is none of pending",
    ),
    Case("step-status-missing", _drop("steps", 0, "status"), "step #1: 'status' is missing"),
    Case("step-node-int", _set("steps", "NODE", "node", value=1), "'node' is int, not str or null"),
    Case(
        "step-detail-list",
        _set("steps", 0, "detail", value=["x"]),
        "step #1: 'detail' is list, not str or null",
    ),
    Case("step-started-string", _set("steps", 0, "started_at", value="noon"), "step #1: 'started_at' is str"),
    Case(
        "step-events-string",
        _set("steps", 0, "events", value="dumped"),
        "step #1: 'events' is str, not list or null",
    ),
    Case(
        "event-string",
        _set("steps", 0, "events", 0, value="dumped"),
        "step #1 event #1: is str, not an object",
    ),
    Case(
        "event-name-missing", _drop("steps", 0, "events", 0, "event"), "step #1 event #1: 'event' is missing"
    ),
    Case(
        "event-at-string", _set("steps", 0, "events", 0, "at", value="then"), "step #1 event #1: 'at' is str"
    ),
    Case(
        "event-dump-int",
        _set("steps", 0, "events", 0, "dump", value=5),
        "step #1 event #1: 'dump' is int, not str",
    ),
    Case(
        "event-trust-no-previous",
        _set("steps", 0, "events", 0, value={"at": 1.0, "event": Event.TRUST_SET.value}),
        "'previous' is missing",
    ),
    Case(
        "intended-string",
        _set("steps", "NODE", "intended", value="drain"),
        "'intended' is str, not dict or null",
    ),
    Case(
        "intended-no-event",
        _set("steps", "NODE", "intended", value={"at": 1.0}),
        "intended: 'event' is missing",
    ),
    # A plan whose shape is fine but that cannot be read back as steps (resume, rollback, upgrade).
    Case("plan-kind-unknown", _unknown_kind, "plan: cannot be read back (ValueError", plan_only=True),
    Case(
        "plan-keep-old-missing",
        _drop("plan", "keep_old"),
        "plan: cannot be read back (KeyError",
        plan_only=True,
    ),
    Case(
        "plan-findings-wrong",
        _set("plan", "findings", value=[{"x": 1}]),
        "plan: cannot be read back (TypeError",
        plan_only=True,
    ),
    Case(
        "plan-exit-code-string",
        _set("plan", "check_exit_code", value="0"),
        "plan: check_exit_code is str '0'",
        plan_only=True,
    ),
    Case(
        "plan-heads-string",
        _set("plan", "database_heads", value=5),
        "plan: cannot be read back (TypeError",
        plan_only=True,
    ),
    Case(
        "plan-keep-old-string",
        _set("plan", "keep_old", value="no"),
        "plan: keep_old is str 'no'",
        plan_only=True,
    ),
    Case(
        "param-missing",
        _drop("plan", "steps", "NODE", "params", "image"),
        "plan: cannot be read back (TypeError",
        plan_only=True,
    ),
    Case(
        "param-unknown",
        _set("plan", "steps", "NODE", "params", "colour", value="red"),
        "plan: cannot be read back (KeyError: 'colour')",
        plan_only=True,
    ),
    Case(
        "params-array",
        _set("plan", "steps", "NODE", "params", value=[]),
        "plan: cannot be read back (AttributeError",
        plan_only=True,
    ),
    Case(
        "param-timeout-string",
        _set("plan", "steps", "NODE", "params", "drain_timeout_s", value="fast"),
        "drain_timeout_s is str 'fast'",
        plan_only=True,
    ),
    Case(
        "param-timeout-bool",
        _set("plan", "steps", "NODE", "params", "health_timeout_s", value=True),
        "health_timeout_s is bool True",
        plan_only=True,
    ),
    Case(
        "param-image-int",
        _set("plan", "steps", "NODE", "params", "image", value=29),
        "image is int 29",
        plan_only=True,
    ),
    Case(
        "param-node-servers-string",
        _set("plan", "steps", "NODE", "params", "node", "servers", value="k1"),
        "plan: cannot be read back (TypeError",
        plan_only=True,
    ),
    Case(
        "param-node-name-int",
        _set("plan", "steps", "NODE", "params", "node", "name", value=1),
        "node is NodeConfig",
        plan_only=True,
    ),
    Case(
        "param-node-table",
        _set("plan", "steps", "NODE", "params", "node", value="k1"),
        "plan: cannot be read back (TypeError",
        plan_only=True,
    ),
]


def _write(tmp_path: Path, case: Case) -> None:
    if isinstance(case.damage, bytes):
        (tmp_path / JOURNAL_FILE).write_bytes(case.damage)
        return
    document = _valid_document(tmp_path)
    case.damage(document)
    (tmp_path / JOURNAL_FILE).write_text(json.dumps(document))


def _tree(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_damaged_journal_is_one_clear_error_in_every_reader(case: Case, tmp_path: Path) -> None:
    _write(tmp_path, case)
    before = _tree(tmp_path)
    readers: list[Callable[[], object]] = [lambda: last_run(tmp_path)]
    if not case.plan_only:
        readers.append(lambda: Journal.load(tmp_path))  # status, and upgrade's look at the last run
    for read in readers:
        with pytest.raises(ConfigError) as raised:
            read()
        assert raised.value.exit_code is ExitCode.CONFIG
        message = str(raised.value)
        assert case.expected in message, message
        assert "nothing was changed" in message
        assert "move it aside" in message or "move the journal aside" in message
    assert _tree(tmp_path) == before


def test_the_cases_are_many_and_distinct() -> None:
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_journal_they_start_from_is_read_by_every_reader(tmp_path: Path) -> None:
    document = _valid_document(tmp_path)
    (tmp_path / JOURNAL_FILE).write_text(json.dumps(document))
    journal, plan = last_run(tmp_path)
    assert journal.run_id == plan.run_id == RUN_ID
    assert journal_plan(journal) == plan
    assert "may not have finished: drain" in render_report(build_report(journal))


def test_a_journal_that_is_a_directory_or_a_broken_link_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_FILE).mkdir()
    with pytest.raises(ConfigError, match="not a readable JSON document"):
        Journal.load(tmp_path)
    (tmp_path / JOURNAL_FILE).rmdir()
    (tmp_path / JOURNAL_FILE).symlink_to(tmp_path / "gone.json")
    with pytest.raises(ConfigError, match="not a readable JSON document"):
        Journal.load(tmp_path)

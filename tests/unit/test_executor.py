"""The executor's stop rules, with fake drivers: a failed migration stops the run and says why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from runner.config import BindMount
from runner.drivers.docker_engine import Finished
from runner.errors import ExitCode, MigrationError
from runner.executor import Drivers, Executor
from runner.journal import Journal, StepStatus
from runner.plan import build_plan
from tests.unit.test_plan import _facts, _inventory


class FailingEngine:
    """Every throwaway container exits 1 with a traceback."""

    endpoint = "local"

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run_once(self, image: str, command: Sequence[str], *, mounts: Sequence[BindMount],
                 labels: Mapping[str, str], **_: Any) -> Finished:  # fmt: skip
        self.commands.append(list(command))
        return Finished(
            1, "\n".join(f"line {i}" for i in range(50)) + "\nsqlalchemy.exc.OperationalError: boom"
        )


class FixedDatabase:
    def alembic_heads(self) -> frozenset[str]:
        return frozenset({"e-old", "c-old"})


def test_a_failed_expand_stops_the_run_with_the_containers_last_lines(tmp_path: Path) -> None:
    inventory = _inventory()
    inventory = type(inventory)(**{**inventory.__dict__, "state_dir": tmp_path})
    plan = build_plan(inventory, _facts(inventory))
    plan = type(plan)(**{**plan.__dict__, "steps": tuple(s for s in plan.steps if s.id != "backup")})
    engine = FailingEngine()
    drivers = Drivers(engines={"local": engine}, runtimes=(), database=FixedDatabase(), http=None)  # type: ignore[arg-type]
    journal = Journal.start(tmp_path, plan.as_dict(), "inventory.toml")
    with pytest.raises(MigrationError) as raised:
        Executor(inventory, drivers, plan, journal).run()
    assert raised.value.exit_code is ExitCode.MIGRATION
    assert "db_sync --expand failed" in str(raised.value)
    assert "OperationalError: boom" in str(raised.value)
    assert "line 0" not in str(raised.value)  # the last lines, not the whole output
    assert engine.commands == [["keystone-manage", "db_sync", "--expand"]]  # nothing after it ran
    assert journal.step("expand").status is StepStatus.FAILED
    assert journal.step("migrate").status is StepStatus.PENDING
    logs = list((tmp_path / "runs").rglob("expand.log"))
    assert len(logs) == 1
    assert "line 0" in logs[0].read_text()  # the whole output is kept in the run's log

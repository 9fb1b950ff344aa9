"""``rollback``: every node of the last run back on the release it started from, while that can be done.

The journal holds the plan exactly as it ran (``Plan.from_dict``) and what
each step did; the executor undoes the steps newest first. Once contract has
started the old release cannot serve the schema any more: rollback refuses,
before changing anything, and points to the run's verified backup.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from runner.drivers.ports import Drivers
from runner.errors import PreflightError
from runner.executor import Executor
from runner.facts import throwaways_running
from runner.history import ROLLED_BACK, last_run
from runner.journal import Journal
from runner.model import Inventory
from runner.plan import Plan, with_current_timeouts
from runner.steps import RunContext
from runner.upgrade import hold_run_lock


def run_rollback(
    inventory: Inventory, drivers: Drivers, confirm: Callable[[Journal, Plan], bool]
) -> list[str] | None:
    """Undo the last run (confirmed, under the lock); the ids undone, None when not confirmed."""
    journal, planned = last_run(inventory.state_dir)
    plan = with_current_timeouts(planned, inventory)
    with ExitStack() as stack:
        hold_run_lock(stack, drivers)
        if running := throwaways_running(drivers.engines):
            # Undoing the trust setting under a migration that may still create triggers: no.
            raise PreflightError(
                "a throwaway container of the run is still running; nothing was changed",
                observed="; ".join(running),
                hint="wait until it has exited (docker logs -f ID), remove it, then run rollback again",
            )
        if journal.document["status"] == ROLLED_BACK:
            return []
        if not confirm(journal, plan):
            return None
        context = RunContext(drivers, journal, inventory.state_dir / "runs" / journal.run_id)
        undone = Executor(plan, context).undo()
        journal.finish(ROLLED_BACK)
        return undone

"""``resume``: go on with a run that stopped (killed, interrupted, failed), from its journal.

The plan is the journal's, exactly as it ran; the cluster is checked against
what the journal says first, and any disagreement the runner cannot reconcile
is refused, named, before anything changes. A node left half-way is put back,
then upgraded afresh; contract still runs only once its gate holds.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from runner.drivers.ports import Drivers
from runner.errors import PreflightError
from runner.executor import Executor
from runner.facts import throwaways_running
from runner.facts.gather import gather_facts
from runner.facts.target import inventory_setup
from runner.history import FINISHED, disagreements, last_run
from runner.interrupts import ForcedStop, Interrupted, stop_requests
from runner.model import Inventory
from runner.plan import Plan, with_current_environment, with_current_timeouts
from runner.report import build_report, write_report
from runner.steps import RunContext
from runner.upgrade import INTERRUPTED, hold_run_lock


def run_resume(
    inventory: Inventory,
    drivers: Drivers,
    confirm: Callable[[Plan], bool],
    on_report: Callable[[dict[str, Any], Path], None],
) -> Plan | None:
    """Check the journal against the cluster, then (confirmed, under the lock) the steps not yet done."""
    journal, planned = last_run(inventory.state_dir)
    plan = with_current_timeouts(planned, inventory)
    status = journal.document["status"]
    if status in FINISHED:
        raise PreflightError(
            f"there is nothing to resume: run {journal.run_id} {status}",
            observed=f"journal status {status!r}",
            hint="start a new run with upgrade",
        )
    with ExitStack() as stack:
        stop = stack.enter_context(stop_requests())
        hold_run_lock(stack, drivers)
        # A migration left running must end before anything goes on, even facts: their own
        # throwaway container would queue behind its locks.
        differences = [
            f"a throwaway container is still running: {running}"
            for running in throwaways_running(drivers.engines)
        ]
        if not differences:
            facts = gather_facts(inventory, drivers)
            differences = disagreements(plan, journal, facts)
            plan = with_current_environment(plan, inventory, facts.throwaway or inventory_setup(inventory))
        if differences:
            raise PreflightError(
                f"the cluster is not where run {journal.run_id} left it; nothing was changed",
                observed="\n    " + "\n    ".join(differences),
                hint="find out who changed the cluster since; bring it back to what the journal says, "
                "or roll back by hand",
            )
        if not confirm(plan):
            return None
        journal.reopen()
        context = RunContext(drivers, journal, inventory.state_dir / "runs" / journal.run_id, stop)
        outcome = "failed"
        try:
            Executor(plan, context).resume()
            outcome = "succeeded"
        except (Interrupted, ForcedStop):
            outcome = INTERRUPTED
            raise
        finally:
            journal.finish(outcome)
            report = build_report(journal)
            on_report(report, write_report(report, inventory.state_dir))
    return plan

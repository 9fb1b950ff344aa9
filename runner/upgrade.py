"""The commands' work: gather facts, plan, and (under the database lock) execute."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

from runner.config import LOCAL_ENGINE, Inventory
from runner.drivers.database import Database
from runner.drivers.docker_engine import RUN_ID_LABEL, DockerEngine, Engine
from runner.drivers.haproxy import RuntimeSocket
from runner.errors import LockedError, PreflightError, RunnerError
from runner.executor import Drivers, Executor
from runner.facts import ClusterFacts, database_facts, node_facts, socket_facts, target_facts
from runner.journal import Journal
from runner.plan import Plan, build_plan
from runner.report import build_report, write_report
from runner.traffic import start_traffic, traffic_report

log = logging.getLogger(__name__)

LOCK_NAME = "keystone-upgrade"


def connect(inventory: Inventory) -> Drivers:
    """The real drivers for an inventory (no side effects yet)."""
    endpoints = {LOCAL_ENGINE, *(node.engine for node in inventory.nodes)}
    engines: dict[str, Engine] = {endpoint: DockerEngine(endpoint) for endpoint in endpoints}
    return Drivers(
        engines=engines,
        runtimes=tuple(RuntimeSocket(address) for address in inventory.haproxy_sockets),
        database=Database(inventory.database.target()),
        http=requests.Session(),
    )


def gather_facts(inventory: Inventory, drivers: Drivers, *, pull_missing: bool = False) -> ClusterFacts:
    """Read the cluster; change nothing (an upgrade may pull a missing target image)."""
    nodes = tuple(node_facts(node, drivers.engine(node.engine), drivers.http) for node in inventory.nodes)
    sockets = tuple(socket_facts(runtime) for runtime in drivers.runtimes)
    database = database_facts(drivers.database)
    target = target_facts(
        inventory,
        drivers.engine(LOCAL_ENGINE),
        {RUN_ID_LABEL: "preflight"},
        database_ok=database.error is None,
        pull_missing=pull_missing,
    )
    return ClusterFacts(nodes, sockets, database, target)


def make_plan(inventory: Inventory, drivers: Drivers, *, pull_missing: bool = False) -> Plan:
    """Facts, then the plan."""
    return build_plan(inventory, gather_facts(inventory, drivers, pull_missing=pull_missing))


def refuse(plan: Plan) -> PreflightError:
    """The error for a plan with findings."""
    return PreflightError(
        f"preflight refused the upgrade ({len(plan.findings)} finding(s)); nothing was changed",
        observed="\n" + "\n".join(finding.render() for finding in plan.findings),
        hint="fix each finding above and run again",
    )


def run_upgrade(
    inventory: Inventory,
    drivers: Drivers,
    confirm: Callable[[Plan], bool],
    on_report: Callable[[dict[str, Any], Path], None],
    *,
    keep_old: bool = False,
    with_probe: bool = False,
) -> Plan:
    """Preflight, then (confirmed, under the lock) every step of the plan; the report either way."""
    with ExitStack() as stack:
        # Traffic starts first, so the report shows preflight's requests too.
        traffic = (
            start_traffic(inventory, drivers.runtimes[0] if drivers.runtimes else None)
            if with_probe
            else None
        )
        if traffic is not None:
            stack.callback(traffic.stop)
        try:
            acquired = stack.enter_context(drivers.database.advisory_lock(LOCK_NAME))
        except RunnerError:
            # The database does not answer: preflight says so with everything else it finds.
            raise refuse(make_plan(inventory, drivers)) from None
        if not acquired:
            raise LockedError(
                "another keystone-upgrade run holds the database lock",
                observed=f"GET_LOCK('{LOCK_NAME}') returned 0",
                hint="wait for it to finish (keystone-upgrade status shows its journal); "
                "never run two upgrades at once",
            )
        plan = make_plan(inventory, drivers, pull_missing=True)
        if plan.refused:
            raise refuse(plan)
        if not confirm(plan):
            return plan
        journal = Journal.start(inventory.state_dir, plan.as_dict(), str(inventory.path))
        status = "failed"
        try:
            Executor(inventory, drivers, plan, journal, keep_old=keep_old).run()
            status = "succeeded"
        finally:
            journal.finish(status)
            extra = {}
            if traffic is not None:
                png = inventory.state_dir / f"report-{journal.run_id}.png"
                extra["probe"] = traffic_report(traffic, journal.as_dict(), png)
            report = build_report(journal, extra)
            on_report(report, write_report(report, inventory.state_dir))
        return plan

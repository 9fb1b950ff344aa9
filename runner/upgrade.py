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
from runner.drivers.keystone import Credentials
from runner.errors import ConfigError, LockedError, PreflightError, RunnerError
from runner.executor import Drivers, Executor
from runner.facts import ClusterFacts, database_facts, node_facts, socket_facts, target_facts
from runner.journal import Journal
from runner.plan import Plan, build_plan
from runner.probe import Probe, ProbeSettings, Sample, summarize
from runner.report import build_report, write_report

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
        probe = start_probe(inventory) if with_probe else None
        journal = Journal.start(inventory.state_dir, plan.as_dict(), str(inventory.path))
        status = "failed"
        try:
            Executor(inventory, drivers, plan, journal, keep_old=keep_old).run()
            status = "succeeded"
        finally:
            journal.finish(status)
            extra = {"probe": probe_report(probe.stop())} if probe is not None else {}
            report = build_report(journal, extra)
            on_report(report, write_report(report, inventory.state_dir))
        return plan


def start_probe(inventory: Inventory) -> Probe:
    """Traffic through the load balancer, as the inventory's [probe] table says."""
    config = inventory.probe
    if config is None:
        raise ConfigError(
            "--probe needs a [probe] table in the inventory",
            hint="add [probe] with url, username, project and password_file or password_env",
        )
    credentials = Credentials(
        config.username, config.password.read("probe password", "probe"), config.project, config.domain
    )
    settings = ProbeSettings(
        rate_per_s=config.rate_per_s,
        concurrency=config.concurrency,
        max_requests=int(config.rate_per_s * config.max_seconds),
        max_seconds=config.max_seconds,
    )
    return Probe(config.url, credentials, settings).start()


def probe_report(samples: list[Sample]) -> dict[str, Any]:
    """The probe's part of the report: counts, nodes, and every failure with its reason."""
    summary = summarize(samples)
    return {
        "requests": summary.requests,
        "failed": summary.failed,
        "rate_per_s": round(summary.rate_per_s, 1),
        "served_by": summary.served_by,
        "failures": [
            {
                "at": s.at,
                "operation": s.operation,
                "status": s.status,
                "served_by": s.served_by,
                "error": s.error,
            }
            for s in summary.failures
        ],
    }

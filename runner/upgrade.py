"""The commands' work: gather facts, plan, and (under the database lock) execute."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from runner.credentials import admin_database_target, database_target, read_secret
from runner.drivers.container_backups import ContainerBackups
from runner.drivers.containers import RUN_ID_LABEL, Engine
from runner.drivers.database import MysqlDatabase
from runner.drivers.docker_blueprint import ThrowawaySetup
from runner.drivers.docker_engine import DockerEngine
from runner.drivers.docker_node import DockerNode
from runner.drivers.haproxy import RuntimeSocket
from runner.drivers.http import RequestsHttp
from runner.drivers.keystone import Credentials, KeystoneTokens
from runner.drivers.keystone_release import release_inside, release_of_image
from runner.drivers.memcached import MemcachedClient
from runner.drivers.ports import Drivers, KeystoneManage
from runner.drivers.rotation import HaproxyRotation
from runner.drivers.systemd import NodeUnits, Systemctl
from runner.drivers.warm_keystone import WarmKeystone
from runner.errors import LockedError, PreflightError, RollbackError, RunnerError
from runner.executor import Executor
from runner.facts.gather import gather_facts
from runner.facts.target import CHECK_TIMEOUT_S, InWarm, manage_setup
from runner.history import ROLLED_BACK, journal_plan, unfinished
from runner.interrupts import ForcedStop, Interrupted, StopRequests, stop_requests
from runner.journal import Journal, new_run_id
from runner.migrations import CHECKS_LOG_TO_OUTPUT
from runner.model import LOCAL_ENGINE, Inventory, NodeConfig, ProbeConfig
from runner.plan import Plan, backup_directory, build_plan
from runner.plan_offline import OFFLINE, cold_plan
from runner.release_path import check_release_path
from runner.report import build_report, write_report
from runner.steps import RunContext, StepKind
from runner.steps.base import run_labels
from runner.traffic import Traffic, start_traffic, traffic_report
from runner.waits import HAPROXY_RECONNECT

log = logging.getLogger(__name__)

LOCK_NAME = "keystone-upgrade"
# The steps that run keystone-manage db_sync.
SCHEMA = (StepKind.EXPAND, StepKind.MIGRATE, StepKind.CONTRACT, StepKind.OFFLINE_MIGRATION)
INTERRUPTED = "interrupted"  # the journal status of a run a signal stopped


def connect(inventory: Inventory, *, token_gate: bool = True) -> Drivers:
    """The real drivers for an inventory: Docker nodes, HAProxy sockets, MariaDB (no side effects yet).

    Every password is read here, before anything changes: a missing one is a
    configuration error, not a failure half-way through a run.
    """
    # Endpoint -> its TLS directory (the inventory allows one per endpoint; local has none).
    endpoints = {LOCAL_ENGINE: None, **{node.engine: node.docker_tls_dir for node in inventory.nodes}}
    engines: dict[str, Engine] = {
        endpoint: DockerEngine(endpoint, tls_dir) for endpoint, tls_dir in endpoints.items()
    }
    runtimes = tuple(RuntimeSocket(address) for address in inventory.haproxy_sockets)
    target = database_target(inventory.database)
    admin = admin_database_target(inventory.database)
    http = RequestsHttp()
    # One systemctl, this host's: a node container a unit runs here is swapped through it.
    units = NodeUnits(Systemctl())

    node_runtimes: dict[NodeConfig, DockerNode] = {}

    def node_runtime(node: NodeConfig) -> DockerNode:
        # One per node for the run: it remembers what it read inside each container.
        if node not in node_runtimes:
            node_runtimes[node] = DockerNode(node, engines[node.engine], http, units.for_node(node))
        return node_runtimes[node]

    return Drivers(
        engines=engines,
        runtimes=runtimes,
        # The run's own connections ride out HAProxy being restarted or reloaded under it.
        rotation=HaproxyRotation(
            tuple(RuntimeSocket(a, reconnect=HAPROXY_RECONNECT) for a in inventory.haproxy_sockets)
        ),
        database=MysqlDatabase(target),
        admin_database=MysqlDatabase(admin) if admin is not None else None,
        http=http,
        node_runtime=node_runtime,
        backups=ContainerBackups(engines[LOCAL_ENGINE], target, admin),
        tokens=_tokens(inventory.probe) if token_gate else None,
        cache=MemcachedClient(),
        keystone_manage=WarmKeystone(engines),
    )


def _tokens(probe: ProbeConfig | None) -> KeystoneTokens | None:
    """The token gate's client, with the probe's credentials (none given: no token gate)."""
    if probe is None:
        return None
    password = read_secret(probe.password, "probe password", "probe")
    return KeystoneTokens(Credentials(probe.username, password, probe.project, probe.domain))


def make_plan(
    inventory: Inventory,
    drivers: Drivers,
    *,
    pull_missing: bool = False,
    keep_old: bool = False,
    accept_drift: tuple[str, ...] = (),
    hop: str | None = None,
    cold: bool = False,
    run_id: str | None = None,
    begin_backup: Callable[[], None] | None = None,
    begin_warm: Callable[[ThrowawaySetup], InWarm | None] | None = None,
) -> Plan:
    """Facts (the schema compared for drift), then the plan (with the id its run will have: ``run_id``,
    or a new one); ``cold``: the same work offline (every node stopped at once: an outage, measured
    by --probe). ``begin_backup``, ``begin_warm``: see ``gather_facts``."""
    facts = gather_facts(
        inventory,
        drivers,
        pull_missing=pull_missing,
        accept_drift=accept_drift,
        begin_backup=begin_backup,
        begin_warm=begin_warm,
    )
    plan = build_plan(inventory, facts, run_id=run_id or new_run_id(), keep_old=keep_old, hop=hop)
    return cold_plan(plan) if cold and not plan.refused else plan


def refuse(plan: Plan) -> PreflightError:
    """The error for a plan with findings."""
    return PreflightError(
        f"preflight refused the upgrade ({len(plan.findings)} finding(s)); nothing was changed",
        observed="\n" + "\n".join(finding.render() for finding in plan.findings),
        hint="fix each finding above and run again",
    )


def refuse_when_unfinished(inventory: Inventory) -> None:
    """PreflightError when the last run stopped half-way: it is resumed or rolled back, not started over."""
    journal = Journal.load(inventory.state_dir)
    if journal is None:
        return
    left = unfinished(journal, journal_plan(journal))
    if left:
        raise PreflightError(
            f"run {journal.run_id} did not finish; nothing was changed",
            observed=f"journal status {journal.document['status']!r}: " + ", ".join(left),
            hint=f"finish it with: keystone-upgrade resume -i {inventory.path}; "
            f"or undo it with: keystone-upgrade rollback -i {inventory.path}",
        )


def hold_run_lock(stack: ExitStack, drivers: Drivers) -> None:
    """Take the database's advisory lock for the rest of ``stack``; LockedError when another run has it."""
    if not stack.enter_context(drivers.database.advisory_lock(LOCK_NAME)):
        raise LockedError(
            "another keystone-upgrade run holds the database lock",
            observed=f"GET_LOCK('{LOCK_NAME}') returned 0",
            hint="wait for it to finish (keystone-upgrade status shows its journal); "
            "never run two upgrades at once",
        )


def hop_plan(
    inventory: Inventory,
    drivers: Drivers,
    hops: tuple[tuple[str | None, Inventory], ...],
    number: int,
    **options: Any,
) -> Plan:
    """The plan of hop ``number`` (from 1) of ``hops``; a path's plans say where they stand in it."""
    hop, hop_inventory = hops[number - 1]
    plan = make_plan(hop_inventory, drivers, hop=hop if inventory.through_images else None, **options)
    if not inventory.through_images:
        return plan
    where = (
        f"release path {' -> '.join(h or '?' for h, _ in hops)}: this is hop {number} of {len(hops)} "
        f"(from {' and '.join(plan.source_versions)}); "
        "upgrade runs each hop once the one before has finished, with its own preflight, plan and report"
    )
    return replace(plan, notices=(where, *plan.notices))


def release_path(inventory: Inventory, drivers: Drivers) -> tuple[tuple[str | None, Inventory], ...]:
    """One inventory per hop still to run, with its release as the steps' id prefix (None: one hop).

    A list in [target] image is a release path: each image's release is read inside it, the
    path checked from the nodes' releases (a downgrade, an unsupported skip: PreflightError
    naming the path to use), and the hops already done are dropped, so that the same command,
    run again after a stopped hop was resumed, goes on with the rest.
    """
    if not inventory.through_images:
        return ((None, inventory),)
    images = (*inventory.through_images, inventory.target_image)
    local = drivers.engine(LOCAL_ENGINE)
    labels = {RUN_ID_LABEL: "preflight"}
    releases: dict[str, str] = {}
    for image in images:
        present = local.image(image) is not None
        release = release_of_image(local, image, labels) if present else None
        if release is None:
            raise PreflightError(
                f"cannot read the Keystone release of {image}, a hop of [target] image; nothing was changed",
                observed="no keystone package in it" if present else "not on the runner's engine",
                hint=f"build or load {image} on this host first (every hop's image is read here)",
            )
        releases[release] = image
    current = sorted(
        {
            release
            for node in inventory.nodes
            if (release := release_inside(drivers.engine(node.engine), node.container)) is not None
        }
    )
    if not current:
        raise PreflightError(
            "no node's Keystone release could be read: the release path cannot be checked; nothing was changed",
            observed=", ".join(node.container for node in inventory.nodes),
            hint="start the node containers (keystone-upgrade status shows them) and run again",
        )
    path = check_release_path(current, list(releases))
    remaining = path.hops or (list(releases)[-1],)
    return tuple(
        (release, replace(inventory, target_image=releases[release], through_images=()))
        for release in remaining
    )


def run_upgrade(
    inventory: Inventory,
    drivers: Drivers,
    confirm: Callable[[Plan], bool],
    on_report: Callable[[dict[str, Any], Path], None],
    *,
    keep_old: bool = False,
    with_probe: bool = False,
    accept_drift: tuple[str, ...] = (),
    cold: bool = False,
) -> Plan:
    """Preflight, then (confirmed, under the lock) every step of the plan; the report either way.

    A release path runs one complete upgrade per hop, each with its own preflight, plan,
    journal and report; the probe runs across them all and goes with the last report.
    """
    with ExitStack() as stack:
        stop = stack.enter_context(stop_requests())
        # Traffic starts first, so the report shows preflight's requests too.
        traffic = (
            start_traffic(inventory, drivers.runtimes[0] if drivers.runtimes else None)
            if with_probe
            else None
        )
        if traffic is not None:
            stack.callback(traffic.stop)
        try:
            hold_run_lock(stack, drivers)
        except LockedError:
            raise
        except RunnerError:
            # The database does not answer: preflight says so with everything else it finds.
            raise refuse(make_plan(inventory, drivers, accept_drift=accept_drift)) from None
        refuse_when_unfinished(inventory)
        hops = release_path(inventory, drivers)
        ran: list[dict[str, Any]] = []  # the journals of the hops run, for the probe's phases
        # A dump no backup step adopted (refused, declined, stale, failed before it) is removed;
        # a forced stop does not wait for it (its containers carry the run's id, as a migration's).
        stack.push(_abandon_unless_forced(drivers))
        if drivers.keystone_manage is not None:
            stack.push(_close_warm(drivers.keystone_manage))
        for number, (hop, hop_inventory) in enumerate(hops, start=1):
            run_id = new_run_id()
            plan = hop_plan(
                inventory,
                drivers,
                hops,
                number,
                pull_missing=True,
                keep_old=keep_old,
                accept_drift=accept_drift,
                cold=cold,
                run_id=run_id,
                # A cold run's dump is taken with every node stopped, without the restore check.
                begin_backup=None
                if cold
                else _backup_beside_preflight(
                    hop_inventory, drivers, run_id, hop if inventory.through_images else None
                ),
                begin_warm=_warm_beside_preflight(hop_inventory, drivers, run_id),
            )
            if not any(step.kind is StepKind.BACKUP for step in plan.steps):
                drivers.backups.abandon()  # nothing to back up (the schema is the target's already)
            if drivers.keystone_manage is not None and not any(
                step.kind in SCHEMA and not step.skipped for step in plan.steps
            ):
                drivers.keystone_manage.close()  # nothing to migrate
            if plan.refused:
                raise refuse(plan)
            if not confirm(plan):
                return plan
            last = number == len(hops)
            # A failed hop raises (its report written first): the next hops never start.
            run_plan(
                plan,
                hop_inventory,
                drivers,
                stop=stop,
                on_report=on_report,
                traffic=traffic,
                ran=ran,
                last=last,
            )
            if drivers.keystone_manage is not None:
                # Gone before the next hop's preflight, which refuses throwaways still running.
                drivers.keystone_manage.close()
        return plan


def _backup_beside_preflight(
    inventory: Inventory, drivers: Drivers, run_id: str, hop: str | None
) -> Callable[[], None]:
    """The start of the dump the plan's backup step will ask for (it only reads the database)."""

    def begin() -> None:
        # The backup directory exists first: what an unused dump removes is its run's own directory.
        inventory.backup_dir.mkdir(parents=True, exist_ok=True)
        drivers.backups.begin(
            inventory.backup_image,
            backup_directory(inventory, run_id, hop),
            run_labels(run_id, "backup"),
            restore_check=inventory.backup_restore_check,
        )

    return begin


def _warm_beside_preflight(
    inventory: Inventory, drivers: Drivers, run_id: str
) -> Callable[[ThrowawaySetup], InWarm | None] | None:
    """The start of the warm keystone-manage container the schema steps will fork in; what runs
    preflight's readings and checks in it (None: the Kolla way, no warm container)."""
    warm = drivers.keystone_manage
    if warm is None:
        return None

    def begin(setup: ThrowawaySetup) -> InWarm | None:
        manage = manage_setup(inventory, setup)
        if manage is None:
            return None
        warm.begin(manage, run_labels(run_id, "keystone-manage"))
        return InWarm(
            # Logged to their output, as in preflight's throwaway: a failing check says why.
            manage=lambda argv: warm.run(manage, argv, CHECK_TIMEOUT_S, CHECKS_LOG_TO_OUTPUT),
            read=lambda command: warm.read(manage.engine, manage.image, manage.mounts, command),
        )

    return begin


def _close_warm(warm: KeystoneManage) -> Callable[..., bool]:
    """An exit callback: the warm container ends; after a forced stop it is not waited for."""

    def on_exit(kind: type[BaseException] | None, *_: object) -> bool:
        warm.close(wait=kind is None or not issubclass(kind, ForcedStop))
        return False

    return on_exit


def _abandon_unless_forced(drivers: Drivers) -> Callable[..., bool]:
    """An exit callback: the unadopted dump removed, unless a forced stop asks not to wait."""

    def on_exit(kind: type[BaseException] | None, *_: object) -> bool:
        if kind is None or not issubclass(kind, ForcedStop):
            drivers.backups.abandon()
        return False

    return on_exit


def run_plan(
    plan: Plan,
    inventory: Inventory,
    drivers: Drivers,
    *,
    stop: StopRequests,
    on_report: Callable[[dict[str, Any], Path], None],
    traffic: Traffic | None = None,
    ran: list[dict[str, Any]] | None = None,
    last: bool = True,
) -> None:
    """One plan under its own journal; its report (with the probe's, when it is the last or failed).

    An offline procedure (--cold, restore) that fails before its window closed is undone at once:
    every node it stopped serves its old release again, and the journal says "rolled back".
    """
    ran = ran if ran is not None else []
    journal = Journal.start(inventory.state_dir, plan.to_dict(), str(inventory.path))
    context = RunContext(drivers, journal, inventory.state_dir / "runs" / journal.run_id, stop)
    status = "failed"
    executor = Executor(plan, context)
    try:
        executor.run()
        status = "succeeded"
    except (Interrupted, ForcedStop):
        status = INTERRUPTED
        raise
    except RunnerError as failure:
        if plan.procedure not in OFFLINE:
            raise
        undone, error = _offline_undone(executor, failure)
        if undone:
            status = ROLLED_BACK
        raise error from failure
    finally:
        journal.finish(status)
        ran.append(journal.as_dict())
        extra = {}
        if traffic is not None and (last or status != "succeeded"):
            png = inventory.state_dir / f"report-{journal.run_id}.png"
            every_hop = {**journal.as_dict(), "steps": [step for hop in ran for step in hop["steps"]]}
            extra["probe"] = traffic_report(traffic, every_hop, png)
        report = build_report(journal, extra)
        on_report(report, write_report(report, inventory.state_dir))


def _offline_undone(executor: Executor, failure: RunnerError) -> tuple[bool, RunnerError]:
    """Whether the failed offline run was undone, and the error to stop with, saying which."""
    closing = executor.window_closed_by()
    if closing:
        return False, type(failure)(
            failure.what,
            observed=failure.observed,
            hint=f"{failure.hint}. {'; '.join(s.closes_window_because for s in closing)}: the old nodes "
            "cannot come back, so every node stays stopped and in MAINT. Fix the cause and run "
            "'keystone-upgrade resume'; or go back to the backup with 'keystone-upgrade restore'",
        )
    try:
        undone = executor.undo()
    except RollbackError as undo_failed:
        return False, RollbackError(
            f"{failure.what}; undoing the run failed too: {undo_failed.what}",
            observed=f"{failure.observed}\n{undo_failed.observed}",
            hint=f"the database was not changed by this run. {undo_failed.hint}; then start the "
            "stopped nodes (keystone-upgrade rollback tries again)",
        )
    return True, type(failure)(
        failure.what,
        observed=failure.observed,
        hint=f"the run was undone before the database changed ({len(undone)} step(s)): every node "
        f"serves its old release again. {failure.hint}",
    )

"""Walks the plan: each step journalled before and after, each effect through one driver.

Steps run in the plan's order. A skipped step is journalled as skipped with
its reason. Any RunnerError stops the run with the step marked failed; what
was done is in the journal for `status` (and for resume and rollback).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import requests

from runner.backup import take_backup
from runner.config import Inventory, NodeConfig
from runner.drivers.database import Database
from runner.drivers.docker_engine import PURPOSE_LABEL, RUN_ID_LABEL, Engine
from runner.drivers.haproxy import HaproxyRuntime, ServerStat
from runner.errors import HaproxyError, HealthError, MigrationError, RunnerError
from runner.journal import Journal, StepStatus
from runner.migrations import IDLE_TRANSACTION_S, LOCK_TIMEOUT, migration_environment
from runner.nodes import running_version, swap_container, wait_healthy
from runner.plan import Plan, Step, StepKind
from runner.waits import (
    HAPROXY_SERVERS_UP,
    MIGRATION_LOCK_RETRY,
    SERVER_DRAINED,
    WaitTimeout,
    wait_until,
)

log = logging.getLogger(__name__)

OLD_CONTAINER_SUFFIX = "-ku-old-"


@dataclass(frozen=True)
class Drivers:
    """Everything with side effects, handed in so tests and future connectors can replace it."""

    engines: Mapping[str, Engine]  # by inventory endpoint ("local", "ssh://...")
    runtimes: tuple[HaproxyRuntime, ...]
    database: Database
    http: requests.Session

    def engine(self, endpoint: str) -> Engine:
        """The engine of a node (or "local" for throwaway containers)."""
        return self.engines[endpoint]


class Executor:
    """Carries out one plan against the cluster."""

    def __init__(
        self,
        inventory: Inventory,
        drivers: Drivers,
        plan: Plan,
        journal: Journal,
        *,
        keep_old: bool = False,
    ):
        self.inventory = inventory
        self.drivers = drivers
        self.plan = plan
        self.journal = journal
        self.keep_old = keep_old
        self.labels = {RUN_ID_LABEL: journal.run_id}
        self.log_dir = inventory.state_dir / "runs" / journal.run_id
        # The value of log_bin_trust_function_creators before this run changed it.
        self._trust_before: bool | None = None
        self.handlers: dict[StepKind, Callable[[Step], None]] = {
            StepKind.BACKUP: self._backup,
            StepKind.TRUST_FUNCTION_CREATORS: self._trust_function_creators,
            StepKind.RESTORE_TRUST: self._restore_trust,
            StepKind.EXPAND: lambda step: self._db_sync(step, "--expand"),
            StepKind.MIGRATE: lambda step: self._db_sync(step, "--migrate"),
            StepKind.NODE: self._node,
            StepKind.CONTRACT: self._contract,
            StepKind.CLEANUP: self._cleanup,
        }

    def run(self) -> None:
        """Every step in order; raises the first RunnerError after journalling it."""
        try:
            for step in self.plan.steps:
                if step.skipped:
                    self.journal.end(step.id, StepStatus.SKIPPED, step.skip_reason)
                    continue
                self.journal.begin(step.id)
                log.info("step %s: %s", step.id, step.why)
                try:
                    self.handlers[step.kind](step)
                except RunnerError as exc:
                    self.journal.end(step.id, StepStatus.FAILED, exc.render())
                    raise
                if self.journal.step(step.id).status is StepStatus.RUNNING:
                    self.journal.end(step.id, StepStatus.DONE)
        finally:
            # A failed run must not leave the server trusting function creators.
            if self._trust_before is not None:
                self._restore_trust_after_failure()

    # -- binary logging ---------------------------------------------------------------------

    def _admin_database(self) -> Database:
        target = self.inventory.database.admin_target()
        if target is None:
            raise MigrationError(
                "setting log_bin_trust_function_creators needs [database.admin]",
                hint="give an account with SUPER in the inventory",
            )
        return Database(target)

    def _trust_function_creators(self, step: Step) -> None:
        admin = self._admin_database()
        before = admin.binlog_settings().trust_function_creators
        admin.set_trust_function_creators(True)
        self._trust_before = before
        self.journal.event(step.id, "set", log_bin_trust_function_creators=1, previous=int(before))

    def _restore_trust(self, step: Step) -> None:
        assert self._trust_before is not None
        self._admin_database().set_trust_function_creators(self._trust_before)
        self.journal.event(step.id, "restored", log_bin_trust_function_creators=int(self._trust_before))
        self._trust_before = None

    def _restore_trust_after_failure(self) -> None:
        step_id = StepKind.RESTORE_TRUST.value
        try:
            self.journal.begin(step_id)
            self._restore_trust(next(s for s in self.plan.steps if s.id == step_id))
            self.journal.end(step_id, StepStatus.DONE, "restored after the run failed")
        except RunnerError as exc:
            self.journal.end(step_id, StepStatus.FAILED, exc.render())
            log.error("could not restore log_bin_trust_function_creators: %s", exc.render())

    # -- database ---------------------------------------------------------------------------

    def _throwaway(
        self, command: list[str], purpose: str, environment: Mapping[str, str] | None = None
    ) -> tuple[int, str]:
        finished = self.drivers.engine("local").run_once(
            self.inventory.target_image,
            command,
            mounts=self.inventory.mounts,
            labels={**self.labels, PURPOSE_LABEL: purpose},
            environment=environment,
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / f"{purpose}.log").write_text(finished.output)
        return finished.exit_code, finished.tail()

    def _backup(self, step: Step) -> None:
        manifest = take_backup(
            self.drivers.engine("local"),
            self.inventory.backup_image,
            self.inventory.database.target(),
            self.inventory.backup_dir / self.journal.run_id,
            self.labels,
        )
        self.journal.event(
            step.id, "dumped", dump=manifest.dump, sha256=manifest.sha256, tables=len(manifest.tables)
        )

    def _db_sync(self, step: Step, phase: str) -> None:
        """One db_sync phase, with a bounded wait for metadata locks, retried after reaping.

        Schema changes need a metadata lock on their table. A session idle inside a
        transaction (old releases leak one now and then) holds it forever, and while
        an ALTER waits, every new query on that table queues behind it: the whole
        cluster stalls. So the migration waits at most MIGRATION_LOCK_WAIT_S for a
        lock, idle transactions older than IDLE_TRANSACTION_S are ended first, and a
        lock timeout is retried (bounded).
        """
        heads_before = sorted(self.drivers.database.alembic_heads())
        environment = migration_environment(self.inventory)

        def attempt() -> tuple[int, str]:
            self._reap_idle_transactions(step)
            return self._throwaway(["keystone-manage", "db_sync", phase], step.id, environment)

        try:
            exit_code, tail = wait_until(
                MIGRATION_LOCK_RETRY, attempt, lambda result: result[0] == 0 or LOCK_TIMEOUT not in result[1]
            )
        except WaitTimeout as exc:
            exit_code, tail = exc.last_observed if isinstance(exc.last_observed, tuple) else (-1, str(exc))
        heads_after = sorted(self.drivers.database.alembic_heads())
        self.journal.event(
            step.id,
            "db_sync",
            phase=phase,
            exit_code=exit_code,
            heads_before=heads_before,
            heads_after=heads_after,
        )
        if exit_code != 0:
            raise MigrationError(
                f"keystone-manage db_sync {phase} failed",
                observed=f"exit code {exit_code}; last lines:\n{tail}",
                hint=f"the whole output is in {self.log_dir / (step.id + '.log')}; the old nodes still serve. "
                "Fix the cause, or restore the backup, before running again",
            )

    def _reap_idle_transactions(self, step: Step) -> None:
        """End Keystone sessions idle inside a transaction; they would block the schema change."""
        admin = self.inventory.database.admin_target()
        if admin is None:
            return  # PROCESS is needed to see transactions; the lock timeout still bounds the stall
        database = Database(admin)
        idle = database.idle_transactions(self.inventory.database.user, IDLE_TRANSACTION_S)
        if idle:
            database.kill_connections([t.connection_id for t in idle])
            self.journal.event(
                step.id,
                "ended idle transactions",
                sessions=[{"id": t.connection_id, "host": t.host, "idle_s": t.idle_s} for t in idle],
            )

    def _contract(self, step: Step) -> None:
        # A node can flap DOWN for a moment under load (a slow health check): wait,
        # bounded, for the whole cluster to be on the target and UP before refusing.
        try:
            wait_until(HAPROXY_SERVERS_UP, self._cluster_ready_for_contract, lambda lists: not any(lists))
        except WaitTimeout as exc:
            not_on_target, not_up = exc.last_observed if isinstance(exc.last_observed, tuple) else ([], [])
            raise MigrationError(
                "refusing to contract: not every node runs the target release and is UP",
                observed=f"not on target: {not_on_target or 'none'}; not UP: {not_up or 'none'}",
                hint="finish the node upgrades first; contract removes what the old release needs",
            ) from exc
        self.journal.event(step.id, "every node on target and UP")
        self._db_sync(step, "--contract")
        exit_code, tail = self._throwaway(["keystone-manage", "db_sync", "--check"], "check-after-contract")
        heads = frozenset(self.drivers.database.alembic_heads())
        target_heads = frozenset(self.plan.target_heads)
        self.journal.event(step.id, "checked", exit_code=exit_code, heads=sorted(heads))
        if exit_code != 0 or heads != target_heads:
            raise MigrationError(
                "after contract the database is not where the target release expects it",
                observed=f"db_sync --check exit {exit_code}; heads {sorted(heads)}, target {sorted(target_heads)}\n"
                f"{tail}",
                hint="compare the migration log in the run directory with the database; restore the backup if needed",
            )

    def _cluster_ready_for_contract(self) -> tuple[list[str], list[str]]:
        not_on_target, not_up = [], []
        stats = [s for runtime in self.drivers.runtimes for s in runtime.show_stat()]
        for node in self.inventory.nodes:
            facts = self.drivers.engine(node.engine).container(node.container)
            if (
                facts is None
                or facts.keystone_version != self.plan.target_version
                or facts.status != "running"
            ):
                not_on_target.append(node.name)
            for ref in node.servers:
                rows = [s for s in stats if s.backend == ref.backend and s.server == ref.server]
                if len(rows) != len(self.drivers.runtimes) or not all(r.is_up for r in rows):
                    not_up.append(f"{node.name} ({ref})")
        return not_on_target, not_up

    # -- nodes ------------------------------------------------------------------------------

    def _set_state(self, node: NodeConfig, state: str) -> None:
        for runtime in self.drivers.runtimes:
            for ref in node.servers:
                runtime.set_server_state(ref.backend, ref.server, state)

    def _server_stats(self, node: NodeConfig) -> list[ServerStat]:
        wanted = {(ref.backend, ref.server) for ref in node.servers}
        return [
            s
            for runtime in self.drivers.runtimes
            for s in runtime.show_stat()
            if (s.backend, s.server) in wanted
        ]

    def _node(self, step: Step) -> None:
        node = next(n for n in self.inventory.nodes if n.name == step.node)
        engine = self.drivers.engine(node.engine)
        expected_rows = len(node.servers) * len(self.drivers.runtimes)

        self._set_state(node, "drain")
        self.journal.event(step.id, "drain", servers=[str(s) for s in node.servers])
        try:
            wait_until(
                SERVER_DRAINED.with_timeout(self.inventory.drain_timeout_s),
                lambda: self._server_stats(node),
                lambda rows: (
                    len(rows) == expected_rows
                    and all(r.current_sessions == 0 and r.queued == 0 for r in rows)
                ),
            )
        except WaitTimeout as exc:
            raise HaproxyError(
                f"node {node.name} did not drain",
                observed=str(exc),
                hint="long-lived sessions hold it; raise run.drain_timeout_s or find the client. "
                "The node is still in DRAIN: set it ready again with the runtime API if you stop here",
            ) from exc
        self.journal.event(step.id, "drained")
        self._set_state(node, "maint")
        self.journal.event(step.id, "maint")

        old_name = f"{node.container}{OLD_CONTAINER_SUFFIX}{self.journal.run_id}"
        swap_container(
            engine,
            node,
            self.inventory.target_image,
            old_name,
            lambda event, data: self.journal.event(step.id, event, **data),
        )

        wait_healthy(self.drivers.http, node, self.inventory.health_timeout_s)
        self.journal.event(step.id, "healthy")
        version = running_version(engine, node.container)
        if version != self.plan.target_version:
            raise HealthError(
                f"node {node.name} does not run the target release",
                observed=f"keystone-manage --version says {version}, the target is {self.plan.target_version}",
                hint=f"check the image {self.inventory.target_image}; the old container is kept as {old_name}",
            )
        self.journal.event(step.id, "version", version=version)

        self._set_state(node, "ready")
        for runtime in self.drivers.runtimes:
            for ref in node.servers:
                runtime.set_server_health_up(ref.backend, ref.server)
        self.journal.event(step.id, "ready")
        try:
            wait_until(
                HAPROXY_SERVERS_UP,
                lambda: self._server_stats(node),
                lambda rows: len(rows) == expected_rows and all(r.is_up for r in rows),
            )
        except WaitTimeout as exc:
            raise HealthError(
                f"HAProxy does not see node {node.name} UP after the swap",
                observed=str(exc),
                hint="the node answered directly; check the HAProxy health check path and the node's bind address",
            ) from exc
        self.journal.event(step.id, "up")

    # -- cleanup ----------------------------------------------------------------------------

    def _cleanup(self, step: Step) -> None:
        old = [
            (record.node, event["old_name"])
            for record in self.journal.steps
            for event in record.events
            if event["event"] == "renamed"
        ]
        if self.keep_old:
            self.journal.end(
                step.id, StepStatus.SKIPPED, "kept for rollback (--keep-old): " + ", ".join(n for _, n in old)
            )
            return
        for node_name, old_name in old:
            node = next(n for n in self.inventory.nodes if n.name == node_name)
            self.drivers.engine(node.engine).remove(old_name)
            self.journal.event(step.id, "removed", container=old_name)

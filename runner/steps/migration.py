"""Schema steps: expand and migrate while the old nodes serve, contract once every node runs the target.

Each runs ``keystone-manage db_sync`` in a throwaway container of the target
image, with a bounded wait for metadata locks (see ``db_sync``).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from runner.drivers.containers import Finished, StillRunning
from runner.drivers.warm_keystone import ManageSetup
from runner.errors import MigrationError, RunnerError
from runner.journal import Event
from runner.migrations import IDLE_TRANSACTION_S, LOCK_TIMEOUT, styled_argv
from runner.model import LOCAL_ENGINE, MIGRATIONS_COMMAND, MIGRATIONS_KOLLA, BindMount, NodeConfig, ServerRef
from runner.steps.base import RunContext, Step, StepKind, Undo
from runner.waits import (
    CLUSTER_READY_FOR_CONTRACT,
    MIGRATION_FINISHES,
    MIGRATION_LOCK_RETRY,
    WaitTimeout,
    wait_until,
)

# Nodes asked for their release at once before contract.
ASKED_AT_ONCE = 8


@dataclass(frozen=True, kw_only=True)
class Throwaway:
    """What a throwaway container of the target needs: the image, a node's mounts and environment
    with the target configuration on top, and how it migrates (a command, or the Kolla way)."""

    image: str
    mounts: tuple[BindMount, ...]
    # The node's environment with the target's, and oslo.config overrides (the bounded lock wait).
    environment: tuple[tuple[str, str], ...]
    database_user: str  # Keystone's account: its idle transactions are ended before a schema change
    # How long a db_sync is waited for; past it the container is reported and left to finish.
    timeout_s: float = MIGRATION_FINISHES.timeout_s
    user: str | None = None  # the node's user where the operator set one (None: the image's)
    # MIGRATIONS_KOLLA: the image's own start (``command``, the node's) with KOLLA_UPGRADE /
    # KOLLA_FINISH_UPGRADE, which copies config.json's files into place first.
    migrations: str = MIGRATIONS_COMMAND
    command: tuple[str, ...] = ()
    engine: str = LOCAL_ENGINE  # where they run: the engine of the node whose setup they copy

    @property
    def kolla(self) -> bool:
        """True when the migrations run the Kolla way."""
        return self.migrations == MIGRATIONS_KOLLA

    def argv(self, command: list[str]) -> list[str]:
        """``command`` as the container runs it: after kolla_set_configs, the Kolla way."""
        return styled_argv(self.migrations, command)

    @property
    def manage_setup(self) -> ManageSetup | None:
        """What the warm keystone-manage container must have been started with to run this
        one's commands (None: the Kolla way, where the image's own start runs them)."""
        if self.kolla:
            return None
        return ManageSetup(self.engine, self.image, self.mounts, self.environment, self.user)


def run_throwaway(
    context: RunContext,
    spec: Throwaway,
    command: list[str],
    purpose: str,
    environment: Mapping[str, str] | None = None,
) -> tuple[int, str, bool]:
    """Run ``command`` in a throwaway container (a keystone-manage command: forked in the warm
    one where there is one for ``spec``); keep its whole output in the run's log directory.
    Its exit code, its last lines, and whether the warm container ran it."""
    try:
        finished = _run_warm(context, spec, command)
        warm = finished is not None
        if finished is None:
            finished = context.drivers.engine(spec.engine).run_once(
                spec.image,
                command,
                mounts=spec.mounts,
                labels=context.labels(purpose),
                environment={**dict(spec.environment), **(environment or {})},
                user=spec.user,
                policy=MIGRATION_FINISHES.with_timeout(spec.timeout_s),
                keep_on_timeout=True,
            )
    except StillRunning as exc:
        context.journal.event(purpose, Event.LEFT_RUNNING, container=exc.container_id[:12])
        raise MigrationError(
            f"{' '.join(command[1:])} did not finish within run.migration_timeout_s ({spec.timeout_s:.0f}s)",
            observed=f"{exc.what}\n{exc.observed}",
            hint=f"{exc.hint}. Then run 'keystone-upgrade resume' (it refuses while the container runs); "
            "raise run.migration_timeout_s for a database this large",
        ) from exc
    context.log_dir.mkdir(parents=True, exist_ok=True)
    (context.log_dir / f"{log_name(purpose)}.log").write_text(finished.output)
    return finished.exit_code, finished.tail(), warm


def _run_warm(context: RunContext, spec: Throwaway, command: list[str]) -> Finished | None:
    """``keystone-manage ...`` forked in the warm container begun beside preflight; None when
    it did not run there."""
    warm, setup = context.drivers.keystone_manage, spec.manage_setup
    if warm is None or setup is None or command[:1] != ["keystone-manage"]:
        return None
    return warm.run(setup, command[1:], spec.timeout_s)


# The Kolla images' switches for one-shot migration containers: KOLLA_UPGRADE runs
# db_sync --expand then --migrate, KOLLA_FINISH_UPGRADE runs --contract; each then exits.
KOLLA_PHASES = {"--expand": "KOLLA_UPGRADE", "--contract": "KOLLA_FINISH_UPGRADE"}


def log_name(purpose: str) -> str:
    """A file name for a step id (ids of later hops carry a release and a slash)."""
    return purpose.replace("/", "-")


def db_sync(context: RunContext, step_id: str, spec: Throwaway, phase: str) -> None:
    """One db_sync phase, with a bounded wait for metadata locks, retried after reaping.

    Schema changes need a metadata lock on their table. A session idle inside a
    transaction (old releases leak one now and then) holds it forever, and while
    an ALTER waits, every new query on that table queues behind it: the whole
    cluster stalls. So the migration waits at most MIGRATION_LOCK_WAIT_S for a
    lock, idle transactions older than IDLE_TRANSACTION_S are ended first, and a
    lock timeout is retried (bounded).
    """
    heads_before = sorted(context.drivers.database.alembic_heads())

    if spec.kolla:
        # The image's own start copies config.json's files into place, then runs the phase and exits 0.
        command, environment = list(spec.command), {KOLLA_PHASES[phase]: "yes"}
    else:
        command, environment = ["keystone-manage", "db_sync", phase], {}

    def attempt() -> tuple[int, str, bool]:
        _end_idle_transactions(context, step_id, spec.database_user)
        context.journal.intend(step_id, Event.DB_SYNC, phase=phase, heads_before=heads_before)
        return run_throwaway(context, spec, command, step_id, environment)

    try:
        exit_code, tail, warm = wait_until(
            MIGRATION_LOCK_RETRY, attempt, lambda result: result[0] == 0 or LOCK_TIMEOUT not in result[1]
        )
    except WaitTimeout as exc:
        exit_code, tail, warm = (
            exc.last_observed if isinstance(exc.last_observed, tuple) else (-1, str(exc), False)
        )
    heads_after = sorted(context.drivers.database.alembic_heads())
    context.journal.event(
        step_id,
        Event.DB_SYNC,
        phase=phase,
        exit_code=exit_code,
        heads_before=heads_before,
        heads_after=heads_after,
        # Forked in the warm container begun beside preflight, or run in a container of its own.
        warm=warm,
    )
    if exit_code != 0:
        raise MigrationError(
            f"keystone-manage db_sync {phase} failed",
            observed=f"exit code {exit_code}; last lines:\n{tail}",
            hint=f"the whole output is in {context.log_dir / (log_name(step_id) + '.log')}; the old nodes "
            "still serve. Fix the cause, or restore the backup, before running again",
        )


def _end_idle_transactions(context: RunContext, step_id: str, user: str) -> None:
    """End Keystone sessions idle inside a transaction; they would block the schema change."""
    admin = context.drivers.admin_database
    if admin is None:
        return  # PROCESS is needed to see transactions; the lock timeout still bounds the stall
    idle = admin.idle_transactions(user, IDLE_TRANSACTION_S)
    if idle:
        sessions = [{"id": t.connection_id, "host": t.host, "idle_s": t.idle_s} for t in idle]
        context.journal.intend(step_id, Event.IDLE_TRANSACTIONS_ENDED, sessions=sessions)
        admin.kill_connections([t.connection_id for t in idle])
        context.journal.event(step_id, Event.IDLE_TRANSACTIONS_ENDED, sessions=sessions)


@dataclass(frozen=True, kw_only=True)
class Migration(Throwaway, Step):
    """A db_sync phase the old release keeps serving on (expand, migrate): kept, not undone."""

    undo_rule = Undo.KEPT

    release: str | None  # the target's release, for people reading the plan

    def apply(self, context: RunContext) -> None:
        """The phase, journalled with the heads before and after."""
        db_sync(context, self.id, self, f"--{self.kind.value}")


@dataclass(frozen=True, kw_only=True)
class Expand(Migration):
    """``db_sync --expand``: the target's new tables and columns, and triggers that keep both in step."""

    kind = StepKind.EXPAND


@dataclass(frozen=True, kw_only=True)
class Migrate(Migration):
    """``db_sync --migrate``: data into the expanded schema (a no-op since Keystone moved to alembic)."""

    kind = StepKind.MIGRATE


@dataclass(frozen=True, kw_only=True)
class Contract(Throwaway, Step):
    """``db_sync --contract``, only once every node runs the target and is UP everywhere; then the check."""

    kind = StepKind.CONTRACT
    undo_rule = Undo.ENDS_WINDOW
    closes_window_because = "the schema was contracted: the old release needs what contract removes"

    release: str | None
    nodes: tuple[NodeConfig, ...]
    expected_heads: tuple[str, ...]
    # How long a node that flaps DOWN under load is waited for before contract is refused.
    gate_timeout_s: float = CLUSTER_READY_FOR_CONTRACT.timeout_s

    def closed_window(self, context: RunContext) -> bool:
        """Once db_sync --contract was announced: a contract refused at its gate changed nothing."""
        record = context.journal.step(self.id)
        return bool(context.journal.events_of(self.id, Event.DB_SYNC)) or (
            record.intended is not None and record.intended["event"] == Event.DB_SYNC.value
        )

    def apply(self, context: RunContext) -> None:
        """Gate, contract, check the heads.

        The heads are the check: ``db_sync --check`` in another container would take a second or
        two to say less (it says "up to date" whatever the heads on several releases, Keystone bug
        2080542), and db_sync has just exited 0.
        """
        self._wait_for_cluster_on_target(context)
        context.journal.event(self.id, Event.CLUSTER_ON_TARGET)
        db_sync(context, self.id, self, "--contract")
        heads = frozenset(context.drivers.database.alembic_heads())
        context.journal.event(self.id, Event.CHECKED, heads=sorted(heads))
        if heads != frozenset(self.expected_heads):
            raise MigrationError(
                "after contract the database is not where the target release expects it",
                observed=f"heads {sorted(heads)}, target {sorted(self.expected_heads)}",
                hint=f"compare the migration log {context.log_dir / (log_name(self.id) + '.log')} with the "
                "database; restore the backup if needed",
            )

    def _wait_for_cluster_on_target(self, context: RunContext) -> None:
        # A node can flap DOWN for a moment under load (a slow health check): wait,
        # bounded, for the whole cluster to be on the target and UP before refusing.
        try:
            wait_until(
                CLUSTER_READY_FOR_CONTRACT.with_timeout(self.gate_timeout_s),
                lambda: self._not_ready(context),
                lambda lists: not any(lists),
            )
        except WaitTimeout as exc:
            not_on_target, not_up = exc.last_observed if isinstance(exc.last_observed, tuple) else ([], [])
            raise MigrationError(
                "refusing to contract: not every node runs the target release and is UP",
                observed=f"not on target: {not_on_target or 'none'}; not UP: {not_up or 'none'}",
                hint="finish the node upgrades first; contract removes what the old release needs",
            ) from exc

    def _not_ready(self, context: RunContext) -> tuple[list[str], list[str]]:
        def release_of(node: NodeConfig) -> str | None:
            try:
                return context.drivers.node_runtime(node).running_release()
            except RunnerError:
                return None  # not answering now counts as not on the target, and is asked again

        # Each node is asked inside its container (an exec, a Python start): all at once.
        with ThreadPoolExecutor(max_workers=max(1, min(len(self.nodes), ASKED_AT_ONCE))) as pool:
            releases = list(pool.map(release_of, self.nodes))
        not_on_target = [
            node.name for node, release in zip(self.nodes, releases, strict=True) if release != self.release
        ]
        servers: tuple[ServerRef, ...] = tuple(ref for node in self.nodes for ref in node.servers)
        owner = {ref: node.name for node in self.nodes for ref in node.servers}
        not_up = [f"{owner[ref]} ({ref})" for ref in context.drivers.rotation.not_up(servers)]
        return not_on_target, not_up

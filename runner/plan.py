"""From inventory and facts to the plan: a pure function, no I/O, unit-tested without Docker.

The plan is data: frozen steps that carry every parameter they act on, ids
that stay unique across hops, and a JSON form that the journal keeps and a
resumed run reads back exactly (``Plan.to_dict`` / ``Plan.from_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.drivers.docker_blueprint import ThrowawaySetup
from runner.facts import ClusterFacts
from runner.facts.target import inventory_setup, throwaway_environment
from runner.migrations import migrations_style
from runner.model import MIGRATIONS_KOLLA, Inventory, NodeConfig
from runner.preflight import Finding, preflight_findings, preflight_notices
from runner.preflight_schema import drift_findings, drift_notices, release_path_findings
from runner.release_path import MIGRATE_IS_NOOP, migrate_is_noop
from runner.steps import (
    Backup,
    Cleanup,
    Contract,
    Expand,
    FlushCache,
    KeysAgree,
    Migrate,
    NodeStep,
    NodeUpgrade,
    OfflineMigration,
    RestoreTrust,
    Step,
    TrustFunctionCreators,
    step_from_dict,
)

# The old container of a swapped node is kept as <container><suffix><run id> until cleanup.
OLD_CONTAINER_SUFFIX = "-ku-old-"


@dataclass(frozen=True)
class Plan:
    """The whole upgrade as data."""

    run_id: str
    target_image: str
    target_version: str | None
    source_versions: tuple[str, ...]
    database_heads: tuple[str, ...]
    target_heads: tuple[str, ...]
    check_exit_code: int | None
    doctor_findings: str | None
    findings: tuple[Finding, ...]
    steps: tuple[Step, ...] = field(default=())
    keep_old: bool = False
    # What the operator should know that does not stop the run (each says what to do).
    notices: tuple[str, ...] = ()
    # "rolling" (node by node, serving throughout), "cold" or "restore" (every node stopped at once).
    procedure: str = "rolling"

    def __post_init__(self) -> None:
        ids = [step.id for step in self.steps]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"step ids must be unique across the plan: {duplicates} appear more than once")

    @property
    def refused(self) -> bool:
        """True when preflight found a reason not to start."""
        return bool(self.findings)

    def step(self, step_id: str) -> Step:
        """The step with this id."""
        return next(s for s in self.steps if s.id == step_id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (plan --json, the journal, the report)."""
        return {
            "run_id": self.run_id,
            "procedure": self.procedure,
            "keep_old": self.keep_old,
            "notices": list(self.notices),
            "target_image": self.target_image,
            "target_version": self.target_version,
            "source_versions": list(self.source_versions),
            "database_heads": list(self.database_heads),
            "target_heads": list(self.target_heads),
            "check_exit_code": self.check_exit_code,
            "doctor_findings": self.doctor_findings,
            "findings": [f.__dict__ for f in self.findings],
            "steps": [s.to_dict() for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """The plan ``to_dict`` wrote (from the journal)."""
        return cls(
            run_id=data["run_id"],
            keep_old=data["keep_old"],
            target_image=data["target_image"],
            target_version=data["target_version"],
            source_versions=tuple(data["source_versions"]),
            database_heads=tuple(data["database_heads"]),
            target_heads=tuple(data["target_heads"]),
            check_exit_code=data["check_exit_code"],
            doctor_findings=data["doctor_findings"],
            findings=tuple(Finding(**f) for f in data["findings"]),
            steps=tuple(step_from_dict(s) for s in data["steps"]),
            notices=tuple(data.get("notices", ())),
            procedure=data.get("procedure", "rolling"),
        )


def backup_directory(inventory: Inventory, run_id: str, hop: str | None = None) -> Path:
    """Where a run's verified dump goes (one directory per hop of a release path)."""
    return inventory.backup_dir / run_id / (hop or "")


def kept_name(container: str, run_id: str, hop: str | None = None) -> str:
    """What a node's old container is called while it is kept for rollback (until cleanup)."""
    return f"{container}{OLD_CONTAINER_SUFFIX}{run_id}" + (f"-{hop}" if hop else "")


def with_current_timeouts(plan: Plan, inventory: Inventory) -> Plan:
    """The plan with the inventory's timeouts as they are now: what a resume or rollback may change.

    Everything else comes from the journal exactly; a timeout that proved too short
    (a long migration, a slow drain) is raised in the inventory and taken from there.
    """

    def retimed(step: Step) -> Step:
        if isinstance(step, Expand | Migrate | Contract | OfflineMigration):
            return replace(step, timeout_s=inventory.migration_timeout_s)
        if isinstance(step, NodeStep):
            return replace(
                step, drain_timeout_s=inventory.drain_timeout_s, health_timeout_s=inventory.health_timeout_s
            )
        return step

    return replace(plan, steps=tuple(retimed(s) for s in plan.steps))


def with_current_environment(plan: Plan, inventory: Inventory, setup: ThrowawaySetup) -> Plan:
    """The plan with its environment values filled in again: the journal keeps only their names
    (a value may be a secret). Taken from the inventory and the nodes as they are now, as the
    timeouts are."""

    def filled(step: Step) -> Step:
        if isinstance(step, Expand | Migrate | Contract | OfflineMigration):
            return replace(step, environment=throwaway_environment(setup))
        if isinstance(step, KeysAgree):
            return replace(step, environment=setup.environment)
        if isinstance(step, NodeStep) and step.config.environment:  # a restore's nodes get none
            own = inventory.target_config(step.node.name).environment
            return replace(step, config=replace(step.config, environment=own))
        return step

    return replace(plan, steps=tuple(filled(s) for s in plan.steps))


def _peers(
    nodes: tuple[NodeConfig, ...], node: NodeConfig, together: frozenset[str] = frozenset()
) -> tuple[NodeConfig, ...]:
    """The other nodes, those swapped after ``node`` first: its token gate checks against an old node
    while there is one, and against the node swapped before it at the end. Nodes swapped in the same
    batch (``together``) are out of rotation with it: not peers."""
    at = nodes.index(node)
    return tuple(n for n in nodes[at + 1 :] + tuple(reversed(nodes[:at])) if n.name not in together)


def _batches(inventory: Inventory, facts: ClusterFacts, target_version: str | None) -> dict[str, int]:
    """With [run] nodes_at_once above 1: each node still to swap and its batch, in the plan's order."""
    if inventory.nodes_at_once <= 1:
        return {}
    to_swap = [
        n.config.name for n in facts.nodes if n.known_release is None or n.known_release != target_version
    ]
    return {name: index // inventory.nodes_at_once for index, name in enumerate(to_swap)}


def _together(batches: dict[str, int], batch: int | None) -> frozenset[str]:
    return frozenset(name for name, b in batches.items() if batch is not None and b == batch)


def _flush_cache(inventory: Inventory, step_id: str, nothing_upgraded: bool) -> FlushCache:
    """Emptying Keystone's memcached after contract: only when [cache] asks for it."""
    cache = inventory.cache
    skip = None
    if cache is None or not cache.flush_after_upgrade:
        skip = "not asked for: [cache] flush_after_upgrade = true (with its memcached servers) asks for it"
    elif nothing_upgraded:
        skip = "nothing is upgraded: the cache holds nothing the old release wrote"
    return FlushCache(
        id=step_id,
        why="empty memcached: no node serves what the old release cached before the schema changed",
        skip_reason=skip,
        servers=cache.memcached if cache is not None else (),
    )


def _sources(facts: ClusterFacts) -> tuple[str, ...]:
    return tuple(sorted({n.known_release or "unknown" for n in facts.nodes if n.container}))


def backup_of_serving(
    inventory: Inventory, facts: ClusterFacts, step_id: str, directory: str, why: str
) -> Backup:
    """A backup whose manifest says what serves on the database now (release, node images and
    builds): what a restore of it starts again."""
    sources = _sources(facts)
    running = [n for n in facts.nodes if n.container is not None]
    return Backup(
        id=step_id,
        why=why,
        image=inventory.backup_image,
        directory=directory,
        restore_check=inventory.backup_restore_check,
        release=sources[0] if len(sources) == 1 and sources[0] != "unknown" else None,
        node_images=tuple((n.config.name, n.container.image_reference) for n in running if n.container),
        node_image_ids=tuple((n.config.name, n.container.image_id) for n in running if n.container),
    )


def build_plan(
    inventory: Inventory,
    facts: ClusterFacts,
    *,
    run_id: str,
    keep_old: bool = False,
    hop: str | None = None,
) -> Plan:
    """The steps from the cluster as observed to every node on the target, in order.

    ``hop`` (a release) prefixes every step id, so that the steps of several
    hops can stand in one plan; a one-hop plan keeps the plain ids.
    """

    def step_id(name: str) -> str:
        return f"{hop}/{name}" if hop else name

    findings = preflight_findings(inventory, facts) + drift_findings(facts) + release_path_findings(facts)
    target = facts.target
    target_version = target.known_release
    target_heads, db_heads = target.heads, facts.database.heads
    at_target = bool(target_heads) and db_heads == target_heads
    expand_done = target.expand_head in db_heads if target.expand_head else False
    binlog = facts.database.binlog
    needs_trust = not at_target and binlog is not None and binlog.needs_trust
    # What every throwaway container of the target gets (the Throwaway fields of each schema step):
    # a node's mounts, volumes and environment with the target configuration on top.
    setup = facts.throwaway or inventory_setup(inventory)
    migrations = migrations_style(inventory.migrations, setup.mounts)
    shared: dict[str, Any] = {
        "image": inventory.target_image,
        "mounts": setup.mounts,
        "environment": throwaway_environment(setup),
        "database_user": inventory.database.user,
        "timeout_s": inventory.migration_timeout_s,
        "user": setup.user,
        "migrations": migrations,
        "command": setup.command,
        "engine": setup.engine,
    }
    sources = _sources(facts)
    steps: list[Step] = []
    if not at_target:
        steps.append(
            backup_of_serving(
                inventory,
                facts,
                step_id("backup"),
                str(backup_directory(inventory, run_id, hop)),
                "a verified dump before the schema changes",
            )
        )
    if needs_trust:
        steps.append(
            TrustFunctionCreators(
                id=step_id("trust-function-creators"),
                why="binary logging is on and the Keystone user lacks SUPER: allow triggers for the run",
            )
        )
    already_expanded = "the database is already at the target's expand head" if expand_done else None
    steps.append(
        Expand(
            id=step_id("expand"),
            why="add the target's new schema while the old nodes keep serving",
            skip_reason=already_expanded,
            release=target_version,
            **shared,
        )
    )
    kolla_migrates = (
        "KOLLA_UPGRADE runs db_sync --migrate right after --expand, in the expand container"
        if migrations == MIGRATIONS_KOLLA
        else None
    )
    steps.append(
        Migrate(
            id=step_id("migrate"),
            why="move data into the expanded schema",
            skip_reason=already_expanded
            or kolla_migrates
            or (MIGRATE_IS_NOOP if migrate_is_noop(target_version) else None),
            release=target_version,
            **shared,
        )
    )
    swapped: list[NodeUpgrade] = []
    node_steps: list[NodeUpgrade] = []
    batches = _batches(inventory, facts, target_version)
    for node in facts.nodes:
        version = node.known_release
        on_target = version is not None and version == target_version
        batch = batches.get(node.config.name)
        step = NodeUpgrade(
            id=step_id(f"node:{node.config.name}"),
            why=f"drain, swap {node.config.container} to {inventory.target_image}, gate on health and version",
            skip_reason=f"already runs {version}" if on_target else None,
            node=node.config,
            image=inventory.target_image,
            release=target_version,
            from_release=version,
            kept_as=kept_name(node.config.container, run_id, hop),
            drain_timeout_s=inventory.drain_timeout_s,
            health_timeout_s=inventory.health_timeout_s,
            peers=_peers(inventory.nodes, node.config, together=_together(batches, batch)),
            config=inventory.target_config(node.config.name),
            batch=batch,
        )
        node_steps.append(step)
        if not step.skipped:
            swapped.append(step)
    nothing_to_swap = "every node already runs the target" if not swapped else None
    keys: dict[str, Any] = {
        "nodes": inventory.nodes,
        "repositories": inventory.key_repositories,
        "image": inventory.target_image,
        "mounts": setup.mounts,
        "environment": setup.environment,
        "migrations": migrations,
        "engine": setup.engine,
        "skip_reason": nothing_to_swap,
    }
    steps.append(
        KeysAgree(
            id=step_id("keys-before"),
            why="every node and the throwaway container hold the same keys, before the first node",
            **keys,
        )
    )
    steps += node_steps
    steps.append(
        KeysAgree(
            id=step_id("keys-after"), why="the same keys everywhere once every node runs the target", **keys
        )
    )
    steps.append(
        Contract(
            id=step_id("contract"),
            why="remove what only the old release needed, once every node runs the target",
            skip_reason="the database is already at the target's heads" if at_target else None,
            release=target_version,
            nodes=inventory.nodes,
            expected_heads=tuple(sorted(target_heads)),
            **shared,
        )
    )
    steps.append(_flush_cache(inventory, step_id("flush-cache"), nothing_upgraded=at_target and not swapped))
    if needs_trust:
        steps.append(
            RestoreTrust(
                id=step_id("restore-trust"),
                why="put log_bin_trust_function_creators back (also done when the run fails)",
                closes=step_id("trust-function-creators"),
            )
        )
    kept = tuple(s.kept_as for s in swapped)
    steps.append(
        Cleanup(
            id=step_id("cleanup"),
            why="remove the old containers kept for rollback",
            skip_reason=f"kept for rollback (--keep-old): {', '.join(kept)}" if keep_old else None,
            nodes=tuple(s.node for s in swapped),
            kept_as=kept,
        )
    )
    return Plan(
        run_id=run_id,
        keep_old=keep_old,
        target_image=inventory.target_image,
        target_version=target_version,
        source_versions=sources,
        database_heads=tuple(sorted(db_heads)),
        target_heads=tuple(sorted(target_heads)),
        check_exit_code=target.check.exit_code if target.check else None,
        doctor_findings=target.doctor.tail(20) if target.doctor else None,
        findings=tuple(findings),
        steps=tuple(steps),
        notices=preflight_notices(inventory, facts) + drift_notices(facts),
    )

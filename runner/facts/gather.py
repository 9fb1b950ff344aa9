"""Preflight's readings of the live cluster, taken at once where they can be (``gather_facts``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial

from runner.drivers.containers import RUN_ID_LABEL
from runner.drivers.docker_blueprint import ThrowawaySetup
from runner.drivers.ports import Drivers
from runner.errors import RunnerError
from runner.facts.cluster import ClusterFacts
from runner.facts.drift import drift_facts
from runner.facts.nodes import (
    NodeFacts,
    database_facts,
    haproxy_configs_losing_states,
    haproxy_configs_without_slowstart,
    node_facts,
    probe_login_error,
    socket_facts,
    throwaways_running,
)
from runner.facts.target import (
    InWarm,
    TargetFacts,
    node_setup,
    node_target_facts,
    target_facts,
    throwaway_setup,
)
from runner.keystone_conf import mounted_cache_backend
from runner.model import LOCAL_ENGINE, Inventory, NodeConfig

log = logging.getLogger(__name__)

# Preflight's readings that run at once: the nodes' (each an exec or two), the target's
# throwaway, the nodes' own target configurations and the drift reference.
PREFLIGHT_THREADS = 6


def gather_facts(
    inventory: Inventory,
    drivers: Drivers,
    *,
    pull_missing: bool = False,
    accept_drift: tuple[str, ...] | None = None,
    begin_backup: Callable[[], None] | None = None,
    begin_warm: Callable[[ThrowawaySetup], InWarm | None] | None = None,
) -> ClusterFacts:
    """Read the cluster; change nothing (an upgrade may pull a missing target image).

    ``accept_drift`` (None: the schema is not compared) names the drift differences the
    operator accepts; the others refuse the plan. ``begin_backup`` (an upgrade's) starts
    its dump, a reading too, beside the others; ``begin_warm`` (an upgrade's) its warm
    keystone-manage container, set up as the target's throwaway is, as soon as that is known,
    which then reads the target's heads and keys and runs its `db_sync --check` and `doctor`
    (``target_facts``).

    The slow readings (containers: the target's throwaway, execs in every node, the drift
    reference) wait on the engine more than they compute: they overlap. The target's are the
    longest (Keystone's import), so they start as soon as the setup they copy from a node is
    known, not after every node. The database connection is not shared between
    threads: only the main thread and then drift use it.
    """
    run_label = {RUN_ID_LABEL: "preflight"}
    # Before any throwaway of this preflight starts: what runs now is left over from earlier runs.
    leftovers = throwaways_running(drivers.engines)
    if begin_backup is not None:
        begin_backup()

    def facts_of(node: NodeConfig) -> NodeFacts:
        return node_facts(
            node,
            drivers.engine(node.engine),
            drivers.http,
            inventory.target_image,
            inventory.key_repositories,
            pull_missing=pull_missing,
            # An engine no registry serves gets the target image from the runner's own.
            image_source=drivers.engine(LOCAL_ENGINE),
        )

    with ThreadPoolExecutor(max_workers=PREFLIGHT_THREADS) as pool:
        database = database_facts(drivers.database)
        database_ok = database.error is None

        warm_begun: list[Future[InWarm | None]] = []

        def target_read_with(setup: ThrowawaySetup) -> Future[TargetFacts]:
            warm = None if begin_warm is None else pool.submit(begin_warm, setup)
            if warm is not None:
                warm_begun.append(warm)
            return pool.submit(
                target_facts,
                inventory,
                drivers.engine(setup.engine),
                run_label,
                database_ok=database_ok,
                pull_missing=pull_missing,
                setup=setup,
                warm=None if warm is None else partial(_begun, warm),
            )

        # throwaway_setup's choice: the first node on the runner's engine (else the first node),
        # unless it cannot be read; then it needs every node. Known from its container alone, the
        # target's readings are queued before the nodes': they are the longest.
        first = sorted(inventory.nodes, key=lambda n: n.engine != LOCAL_ENGINE)[0]
        setup = _setup_from_container(inventory, first, drivers)
        target = None if setup is None else target_read_with(setup)
        # The nodes' execs once the warm container has started, not beside its creation: each costs
        # the engine CPU the serving nodes share, and they end long before its Keystone import.
        wait(warm_begun)
        read = _read_nodes(pool, inventory.nodes, facts_of)
        if setup is None:
            setup = node_setup(inventory, first, read[first.name].result().container, drivers.engine)
            target = None if setup is None else target_read_with(setup)
        nodes = tuple(read[node.name].result() for node in inventory.nodes)
        if setup is None:
            setup = throwaway_setup(inventory, nodes, drivers.engine)
        target = target or target_read_with(setup)
        node_targets = pool.submit(
            node_target_facts, inventory, nodes, drivers.engine, run_label, database_ok=database_ok
        )
        drift = (
            None
            if accept_drift is None
            else pool.submit(
                drift_facts,
                nodes,
                drivers.database,
                drivers.engine(LOCAL_ENGINE),
                inventory.backup_image,
                run_label,
                accepted=accept_drift,
            )
        )
        sockets = tuple(socket_facts(runtime) for runtime in drivers.runtimes)
        login_error = probe_login_error(drivers.tokens, inventory.probe.url if inventory.probe else None)
        return ClusterFacts(
            nodes,
            sockets,
            database,
            target.result(),
            leftovers,
            haproxy_configs_losing_states(inventory.haproxy_configs),
            login_error,
            # Read on this host: only where the throwaways (and so the mounts' sources) are here.
            cache_backend=mounted_cache_backend(setup.mounts) if setup.engine == LOCAL_ENGINE else None,
            node_targets=node_targets.result(),
            throwaway=setup,
            drift=None if drift is None else drift.result(),
            haproxy_configs_without_slowstart=haproxy_configs_without_slowstart(inventory.haproxy_configs),
        )


def _begun(begun: Future[InWarm | None]) -> InWarm | None:
    """What runs in the warm container once it has been begun; None where it was not (the Kolla
    way) or its start failed: the target's throwaway then reads everything."""
    try:
        return begun.result()
    except Exception as exc:  # the warm container saves time; it never refuses an upgrade
        log.warning("no warm keystone-manage container for preflight's readings and checks: %s", exc)
        return None


def _setup_from_container(inventory: Inventory, first: NodeConfig, drivers: Drivers) -> ThrowawaySetup | None:
    """``first``'s throwaway setup from its container alone, when it is on the runner's engine and
    that has the target image: the target's throwaway and the warm container (the longest
    readings) need not wait for the node's execs and health. None when it cannot be read so, or
    when the node's reading may first have to pull or copy the target image they run."""
    if first.engine != LOCAL_ENGINE:
        return None
    engine = drivers.engine(first.engine)
    try:
        if engine.image(inventory.target_image) is None:
            return None
        container = engine.container(first.container)
    except RunnerError:
        return None
    if container is None:
        return None
    return node_setup(inventory, first, container, drivers.engine)


def _read_nodes(
    pool: ThreadPoolExecutor, nodes: tuple[NodeConfig, ...], facts_of: Callable[[NodeConfig], NodeFacts]
) -> dict[str, Future[NodeFacts]]:
    """Every node's facts, read at once, except that another engine's nodes wait for its first:
    the first copies a missing target image there, once (the runner's own engine has it)."""
    firsts: dict[str, Future[NodeFacts]] = {}
    read: dict[str, Future[NodeFacts]] = {}
    for node in nodes:
        if node.engine == LOCAL_ENGINE or node.engine not in firsts:
            read[node.name] = pool.submit(facts_of, node)
            firsts.setdefault(node.engine, read[node.name])
    for node in nodes:
        if node.name not in read:
            read[node.name] = pool.submit(_after, firsts[node.engine], facts_of, node)
    return read


def _after(
    first: Future[NodeFacts], facts_of: Callable[[NodeConfig], NodeFacts], node: NodeConfig
) -> NodeFacts:
    # ``first`` was submitted before: a worker waiting here waits on one already running.
    first.result()
    return facts_of(node)

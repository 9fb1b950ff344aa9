"""The ways to take a cluster from one release to the next, measured the same way.

- cold: stop every node, migrate everything, start every node on the new release;
- rolling-no-drain: expand, then stop and replace each node while HAProxy still routes to it,
  then contract: the least a rolling upgrade can do;
- openstack-ansible: its keystone playbook as it runs (openstack-ansible-plugins
  playbooks/keystone.yml, serial ['1', '100%']): the batch's nodes disabled in HAProxy
  (community.general.haproxy with drain and wait off: MAINT at once), stopped, expand on the
  first batch, restarted, their port waited for, enabled again; the first node, then all the
  rest at once; contract once all run the new code;
- kolla-ansible: its keystone role's upgrade (serial 0): a one-shot KOLLA_UPGRADE container
  (db_sync --expand then --migrate), every node's container recreated at once, no HAProxy
  action (its health checks and redispatch only), then KOLLA_FINISH_UPGRADE (--contract);
- keystone-upgrade: the runner itself;
- floor: not an upgrade but what any of them costs the machine at least: the expand, and each
  node's replacement booted beside the node on a port of its own, at the weight the runner
  boots it at, until it answers, then removed. No node leaves rotation and nothing serving
  changes, so the latency it adds is the migration's locks and the boots' CPU alone: the
  lowest p99 a rolling upgrade can have on this machine. It runs no contract (the old release still serves), which keystone-upgrade's
  phases show adds no slow request.

Each returns the seconds it spent in each operation (migration containers, stopping nodes,
starting them until healthy, draining). What a procedure cannot avoid is what the
no-drain baseline spends on the same operations; the rest of a wall time is overhead
(benchmarks.run does that sum).
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from runner.drivers.containers import PURPOSE_LABEL
from runner.drivers.docker_blueprint import derive_blueprint
from runner.drivers.docker_node import HEALTH_REQUEST_TIMEOUT_S, boot_cpu_shares
from runner.drivers.ports import Drivers
from runner.errors import MigrationError
from runner.host import keep_to_last_cpu
from runner.journal import Event, Journal
from runner.model import Inventory, NodeConfig
from runner.upgrade import run_upgrade
from runner.waits import HAPROXY_SERVERS_UP, NODE_HEALTHY, WaitPolicy, wait_until

log = logging.getLogger(__name__)

Parts = dict[str, float]
# Parts are added to from the threads of the parallel baselines.
_PARTS_LOCK = threading.Lock()
PARTS = ("expand_s", "migrate_s", "contract_s", "node_stop_s", "node_start_to_healthy_s", "drain_s")
# openstack-ansible's restart handler waits for the port (wait_for, no HTTP) before it re-enables.
PORT_OPEN = WaitPolicy("the node's port accepts connections", timeout_s=180, interval_s=0.1)


def _db_sync(inventory: Inventory, drivers: Drivers, parts: Parts, part: str, *phases: str) -> None:
    """One throwaway container of the target running these db_sync phases in order (none: all)."""
    started = time.monotonic()
    command = " && ".join(f"keystone-manage db_sync {phase}" for phase in phases) or "keystone-manage db_sync"
    finished = drivers.engine("local").run_once(
        inventory.target_image,
        ["sh", "-c", command],
        mounts=inventory.mounts,
        labels={PURPOSE_LABEL: "benchmark-db-sync"},
    )
    if finished.exit_code != 0:
        raise MigrationError(f"{command} failed in the benchmark", observed=finished.tail())
    _add(parts, part, time.monotonic() - started)


def _add(parts: Parts, part: str, seconds: float) -> None:
    with _PARTS_LOCK:
        parts[part] += seconds


def _all_up(drivers: Drivers) -> None:
    runtime = drivers.runtimes[0]
    wait_until(HAPROXY_SERVERS_UP, runtime.show_stat, lambda stats: all(s.is_up for s in stats))


def _stop(inventory: Inventory, drivers: Drivers, parts: Parts, node: NodeConfig) -> None:
    started = time.monotonic()
    drivers.node_runtime(node).stop()
    _add(parts, "node_stop_s", time.monotonic() - started)


def _port_open(url: str) -> bool:
    where = urlsplit(url)
    try:
        with socket.create_connection((where.hostname or "127.0.0.1", where.port or 80), timeout=1):
            return True
    except OSError:
        return False


def _start(
    inventory: Inventory, drivers: Drivers, parts: Parts, node: NodeConfig, *, until_port_only: bool = False
) -> None:
    """Set the stopped container aside and start its replacement; time it until healthy (or open)."""
    runtime = drivers.node_runtime(node)
    kept_as = f"{node.container}-bench-old"
    began = time.monotonic()
    runtime.set_aside(kept_as)
    runtime.start_target(inventory.target_image, kept_as)
    runtime.full_cpu(kept_as)  # the runner's low boot weight is its own: the peers boot at full weight
    if until_port_only:
        wait_until(PORT_OPEN, lambda: _port_open(node.health_url), bool)
    else:
        wait_until(NODE_HEALTHY.with_timeout(inventory.health_timeout_s), runtime.health, lambda s: s == 200)
    _add(parts, "node_start_to_healthy_s", time.monotonic() - began)


def _replace(inventory: Inventory, drivers: Drivers, parts: Parts, node: NodeConfig) -> None:
    _stop(inventory, drivers, parts, node)
    _start(inventory, drivers, parts, node)


def _at_once(work: Callable[[NodeConfig], None], nodes: Iterable[NodeConfig]) -> None:
    """``work`` on every node in parallel (Ansible's forks); the first failure is raised."""
    nodes = list(nodes)
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        for future in [pool.submit(work, node) for node in nodes]:
            future.result()


def empty_parts() -> Parts:
    """Every operation at zero seconds."""
    return dict.fromkeys(PARTS, 0.0)


def cold(inventory: Inventory, drivers: Drivers) -> Parts:
    """Every node down, the whole db_sync (Keystone's offline upgrade), every node up."""
    parts = empty_parts()
    for node in inventory.nodes:
        _stop(inventory, drivers, parts, node)
    _db_sync(inventory, drivers, parts, "expand_s")  # expand, migrate and contract in one
    for node in inventory.nodes:
        _start(inventory, drivers, parts, node)
    _all_up(drivers)
    return parts


def rolling_no_drain(inventory: Inventory, drivers: Drivers) -> Parts:
    """Expand, then replace each node while it is still in rotation, then contract.

    No ``--migrate``: it is a no-op on every alembic release (as openstack-ansible also decided).
    """
    parts = empty_parts()
    _db_sync(inventory, drivers, parts, "expand_s", "--expand")
    for node in inventory.nodes:
        _replace(inventory, drivers, parts, node)
    _all_up(drivers)
    _db_sync(inventory, drivers, parts, "contract_s", "--contract")
    return parts


def openstack_ansible(inventory: Inventory, drivers: Drivers) -> Parts:
    """The first node, then all the rest at once; each batch disabled without a drain."""
    parts = empty_parts()
    first, rest = inventory.nodes[0], inventory.nodes[1:]
    for batch in ((first,), rest):
        servers = tuple(ref for node in batch for ref in node.servers)
        drivers.rotation.maint(servers)  # `disable server`: no drain, no wait for sessions
        _at_once(lambda node: _stop(inventory, drivers, parts, node), batch)
        if batch == (first,):
            _db_sync(inventory, drivers, parts, "expand_s", "--expand")
        _at_once(lambda node: _start(inventory, drivers, parts, node, until_port_only=True), batch)
        drivers.rotation.ready(servers)  # `enable server`: UP at once, before any check
    _db_sync(inventory, drivers, parts, "contract_s", "--contract")
    _all_up(drivers)
    return parts


def kolla_ansible(inventory: Inventory, drivers: Drivers) -> Parts:
    """KOLLA_UPGRADE's expand and migrate, every node recreated at once, then the contract."""
    parts = empty_parts()
    _db_sync(inventory, drivers, parts, "expand_s", "--expand", "--migrate")
    _at_once(lambda node: _replace(inventory, drivers, parts, node), inventory.nodes)
    _db_sync(inventory, drivers, parts, "contract_s", "--contract")
    _all_up(drivers)
    return parts


def keystone_upgrade(inventory: Inventory, drivers: Drivers) -> Parts:
    """The runner, as `keystone-upgrade upgrade --yes` runs it; its journal gives the parts."""
    keep_to_last_cpu()  # in the procedure's own process, as the command does
    run_upgrade(inventory, drivers, lambda _plan: True, lambda _report, _path: None)
    journal = Journal.load(inventory.state_dir)
    assert journal is not None
    return parts_from_journal(journal)


def parts_from_journal(journal: Journal) -> Parts:
    """The seconds a runner's run spent in each operation, from its journal's events."""
    parts = empty_parts()
    for step in journal.steps:
        seconds = step.seconds or 0.0
        if step.kind in ("expand", "migrate"):
            parts[f"{step.kind}_s"] += seconds
        elif step.kind == "contract":
            sync = journal.events_of(step.id, Event.DB_SYNC)
            start = next((e["at"] for e in journal.events_of(step.id, Event.CLUSTER_ON_TARGET)), None)
            if sync and start is not None:
                # db_sync --contract; not the wait before it.
                parts["contract_s"] += sync[-1]["at"] - start
        elif step.kind == "node":
            at = {e["event"]: e["at"] for e in step.events}
            parts["drain_s"] += at[Event.DRAINED] - at[Event.DRAIN]
            parts["node_stop_s"] += at[Event.STOPPED] - at[Event.MAINT]
            parts["node_start_to_healthy_s"] += at[Event.HEALTHY] - at[Event.STOPPED]
    return parts


def _port_for_a_spare() -> int:
    """A free port of 127.0.0.1 below the ephemeral range, which the probe's and HAProxy's own
    connections take theirs from: the spare binds it only once Keystone is imported."""
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("the floor procedure found no free port in 20000-32000")


def _boot_beside(inventory: Inventory, drivers: Drivers, parts: Parts, node: NodeConfig) -> None:
    """The node's replacement, booted beside it on a port of its own (``KEYSTONE_BIND``, the lab
    image's setting) at the weight the runner boots it at, until its /v3 answers; then removed."""
    engine = drivers.engine(node.engine)
    old = engine.container(node.container)
    old_image = engine.image(old.image_id) if old is not None else None
    if old is None or old_image is None:
        raise RuntimeError(f"the floor procedure cannot read {node.container} or its image")
    port = _port_for_a_spare()
    spare = f"{node.container}-floor"
    blueprint = derive_blueprint(old.inspect, old_image.inspect, inventory.target_image, name=spare)
    env = [e for e in blueprint.config.get("Env", []) if not e.startswith("KEYSTONE_BIND=")]
    shares = boot_cpu_shares(old.inspect, engine.cgroup_version)
    blueprint = replace(
        blueprint,
        config={**blueprint.config, "Env": [*env, f"KEYSTONE_BIND=127.0.0.1:{port}"]},
        host_config={**blueprint.host_config, **({} if shares is None else {"CpuShares": shares})},
    )
    began = time.monotonic()
    try:
        engine.create_and_start(blueprint)
        url = f"http://127.0.0.1:{port}/v3"
        wait_until(
            NODE_HEALTHY.with_timeout(inventory.health_timeout_s),
            lambda: drivers.http.get_status(url, HEALTH_REQUEST_TIMEOUT_S),  # no answer yet: OSError
            lambda s: s == 200,
        )
        _add(parts, "node_start_to_healthy_s", time.monotonic() - began)
    finally:
        try:
            engine.remove(spare)  # by name: also one created that did not start
        except Exception as exc:  # the run's own failure, if any, is the one to report
            log.warning("could not remove the floor's spare %s: %s", spare, exc)


def floor(inventory: Inventory, drivers: Drivers) -> Parts:
    """The expand, then each node's replacement booted beside it and removed: nothing served changes."""
    parts = empty_parts()
    _db_sync(inventory, drivers, parts, "expand_s", "--expand")
    for node in inventory.nodes:
        _boot_beside(inventory, drivers, parts, node)
    return parts


PROCEDURES: dict[str, Callable[[Inventory, Drivers], Parts]] = {
    "cold": cold,
    "rolling-no-drain": rolling_no_drain,
    "openstack-ansible": openstack_ansible,
    "kolla-ansible": kolla_ansible,
    "keystone-upgrade": keystone_upgrade,
    "floor": floor,
}
UPGRADES = tuple(name for name in PROCEDURES if name != "floor")
# The operations every procedure does (drain is the runner's own).
IRREDUCIBLE = ("expand_s", "contract_s", "node_stop_s", "node_start_to_healthy_s")


def describe(parts: Parts) -> dict[str, Any]:
    """Parts rounded for the results file."""
    return {key: round(value, 2) for key, value in parts.items()}

"""The three ways to take a cluster from one release to the next, measured the same way.

- cold: stop every node, migrate everything, start every node on the new release;
- rolling-no-drain: migrate, then stop and replace each node while HAProxy still routes to it;
- keystone-upgrade: the runner itself.

Each returns the time spent in the parts no procedure can avoid (migration
containers, stopping nodes, starting them until healthy, draining), so that
what is left of the wall time is the procedure's own overhead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from runner.drivers.containers import PURPOSE_LABEL
from runner.drivers.ports import Drivers
from runner.errors import MigrationError
from runner.journal import Event, Journal
from runner.model import Inventory
from runner.upgrade import run_upgrade
from runner.waits import HAPROXY_SERVERS_UP, NODE_HEALTHY, wait_until

Parts = dict[str, float]


def _db_sync(inventory: Inventory, drivers: Drivers, phase: str) -> float:
    started = time.monotonic()
    finished = drivers.engine("local").run_once(
        inventory.target_image,
        ["keystone-manage", "db_sync", phase],
        mounts=inventory.mounts,
        labels={PURPOSE_LABEL: f"benchmark{phase}"},
    )
    if finished.exit_code != 0:
        raise MigrationError(f"db_sync {phase} failed in the benchmark", observed=finished.tail())
    return time.monotonic() - started


def _all_up(drivers: Drivers) -> None:
    runtime = drivers.runtimes[0]
    wait_until(HAPROXY_SERVERS_UP, runtime.show_stat, lambda stats: all(s.is_up for s in stats))


def _replace(inventory: Inventory, drivers: Drivers, parts: Parts, name: str) -> None:
    """Stop (if running), replace and start one node; time the stop and the start until healthy."""
    runtime = drivers.node_runtime(inventory.node(name))
    kept_as = f"{runtime.node.container}-bench-old"
    began = time.monotonic()
    runtime.stop()
    stopped = time.monotonic()
    runtime.set_aside(kept_as)
    renamed = time.monotonic()
    runtime.start_target(inventory.target_image, kept_as)
    wait_until(NODE_HEALTHY.with_timeout(inventory.health_timeout_s), runtime.health, lambda s: s == 200)
    parts["node_stop_s"] += stopped - began
    parts["node_start_to_healthy_s"] += time.monotonic() - renamed


def _empty_parts() -> Parts:
    return {"migrations_s": 0.0, "node_stop_s": 0.0, "node_start_to_healthy_s": 0.0, "drain_s": 0.0}


def cold(inventory: Inventory, drivers: Drivers) -> Parts:
    """Every node down, every migration, every node up."""
    parts = _empty_parts()
    for node in inventory.nodes:
        started = time.monotonic()
        drivers.engine(node.engine).stop(node.container, 10)
        parts["node_stop_s"] += time.monotonic() - started
    for phase in ("--expand", "--migrate", "--contract"):
        parts["migrations_s"] += _db_sync(inventory, drivers, phase)
    for node in inventory.nodes:
        _replace(inventory, drivers, parts, node.name)
    _all_up(drivers)
    return parts


def rolling_no_drain(inventory: Inventory, drivers: Drivers) -> Parts:
    """Expand and migrate, then replace each node while it is still in rotation, then contract."""
    parts = _empty_parts()
    for phase in ("--expand", "--migrate"):
        parts["migrations_s"] += _db_sync(inventory, drivers, phase)
    for node in inventory.nodes:
        _replace(inventory, drivers, parts, node.name)
    _all_up(drivers)
    parts["migrations_s"] += _db_sync(inventory, drivers, "--contract")
    return parts


def keystone_upgrade(inventory: Inventory, drivers: Drivers) -> Parts:
    """The runner, as `keystone-upgrade upgrade --yes` runs it; its journal gives the parts."""
    run_upgrade(inventory, drivers, lambda _plan: True, lambda _report, _path: None)
    journal = Journal.load(inventory.state_dir)
    assert journal is not None
    return parts_from_journal(journal)


def parts_from_journal(journal: Journal) -> Parts:
    """The unavoidable parts of a runner's run, from its journal's events."""
    parts = _empty_parts()
    for step in journal.steps:
        seconds = step.seconds or 0.0
        if step.kind in ("expand", "migrate"):
            parts["migrations_s"] += seconds
        elif step.kind == "contract":
            sync = journal.events_of(step.id, Event.DB_SYNC)
            checked = journal.events_of(step.id, Event.CHECKED)
            start = next((e["at"] for e in journal.events_of(step.id, Event.CLUSTER_ON_TARGET)), None)
            if sync and start is not None:
                # db_sync --contract and the check after it; not the wait before it.
                parts["migrations_s"] += (checked or sync)[-1]["at"] - start
        elif step.kind == "node":
            at = {e["event"]: e["at"] for e in step.events}
            parts["drain_s"] += at[Event.DRAINED] - at[Event.DRAIN]
            parts["node_stop_s"] += at[Event.STOPPED] - at[Event.MAINT]
            parts["node_start_to_healthy_s"] += at[Event.HEALTHY] - at[Event.STOPPED]
    return parts


PROCEDURES: dict[str, Callable[[Inventory, Drivers], Parts]] = {
    "cold": cold,
    "rolling-no-drain": rolling_no_drain,
    "keystone-upgrade": keystone_upgrade,
}


def describe(parts: Parts) -> dict[str, Any]:
    """Parts rounded for the results file."""
    return {key: round(value, 2) for key, value in parts.items()}

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

from runner.config import Inventory
from runner.drivers.docker_engine import PURPOSE_LABEL
from runner.errors import MigrationError
from runner.executor import Drivers
from runner.journal import Journal
from runner.nodes import swap_container, wait_healthy
from runner.upgrade import run_upgrade
from runner.waits import HAPROXY_SERVERS_UP, wait_until

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
    node = next(n for n in inventory.nodes if n.name == name)
    marks: dict[str, float] = {"begin": time.monotonic()}
    swap_container(
        drivers.engine(node.engine),
        node,
        inventory.target_image,
        f"{node.container}-bench-old",
        lambda event, _data: marks.__setitem__(event, time.monotonic()),
    )
    wait_healthy(drivers.http, node, inventory.health_timeout_s)
    parts["node_stop_s"] += marks["stopped"] - marks["begin"]
    parts["node_start_to_healthy_s"] += time.monotonic() - marks["renamed"]


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
            sync = [e for e in step.events if e["event"] == "db_sync"]
            checked = [e for e in step.events if e["event"] == "checked"]
            start = next((e["at"] for e in step.events if e["event"] == "every node on target and UP"), None)
            if sync and start is not None:
                # db_sync --contract and the check after it; not the wait before it.
                parts["migrations_s"] += (checked or sync)[-1]["at"] - start
        elif step.kind == "node":
            at = {e["event"]: e["at"] for e in step.events}
            parts["drain_s"] += at["drained"] - at["drain"]
            parts["node_stop_s"] += at["stopped"] - at["maint"]
            parts["node_start_to_healthy_s"] += at["healthy"] - at["stopped"]
    return parts


PROCEDURES: dict[str, Callable[[Inventory, Drivers], Parts]] = {
    "cold": cold,
    "rolling-no-drain": rolling_no_drain,
    "keystone-upgrade": keystone_upgrade,
}


def describe(parts: Parts) -> dict[str, Any]:
    """Parts rounded for the results file."""
    return {key: round(value, 2) for key, value in parts.items()}

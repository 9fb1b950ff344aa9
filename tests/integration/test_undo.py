"""A swapped node can be swapped back: the node step's undo, on a real cluster, under traffic."""

from __future__ import annotations

import dataclasses

import docker
import pytest

from runner.config import load_inventory
from runner.drivers.keystone import Credentials
from runner.executor import Executor
from runner.journal import Event, Journal, StepStatus
from runner.model import KEYSTONE_VERSION_LABEL
from runner.probe import Probe, ProbeSettings, summarize
from runner.steps import RunContext
from runner.upgrade import connect, make_plan
from runner.waits import WaitPolicy, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.throwaway import migration_head_pair
from tests.integration.upgrade_helpers import database, runtime, write_inventory

pytestmark = pytest.mark.integration

TRAFFIC = ProbeSettings(rate_per_s=30, concurrency=6, max_requests=20000, max_seconds=600)
STEADY_TRAFFIC = WaitPolicy("probe traffic flowing", timeout_s=60, interval_s=0.2)


def test_a_swapped_node_is_brought_back_on_the_old_release_without_a_failed_request(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    inventory = load_inventory(write_inventory(cluster, "29.1.0"))
    drivers = connect(inventory)
    plan = make_plan(inventory, drivers)
    assert not plan.refused, plan.findings
    # Expand, migrate and one node; then undo: the node comes back, the expanded schema stays.
    kept = ("backup", "expand", "migrate", "node:keystone-1")
    plan = dataclasses.replace(plan, steps=tuple(s for s in plan.steps if s.id in kept))
    journal = Journal.start(inventory.state_dir, plan.to_dict(), str(inventory.path))
    executor = Executor(plan, RunContext(drivers, journal, inventory.state_dir / "runs" / journal.run_id))
    container = cluster.node_containers["keystone-1"]
    credentials = Credentials(cluster.admin_username, cluster.admin_password, cluster.admin_project)
    with Probe(cluster.lb_url, credentials, TRAFFIC) as probe:
        wait_until(STEADY_TRAFFIC, lambda: len(probe.samples), lambda n: n >= 60)
        executor.run()
        swapped = docker_client.containers.get(container)
        assert swapped.image.labels[KEYSTONE_VERSION_LABEL] == "29.1.0"
        assert executor.undo() == ["node:keystone-1"]
        after = len(probe.samples)
        wait_until(STEADY_TRAFFIC, lambda: len(probe.samples), lambda n: n >= after + 60)
    samples = probe.samples

    summary = summarize(samples)
    reasons = "\n".join(f"{s.operation} via {s.served_by}: {s.error}" for s in summary.failures[:20])
    assert summary.failed == 0, f"{summary.failed} of {summary.requests} requests failed:\n{reasons}"

    # The old container is back under its own name, on 28.1.0, and nothing is left beside it.
    restored = docker_client.containers.get(container)
    assert restored.status == "running"
    assert restored.image.labels[KEYSTONE_VERSION_LABEL] == "28.1.0"
    exit_code, output = restored.exec_run(["keystone-manage", "--version"])
    assert (exit_code, output.decode().strip()) == (0, "28.1.0")
    assert not [c.name for c in docker_client.containers.list(all=True) if "-ku-old-" in c.name]
    record = journal.step("node:keystone-1")
    assert record.status is StepStatus.UNDONE
    assert journal.events_of("node:keystone-1", Event.RESTORED_OLD)
    assert record.intended is None

    # Back in rotation everywhere, READY and UP; the schema stays expanded (the old release serves on it).
    assert all(s.ready for s in runtime(cluster).show_servers_state())
    assert all(s.is_up for s in runtime(cluster).show_stat())
    _, source_contract = migration_head_pair("keystone-upgrade/keystone:28.1.0")
    target_expand, _ = migration_head_pair("keystone-upgrade/keystone:29.1.0")
    assert database(cluster).alembic_heads() == {target_expand, source_contract}

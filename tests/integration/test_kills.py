"""SIGKILL at the points a run is most fragile, one after another on one cluster under traffic:
right after expand, in a node's drain, after a node's old container was stopped and set aside, before
contract. ``resume`` goes on from each, and the last contracts once its gate holds. No request fails."""

from __future__ import annotations

import docker
import pytest

from runner.errors import ExitCode
from runner.lab.cluster import LabEndpoints
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import (
    database,
    event_count,
    journal,
    keystone_upgrade,
    kill_runner_after,
    runtime,
    step_has,
    traffic_around,
    write_inventory,
)

pytestmark = pytest.mark.integration


def _statuses(cluster: LabEndpoints) -> dict[str, str]:
    return {s["id"]: s["status"] for s in journal(cluster)["steps"]}


def test_resume_goes_on_after_kills_after_expand_in_a_drain_mid_swap_and_before_contract(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    inventory = write_inventory(cluster, "29.1.0")
    old_heads = database(cluster).alembic_heads()
    with traffic_around(cluster):
        # Right after expand: the schema is expanded, no node was touched.
        kill_runner_after(cluster, inventory, "expand")
        assert _statuses(cluster)["node:keystone-1"] == "pending"
        assert database(cluster).alembic_heads() != old_heads

        # A new upgrade does not start over a half-done run: it says what to do instead.
        refused = keystone_upgrade("upgrade", "-i", inventory, "--yes")
        assert refused.returncode == ExitCode.PREFLIGHT, refused.stdout + refused.stderr
        assert "did not finish" in refused.stderr
        assert "keystone-upgrade resume" in refused.stderr
        assert "keystone-upgrade rollback" in refused.stderr

        # keystone-1 done: the kill lands as keystone-2's drain begins.
        kill_runner_after(cluster, inventory, "node:keystone-1", command="resume")

        # After keystone-2's old container was stopped and set aside (in resume's fresh attempt).
        renamed = event_count(cluster, "node:keystone-2", "renamed")
        kill_runner_after(
            cluster, inventory, "node:keystone-2", step_has("renamed", renamed), command="resume"
        )

        # Every node on the target, contract not started: resume contracts once its gate holds.
        kill_runner_after(cluster, inventory, "node:keystone-3", command="resume")
        assert _statuses(cluster)["contract"] == "pending"

        resumed = keystone_upgrade("resume", "-i", inventory, "--yes")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    document = journal(cluster)
    assert document["status"] == "succeeded"
    assert len(document["resumed_at"]) == 4
    steps = {s["id"]: s for s in document["steps"]}
    assert all(s["status"] in ("done", "skipped") for s in steps.values()), steps
    assert all(s["intended"] is None for s in steps.values())
    assert [e["event"] for e in steps["contract"]["events"]][:2] == ["every node on target and UP", "db_sync"]
    for node, name in cluster.node_containers.items():
        exit_code, output = docker_client.containers.get(name).exec_run(["keystone-manage", "--version"])
        assert (exit_code, output.decode().strip()) == (0, "29.1.0"), node
    assert not [c.name for c in docker_client.containers.list(all=True) if "-ku-old-" in c.name]
    assert all(s.ready for s in runtime(cluster).show_servers_state())
    assert all(s.is_up for s in runtime(cluster).show_stat())

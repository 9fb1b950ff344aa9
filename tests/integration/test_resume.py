"""``resume`` after the runner was killed half-way through a node's swap, on a real cluster under traffic."""

from __future__ import annotations

import docker
import pytest

from runner.errors import ExitCode
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import (
    journal,
    keystone_upgrade,
    kill_runner_after,
    runtime,
    traffic_around,
    write_inventory,
)

pytestmark = pytest.mark.integration


def test_resume_finishes_a_run_killed_during_a_node_swap(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    inventory = write_inventory(cluster, "29.1.0")
    with traffic_around(cluster):
        kill_runner_after(cluster, inventory, "node:keystone-1")

        # A new upgrade does not start over a half-done run: it says what to do instead.
        refused = keystone_upgrade("upgrade", "-i", inventory, "--yes")
        assert refused.returncode == ExitCode.PREFLIGHT, refused.stdout + refused.stderr
        assert "did not finish" in refused.stderr
        assert "keystone-upgrade resume" in refused.stderr
        assert "keystone-upgrade rollback" in refused.stderr

        resumed = keystone_upgrade("resume", "-i", inventory, "--yes")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    for node, name in cluster.node_containers.items():
        exit_code, output = docker_client.containers.get(name).exec_run(["keystone-manage", "--version"])
        assert (exit_code, output.decode().strip()) == (0, "29.1.0"), node
    assert not [c.name for c in docker_client.containers.list(all=True) if "-ku-old-" in c.name]
    assert all(s.ready for s in runtime(cluster).show_servers_state())
    assert all(s.is_up for s in runtime(cluster).show_stat())
    document = journal(cluster)
    assert document["status"] == "succeeded"
    assert len(document["resumed_at"]) == 1
    assert all(s["status"] in ("done", "skipped") for s in document["steps"]), document["steps"]
    assert all(s["intended"] is None for s in document["steps"])

"""``rollback`` on a real cluster under traffic, after the runner was killed mid-run: every node comes back
on the old release; after a contract, rollback is refused before it changes anything."""

from __future__ import annotations

import docker
import pytest

from runner.errors import ExitCode
from runner.images.catalog import REPOSITORY
from runner.lab.cluster import LabEndpoints
from runner.model import KEYSTONE_VERSION_LABEL
from tests.integration.conftest import ClusterFactory
from tests.integration.throwaway import migration_head_pair
from tests.integration.upgrade_helpers import (
    database,
    journal,
    keystone_upgrade,
    kill_runner_after,
    runtime,
    traffic_around,
    write_inventory,
)

pytestmark = pytest.mark.integration


def _releases(client: docker.DockerClient, cluster: LabEndpoints) -> dict[str, str]:
    """Each node's release, asked inside its container."""
    found = {}
    for node, name in cluster.node_containers.items():
        exit_code, output = client.containers.get(name).exec_run(["keystone-manage", "--version"])
        assert exit_code == 0, output
        found[node] = output.decode().strip()
    return found


def test_rollback_brings_every_node_back_until_contract_and_then_refuses(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("23.0.2")
    # A skip Keystone does not support (2023.1 to 2025.1) is refused at plan time, with the path.
    skip = keystone_upgrade("plan", "-i", write_inventory(cluster, "27.1.0"))
    assert skip.returncode == ExitCode.PREFLIGHT, skip.stdout + skip.stderr
    assert "upgrade through 23.x -> 25.x -> 27.x" in skip.stdout + skip.stderr
    inventory = write_inventory(cluster, "24.1.0")
    with traffic_around(cluster):
        # The runner is killed (SIGKILL: no chance to clean up) once keystone-2 is upgraded,
        # somewhere in keystone-3's drain or swap.
        kill_runner_after(cluster, inventory, "node:keystone-2")
        for node in ("keystone-1", "keystone-2"):
            exit_code, output = docker_client.containers.get(cluster.node_containers[node]).exec_run(
                ["keystone-manage", "--version"]
            )
            assert (exit_code, output.decode().strip()) == (0, "24.1.0"), node

        rolled = keystone_upgrade("rollback", "-i", inventory, "--yes")
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        assert rolled.stdout.strip().endswith("node:keystone-1"), rolled.stdout
        assert set(_releases(docker_client, cluster).values()) == {"23.0.2"}
        for name in cluster.node_containers.values():
            image = docker_client.containers.get(name).image
            assert image.labels[KEYSTONE_VERSION_LABEL] == "23.0.2"
        assert not [c.name for c in docker_client.containers.list(all=True) if "-ku-old-" in c.name]
        assert all(s.ready for s in runtime(cluster).show_servers_state())
        assert all(s.is_up for s in runtime(cluster).show_stat())
        document = journal(cluster)
        assert document["status"] == "rolled back"
        steps = {s["id"]: s for s in document["steps"]}
        for node in ("keystone-1", "keystone-2"):
            assert (steps[f"node:{node}"]["status"], steps[f"node:{node}"]["intended"]) == ("undone", None)
        assert steps["expand"]["status"] == "done"  # kept: 23.0.2 serves on the expanded schema
        _, source_contract = migration_head_pair(f"{REPOSITORY}/keystone:23.0.2")
        target_expand, target_contract = migration_head_pair(f"{REPOSITORY}/keystone:24.1.0")
        assert source_contract != target_contract  # so the next run's contract really runs
        assert database(cluster).alembic_heads() == {target_expand, source_contract}

        again = keystone_upgrade("rollback", "-i", inventory, "--yes")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already rolled back" in again.stdout

        # The cluster rolled back is whole: a new upgrade completes; after its contract, no rollback.
        done = keystone_upgrade("upgrade", "-i", inventory, "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        refused = keystone_upgrade("rollback", "-i", inventory, "--yes")
        assert refused.returncode == ExitCode.ROLLBACK, refused.stdout + refused.stderr
        assert "the schema was contracted" in refused.stderr
        dumped = next(e for s in journal(cluster)["steps"] for e in s["events"] if e["event"] == "dumped")
        assert dumped["dump"] in refused.stderr  # the way back from here: the verified backup
        assert set(_releases(docker_client, cluster).values()) == {"24.1.0"}  # refused before any change
        assert database(cluster).alembic_heads() == {target_expand, target_contract}

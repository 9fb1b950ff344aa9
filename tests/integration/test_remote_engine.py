"""A node on another Docker engine than the runner's, upgraded in the same run as the local ones.

keystone-3 is moved onto a second dockerd on this machine (same host network, same host paths)
before any traffic. That engine has only the old image and no registry serves it the target:
the runner must load the target from its own engine before anything is drained.
"""

from __future__ import annotations

import json

import docker
import pytest
import requests

from runner.drivers.docker_blueprint import derive_blueprint
from runner.drivers.docker_engine import DockerEngine
from runner.images.catalog import REPOSITORY
from runner.lab.cluster import LabEndpoints
from runner.probe import summarize
from runner.waits import HAPROXY_SERVERS_UP, NODE_HEALTHY, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.second_engine import SecondEngine, second_engine  # noqa: F401 - the fixture
from tests.integration.upgrade_helpers import (
    journal,
    keystone_upgrade,
    runtime,
    traffic_around,
    write_inventory,
)

pytestmark = pytest.mark.integration

MOVED = "keystone-3"
OLD_IMAGE = f"{REPOSITORY}/keystone:28.1.0"
TARGET_IMAGE = f"{REPOSITORY}/keystone:29.1.0"


def _load(local: docker.DockerClient, second: SecondEngine, reference: str) -> None:
    """`docker save | docker -H SECOND load`, streamed."""
    for message in second.client.api.load_image(local.api.get_image(reference), quiet=True):
        assert "error" not in message, message
    assert second.client.images.get(reference).id == local.images.get(reference).id


def _move_onto(second: SecondEngine, cluster: LabEndpoints) -> None:
    """keystone-3's container, as it is, recreated on the second engine; back UP in HAProxy."""
    local = DockerEngine()
    name = cluster.node_containers[MOVED]
    old = local.container(name)
    assert old is not None
    image = local.image(old.image_id)
    assert image is not None
    blueprint = derive_blueprint(old.inspect, image.inspect, old.image_reference)
    local.remove(name)
    DockerEngine(second.endpoint).create_and_start(blueprint)
    wait_until(
        NODE_HEALTHY,
        lambda: requests.get(f"{cluster.node_urls[MOVED]}/v3", timeout=5).status_code,
        lambda status: status == 200,
    )
    wait_until(
        HAPROXY_SERVERS_UP,
        runtime(cluster).show_stat,
        lambda stats: len(stats) == 6 and all(s.is_up for s in stats),
    )


def test_a_node_on_a_second_engine_gets_the_target_loaded_and_is_upgraded_with_the_others(
    cluster_factory: ClusterFactory,
    docker_client: docker.DockerClient,
    second_engine: SecondEngine,  # noqa: F811 - the fixture imported above
) -> None:
    cluster = cluster_factory("28.1.0")
    _load(docker_client, second_engine, OLD_IMAGE)
    with pytest.raises(docker.errors.ImageNotFound):
        second_engine.client.images.get(TARGET_IMAGE)  # the runner must bring it
    _move_onto(second_engine, cluster)
    assert second_engine.client.containers.get(cluster.node_containers[MOVED]).status == "running"
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(cluster.node_containers[MOVED])
    moved = f'container = "{cluster.node_containers[MOVED]}"'
    inventory = write_inventory(cluster, "29.1.0", **{moved: f'{moved}\ndocker = "{second_engine.endpoint}"'})
    # plan loads nothing, and says upgrade will.
    planned = keystone_upgrade("plan", "-i", inventory, "--json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert any("upgrade loads it there" in n for n in json.loads(planned.stdout)["notices"]), planned.stdout
    with pytest.raises(docker.errors.ImageNotFound):
        second_engine.client.images.get(TARGET_IMAGE)

    with traffic_around(cluster) as probe:
        result = keystone_upgrade("upgrade", "-i", inventory, "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
    assert MOVED in summarize(probe.samples).served_by  # the moved node served, before and after

    written = journal(cluster)
    assert written["status"] == "succeeded"
    loaded = [
        notice
        for notice in written["plan"]["notices"]
        if notice.startswith(f"node {MOVED}: loaded {TARGET_IMAGE} (")
        and f"onto {second_engine.endpoint} from the engine local in " in notice
    ]
    assert len(loaded) == 1, written["plan"]["notices"]
    assert loaded[0] in result.stdout
    target_id = docker_client.images.get(TARGET_IMAGE).id
    assert second_engine.client.images.get(TARGET_IMAGE).id == target_id
    for node, name in cluster.node_containers.items():
        client = second_engine.client if node == MOVED else docker_client
        container = client.containers.get(name)
        assert container.image.id == target_id, node
        exit_code, output = container.exec_run(["keystone-manage", "--version"])
        assert (exit_code, output.decode().strip()) == (0, "29.1.0"), node
        step = next(s for s in written["steps"] if s["id"] == f"node:{node}")
        assert step["status"] == "done", node
    # Cleanup removed the old keystone-3 on its own engine; nothing of it came to the local one.
    assert [c.name for c in second_engine.client.containers.list(all=True)] == [
        cluster.node_containers[MOVED]
    ]
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(cluster.node_containers[MOVED])

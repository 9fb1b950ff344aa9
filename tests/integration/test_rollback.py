"""A node that fails a gate on the target is rolled back by the runner itself, with no failed request."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator

import docker
import pytest

from runner.errors import ExitCode
from runner.images.catalog import REPOSITORY
from runner.lab.cluster import LabEndpoints
from runner.model import KEYSTONE_VERSION_LABEL
from tests.integration.conftest import ClusterFactory
from tests.integration.harness import SESSION_ID, TEST_CONTAINER_LABEL
from tests.integration.upgrade_helpers import keystone_upgrade, runtime, traffic_around, write_inventory

pytestmark = pytest.mark.integration

# Images that are wrong in the ways a target can be: built from the project's own.
BROKEN = {
    # Starts, never answers: the health gate fails.
    "silent": f'FROM {REPOSITORY}/keystone:29.1.0\nCMD ["sleep", "3600"]\n',
    # Carries 29.1.0, but the process that serves turns its package into 28.1.0 at start (preflight,
    # reading the image in a throwaway container, sees 29.1.0): the release gate, asking the node, fails.
    "liar": f"FROM {REPOSITORY}/keystone:29.1.0\nUSER root\n"
    "RUN chmod -R o+w /opt/keystone/lib/python3.11/site-packages/keystone-29.1.0.dist-info\n"
    "USER keystone\n"
    'CMD ["sh", "-c", "sed -i s/^Version:.*/Version:28.1.0/ '
    '/opt/keystone/lib/python3.11/site-packages/keystone-29.1.0.dist-info/METADATA && exec gunicorn"]\n',
    # Runs 28.1.0 while its label says 29.1.0: preflight reads the release inside and refuses it.
    "mislabelled": f'FROM {REPOSITORY}/keystone:28.1.0\nLABEL {KEYSTONE_VERSION_LABEL}="29.1.0"\n',
    # Healthy and on the right release, but refuses password logins (oslo.config reads
    # OS_<GROUP>__<OPTION> from the environment): GET /v3 cannot tell, only the token gate sees it.
    "lockout": f"FROM {REPOSITORY}/keystone:29.1.0\nENV OS_AUTH__METHODS=token\n",
}


@pytest.fixture
def broken_images(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    """The BROKEN images, tagged for this session; removed afterwards."""
    tags = {name: f"ku-test-{SESSION_ID}/keystone-{name}:1" for name in BROKEN}
    try:
        for name, dockerfile in BROKEN.items():
            docker_client.images.build(
                fileobj=io.BytesIO(dockerfile.encode()),
                tag=tags[name],
                labels={TEST_CONTAINER_LABEL: SESSION_ID},
                rm=True,
                network_mode="host",  # RUN steps: this engine may have no bridge
            )
        yield tags
    finally:
        for tag in tags.values():
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(tag, force=True)


def _assert_whole_on_28(client: docker.DockerClient, cluster: LabEndpoints, broken: str) -> None:
    for node, name in cluster.node_containers.items():
        container = client.containers.get(name)
        assert container.status == "running", node
        assert container.image.labels[KEYSTONE_VERSION_LABEL] == "28.1.0", node
        assert container.image.tags == [f"{REPOSITORY}/keystone:28.1.0"], node
        exit_code, output = container.exec_run(["keystone-manage", "--version"])
        assert (exit_code, output.decode().strip()) == (0, "28.1.0"), node
    assert not [c.name for c in client.containers.list(all=True) if "-ku-old-" in c.name]
    assert not client.containers.list(all=True, filters={"ancestor": broken})
    states = runtime(cluster).show_servers_state()
    assert all(s.ready for s in states), states
    assert all(s.is_up for s in runtime(cluster).show_stat())


def test_a_node_that_fails_its_gates_is_rolled_back_by_itself(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient, broken_images: dict[str, str]
) -> None:
    cluster = cluster_factory("28.1.0")
    # A label that contradicts the package is refused before anything changes.
    mislabelled = write_inventory(
        cluster, "29.1.0", **{f"{REPOSITORY}/keystone:29.1.0": broken_images["mislabelled"]}
    )
    refused = keystone_upgrade("plan", "-i", mislabelled)
    assert refused.returncode == ExitCode.PREFLIGHT, refused.stdout + refused.stderr
    assert (
        "its label says 29.1.0, the Keystone package inside it is 28.1.0" in refused.stdout + refused.stderr
    )
    # After the first fault the database stays expanded to 29.1.0, and 28.1.0 still serves on it.
    faults = (
        ("liar", "does not run the target release"),
        ("lockout", "refused the probe's credentials"),
        ("silent", "did not become healthy"),
    )
    with traffic_around(cluster):
        for name, failure in faults:
            inventory = write_inventory(
                cluster,
                "29.1.0",
                **{
                    f"{REPOSITORY}/keystone:29.1.0": broken_images[name],
                    "[run]\n": "[run]\nhealth_timeout_s = 20\n",
                },
            )
            result = keystone_upgrade("upgrade", "-i", inventory, "--yes")
            output = result.stdout + result.stderr
            assert result.returncode == ExitCode.HEALTH, output
            assert "node keystone-1 failed on 29.1.0 and was rolled back" in result.stderr, output
            assert "the cluster is whole on 28.1.0" in result.stderr, output
            assert failure in result.stderr, output
            if name == "liar":  # it served: its last lines are in the error, read before it was removed
                assert f"last lines of {cluster.node_containers['keystone-1']}:" in result.stderr, output
            journal = json.loads((cluster.state_dir / "upgrade" / "journal.json").read_text())
            steps = {s["id"]: s for s in journal["steps"]}
            assert steps["node:keystone-1"]["status"] == "failed"
            assert steps["node:keystone-1"]["events"][-1]["event"] == "rolled back"
            assert steps["node:keystone-1"]["intended"] is None
            assert steps["node:keystone-2"]["status"] == "pending"
            _assert_whole_on_28(docker_client, cluster, broken_images[name])

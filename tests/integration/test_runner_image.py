"""The upgrade run from the runner's own image, mounted as the README's `docker run` line says."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from runner.images.base import ensure_base_image
from runner.images.build import build_images, default_images_dir, project_version
from runner.images.catalog import REPOSITORY, runner_image
from runner.lab.cluster import LabEndpoints
from runner.lab.render import SECRET_FILES
from runner.waits import WaitPolicy, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.harness import SESSION_ID, TEST_CONTAINER_LABEL
from tests.integration.upgrade_helpers import COMMAND_TIMEOUT_S, journal, write_inventory

pytestmark = pytest.mark.integration

DOCKER_SOCKET = Path("/var/run/docker.sock")
# As long as the same command run as a subprocess may take (upgrade_helpers.keystone_upgrade).
RUNNER_CONTAINER_EXITS = WaitPolicy(
    "the runner's container exits", timeout_s=COMMAND_TIMEOUT_S, interval_s=0.5
)


@pytest.fixture(scope="session")
def runner_image_reference(docker_client: docker.DockerClient) -> str:
    """The runner's image, built by the code behind `images build --runner`: once per change of
    runner/, pyproject.toml or the Dockerfile, reused otherwise."""
    ensure_base_image(docker_client)
    images_dir = default_images_dir()
    spec = runner_image(project_version(images_dir))
    build_images(docker_client, [spec], images_dir)
    return spec.reference


def _same_paths(cluster: LabEndpoints, inventory: Path, run_state: Path) -> dict[str, dict[str, str]]:
    """The README line's mounts, each at its host path: the runner hands host paths to the
    containers it starts on the host's engine, and writes its journal and backups there."""
    mounts = {
        DOCKER_SOCKET: "rw",
        cluster.admin_socket.parent: "rw",  # the directory: a restarted HAProxy makes a new socket
        inventory: "ro",
        cluster.config_dir / "secrets": "ro",  # every password file the inventory names
        run_state: "rw",
    }
    return {str(path): {"bind": str(path), "mode": mode} for path, mode in mounts.items()}


def test_upgrade_runs_from_the_runners_image(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient, runner_image_reference: str
) -> None:
    cluster = cluster_factory("28.1.0")
    inventory = write_inventory(cluster, "29.1.0")
    run_state = cluster.state_dir / "upgrade"  # the inventory's [run] state_dir
    run_state.mkdir(exist_ok=True)
    container = docker_client.containers.run(
        runner_image_reference,
        ["upgrade", "-i", str(inventory), "--yes"],
        detach=True,
        network_mode="host",
        volumes=_same_paths(cluster, inventory, run_state),
        labels={TEST_CONTAINER_LABEL: SESSION_ID},
    )
    try:

        def status() -> str:
            container.reload()
            return str(container.status)

        wait_until(RUNNER_CONTAINER_EXITS, status, lambda s: s in ("exited", "dead"))
        exit_code = int(container.attrs["State"]["ExitCode"])
        output = bytes(container.logs()).decode(errors="replace")
    finally:
        container.remove(force=True)

    # Before anything prints the output: it must not hold a password.
    passwords = {cluster.db_password, cluster.admin_password}
    passwords |= {(cluster.config_dir / name).read_text().strip() for name in SECRET_FILES.values()}
    assert not [p for p in passwords if p and p in output], "a password is in the runner's output"
    assert exit_code == 0, output

    target = docker_client.images.get(f"{REPOSITORY}/keystone:29.1.0")
    for node, name in cluster.node_containers.items():
        node_container = docker_client.containers.get(name)
        assert node_container.status == "running", node
        assert node_container.image.id == target.id, node
    assert journal(cluster)["status"] == "succeeded"

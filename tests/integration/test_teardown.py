"""The harness removes what it creates, also when the test using it fails."""

from __future__ import annotations

import tempfile
from pathlib import Path

import docker
import pytest

from runner.images.catalog import REPOSITORY
from runner.lab.cluster import LAB_LABEL, PROJECT_LABEL
from tests.integration.harness import PROJECT_PREFIX, TEMP_PREFIX, lab_cluster, leftovers

pytestmark = pytest.mark.integration


class _TestBodyFailed(Exception):
    pass


def test_a_failing_test_still_leaves_no_container_or_directory(
    docker_client: docker.DockerClient,
) -> None:
    seen: dict[str, object] = {}

    def failing_test_body() -> None:
        with lab_cluster(docker_client, "28.1.0") as cluster:
            seen["project"] = cluster.project
            seen["dirs"] = (cluster.config_dir, cluster.state_dir)
            running = docker_client.containers.list(filters={"label": f"{PROJECT_LABEL}={cluster.project}"})
            assert len(running) == 6  # mariadb, memcached, haproxy, 3 nodes (bootstrap has exited)
            raise _TestBodyFailed

    with pytest.raises(_TestBodyFailed):
        failing_test_body()

    remaining = docker_client.containers.list(
        all=True, filters={"label": f"{PROJECT_LABEL}={seen['project']}"}
    )
    assert remaining == []
    dirs = seen["dirs"]
    assert isinstance(dirs, tuple)
    for directory in dirs:
        assert not directory.exists(), directory
        assert not directory.parent.exists(), directory.parent


def test_the_end_of_session_leak_check_sees_what_is_left_behind(docker_client: docker.DockerClient) -> None:
    """The check that fails the run at its end must itself be able to fail."""
    project = f"{PROJECT_PREFIX}-leak"
    container = docker_client.containers.create(
        f"{REPOSITORY}/memcached:1.6",
        name=f"{project}-probe",
        labels={LAB_LABEL: "1", PROJECT_LABEL: project},
    )
    directory = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    try:
        found = leftovers(docker_client)
        assert f"container {project}-probe" in found
        assert f"directory {directory}" in found
    finally:
        container.remove(force=True)
        directory.rmdir()
    found = leftovers(docker_client)
    assert f"container {project}-probe" not in found
    assert f"directory {directory}" not in found

"""Fixtures for tests against real containers. Nothing here skips: a missing engine or image fails."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack

# testcontainers' reaper (Ryuk) image cannot be pulled here; our fixtures
# remove what they create instead. Set before testcontainers is imported.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker
import pytest

from runner.lab.cluster import LabEndpoints
from tests.integration.harness import lab_cluster, leftovers


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The local engine; scripts/test has provisioned it."""
    client = docker.from_env()
    client.ping()
    yield client
    client.close()


ClusterFactory = Callable[..., LabEndpoints]


@pytest.fixture
def cluster_factory(docker_client: docker.DockerClient) -> Iterator[ClusterFactory]:
    """Bring up lab clusters inside a test; every one is removed when the test ends, pass or fail."""
    with ExitStack() as stack:

        def make(version: str, **options: bool) -> LabEndpoints:
            manager: AbstractContextManager[LabEndpoints] = lab_cluster(docker_client, version, **options)
            return stack.enter_context(manager)

        yield make


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any container or temp directory a test made is still there."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        return
    remaining = leftovers(client)
    if remaining:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "tests left behind: " + ", ".join(remaining)
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

"""Fixtures for tests against real containers. Nothing here skips: a missing engine or image fails."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from datetime import UTC, datetime
from typing import Any

# testcontainers' reaper (Ryuk) image cannot be pulled here; our fixtures
# remove what they create instead. Set before testcontainers is imported.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker
import pytest

from runner.drivers.containers import RUNNER_LABEL
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

        def make(version: str, **options: Any) -> LabEndpoints:
            manager: AbstractContextManager[LabEndpoints] = lab_cluster(docker_client, version, **options)
            started = datetime.now(UTC).replace(microsecond=0)
            endpoints = stack.enter_context(manager)
            # Runs before the cluster goes (last in, first out): what its runs left behind.
            stack.callback(_remove_throwaways_since, docker_client, started)
            return endpoints

        yield make


def _remove_throwaways_since(client: docker.DockerClient, started: datetime) -> None:
    """Remove the runner's throwaway containers created since ``started`` (a migration a test left
    running, a key check a killed runner left behind): tests run one at a time, so they are this test's."""
    for container in client.containers.list(all=True, filters={"label": RUNNER_LABEL}):
        # Docker's RFC 3339 time, to the second (its nanoseconds are more than Python parses).
        created = datetime.strptime(container.attrs["Created"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        if created >= started:
            container.remove(force=True)


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

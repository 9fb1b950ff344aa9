"""Lab clusters for integration tests: each with its own project name, ports and temp dirs.

Everything a cluster creates carries this pytest session's prefix, so the
session can prove at its end that nothing it made remains.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from runner.lab.cluster import LAB_LABEL, PROJECT_LABEL, LabEndpoints
from runner.lab.temporary import temporary_cluster

# One prefix per pytest session: projects kut<id>-N, temp dirs ku-test-<id>-*.
SESSION_ID = uuid.uuid4().hex[:6]
PROJECT_PREFIX = f"kut{SESSION_ID}"
TEMP_PREFIX = f"ku-test-{SESSION_ID}-"
# Throwaway containers a test starts itself (testcontainers) carry this label.
TEST_CONTAINER_LABEL = "io.keystone-upgrade.test-session"


@contextmanager
def lab_cluster(
    client: docker.DockerClient, version: str, *, db_log_bin: bool = False, keystone_image: str | None = None
) -> Iterator[LabEndpoints]:
    """A running cluster of ``version`` named for this session; removed however the block ends."""
    with temporary_cluster(
        client,
        version,
        project_prefix=PROJECT_PREFIX,
        temp_prefix=TEMP_PREFIX,
        db_log_bin=db_log_bin,
        keystone_image=keystone_image,
    ) as endpoints:
        yield endpoints


def leftovers(client: docker.DockerClient) -> list[str]:
    """Containers and temp directories of this session that still exist."""
    found = [
        f"container {c.name}"
        for c in client.containers.list(all=True, filters={"label": LAB_LABEL})
        if c.labels.get(PROJECT_LABEL, "").startswith(PROJECT_PREFIX)
    ]
    found += [
        f"container {c.name}"
        for c in client.containers.list(all=True, filters={"label": f"{TEST_CONTAINER_LABEL}={SESSION_ID}"})
    ]
    temp_root = Path(tempfile.gettempdir())
    found += [f"directory {p}" for p in temp_root.glob(f"{TEMP_PREFIX}*")]
    return found

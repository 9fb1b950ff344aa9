"""Lab clusters for integration tests: each with its own project name, ports and temp dirs.

Everything a cluster creates carries this pytest session's prefix, so the
session can prove at its end that nothing it made remains.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from runner.lab.cluster import LAB_LABEL, PROJECT_LABEL, Lab, LabEndpoints
from runner.lab.settings import LabPorts, LabSecrets, LabSettings

# One prefix per pytest session: projects kut<id>-N, temp dirs ku-test-<id>-*.
SESSION_ID = uuid.uuid4().hex[:6]
PROJECT_PREFIX = f"kut{SESSION_ID}"
TEMP_PREFIX = f"ku-test-{SESSION_ID}-"
PORT_BLOCK = 20


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_base(attempts: int = 50) -> int:
    """The start of a block of PORT_BLOCK ports on 127.0.0.1 that are all free now."""
    rng = random.Random(os.getpid() ^ random.getrandbits(32))  # noqa: S311 - not security
    for _ in range(attempts):
        base = rng.randrange(30000, 60000 - PORT_BLOCK, PORT_BLOCK)
        if all(_port_free(base + offset) for offset in range(PORT_BLOCK)):
            return base
    raise RuntimeError(f"no block of {PORT_BLOCK} free ports found in {attempts} attempts")


def new_settings(version: str, root: Path, *, db_log_bin: bool = False) -> LabSettings:
    """Settings of a fresh test cluster rooted in ``root``."""
    return LabSettings(
        project=f"{PROJECT_PREFIX}-{uuid.uuid4().hex[:4]}",
        keystone_version=version,
        ports=LabPorts.from_base(free_port_base()),
        secrets=LabSecrets.generate(),
        config_dir=root / "config",
        state_dir=root / "state",
        db_log_bin=db_log_bin,
    )


@contextmanager
def lab_cluster(
    client: docker.DockerClient, version: str, *, db_log_bin: bool = False
) -> Iterator[LabEndpoints]:
    """A running cluster of ``version``; removed with its directories however the block ends."""
    root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    lab = Lab(new_settings(version, root, db_log_bin=db_log_bin), client)
    try:
        yield lab.up()
    finally:
        try:
            lab.down()
        finally:
            shutil.rmtree(root, ignore_errors=True)


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


# Throwaway containers a test starts itself (testcontainers) carry this label.
TEST_CONTAINER_LABEL = "io.keystone-upgrade.test-session"

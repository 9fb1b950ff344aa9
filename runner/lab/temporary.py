"""Throwaway lab clusters (tests, benchmarks): own project name, ports and temp dirs, removed after."""

from __future__ import annotations

import random
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from runner.lab.cluster import Lab, LabEndpoints
from runner.lab.settings import NODE_COUNT, LabPorts, LabSecrets, LabSettings, port_free

PORT_BLOCK = 30  # room for up to 19 nodes (base + 11 on)
EPHEMERAL_FROM = 32768


def free_port_base(attempts: int = 50) -> int:
    """The start of a block of PORT_BLOCK ports on 127.0.0.1 that are all free now."""
    rng = random.Random()  # noqa: S311 - spreading ports, not security
    for _ in range(attempts):
        # Below Linux's ephemeral range (32768-60999): a port chosen there can be taken by any
        # outgoing connection between this check and the service's bind (seen: a node's gunicorn
        # failing with "Address already in use").
        base = rng.randrange(10000, EPHEMERAL_FROM - PORT_BLOCK, PORT_BLOCK)
        if all(port_free(base + offset) for offset in range(PORT_BLOCK)):
            return base
    raise RuntimeError(f"no block of {PORT_BLOCK} free ports found in {attempts} attempts")


@contextmanager
def temporary_cluster(
    client: docker.DockerClient,
    version: str,
    *,
    project_prefix: str,
    temp_prefix: str,
    db_log_bin: bool = False,
    keystone_image: str | None = None,
    node_count: int = NODE_COUNT,
) -> Iterator[LabEndpoints]:
    """A running cluster of ``version``; removed with its directories however the block ends."""
    root = Path(tempfile.mkdtemp(prefix=temp_prefix))
    settings = LabSettings(
        project=f"{project_prefix}-{uuid.uuid4().hex[:4]}",
        keystone_version=version,
        ports=LabPorts.from_base(free_port_base(), node_count),
        secrets=LabSecrets.generate(),
        config_dir=root / "config",
        state_dir=root / "state",
        db_log_bin=db_log_bin,
        image_override=keystone_image,
    )
    lab = Lab(settings, client)
    try:
        yield lab.up()
    finally:
        try:
            lab.down()
        finally:
            shutil.rmtree(root, ignore_errors=True)

"""Running the real command against a lab cluster, and observing the cluster around it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker

from runner.drivers.database import MysqlDatabase
from runner.drivers.haproxy import RuntimeSocket
from runner.lab.cluster import LabEndpoints
from runner.lab.inventory import inventory_toml
from runner.model import DatabaseTarget, SocketAddress

COMMAND_TIMEOUT_S = 900


def write_inventory(cluster: LabEndpoints, target_version: str, **replace: str) -> Path:
    """The lab's inventory, optionally with lines replaced (old text -> new text)."""
    text = inventory_toml(cluster, target_version, cluster.state_dir / "upgrade")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = cluster.state_dir / f"inventory-{target_version}.toml"
    path.write_text(text)
    return path


def keystone_upgrade(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it: a separate process, its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def database(cluster: LabEndpoints) -> MysqlDatabase:
    """The cluster's database as the runner reaches it."""
    return MysqlDatabase(
        DatabaseTarget(
            cluster.db_host, cluster.db_port, cluster.db_user, cluster.db_name, cluster.db_password
        )
    )


def runtime(cluster: LabEndpoints) -> RuntimeSocket:
    """The cluster's admin runtime socket."""
    return RuntimeSocket(SocketAddress(unix_path=str(cluster.admin_socket)))


@dataclass(frozen=True)
class Snapshot:
    """What must not change when the runner refuses or only plans."""

    containers: dict[str, tuple[str, str, str]]  # name -> (container id, image id, status)
    haproxy: dict[tuple[str, str], tuple[int, str]]  # (backend, server) -> (admin flags, op state)
    heads: frozenset[str]
    images: frozenset[str]


def snapshot(client: docker.DockerClient, cluster: LabEndpoints) -> Snapshot:
    """Observe the cluster now."""
    containers = {}
    for container in client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={cluster.project}"}
    ):
        containers[container.name] = (container.id, container.image.id, container.status)
    haproxy = {
        (s.backend, s.server): (s.admin_flags, s.operational.name)
        for s in runtime(cluster).show_servers_state()
    }
    images = frozenset(image.id for image in client.images.list())
    return Snapshot(containers, haproxy, database(cluster).alembic_heads(), images)

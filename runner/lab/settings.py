"""What makes one lab cluster different from another: names, ports, secrets, directories."""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from runner.images.catalog import REPOSITORY

NODE_COUNT = 3


@dataclass(frozen=True)
class LabPorts:
    """Every port a lab cluster binds on 127.0.0.1."""

    db: int = 23306
    memcached: int = 21211
    lb: int = 25000
    lb_external: int = 25001
    nodes: tuple[int, ...] = (25011, 25012, 25013)

    @classmethod
    def from_base(cls, base: int, node_count: int = NODE_COUNT) -> LabPorts:
        """A block of ports starting at ``base`` (the tests give each cluster its own)."""
        return cls(
            db=base,
            memcached=base + 1,
            lb=base + 2,
            lb_external=base + 3,
            nodes=tuple(base + 10 + i for i in range(1, node_count + 1)),
        )

    def all(self) -> tuple[int, ...]:
        """Every port, for checking that none is taken."""
        return (self.db, self.memcached, self.lb, self.lb_external, *self.nodes)

    def taken(self) -> list[int]:
        """The ports something already listens on."""
        return [port for port in self.all() if not port_free(port)]


def port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (connections in TIME_WAIT don't count, as for servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class LabSecrets:
    """Passwords of one lab cluster. Never printed; written only to 0600 files."""

    db_password: str = field(repr=False)
    db_root_password: str = field(repr=False)
    admin_password: str = field(repr=False)

    @classmethod
    def generate(cls) -> LabSecrets:
        """Fresh random passwords."""
        return cls(
            db_password=secrets.token_urlsafe(18),
            db_root_password=secrets.token_urlsafe(18),
            admin_password=secrets.token_urlsafe(18),
        )

    @classmethod
    def demo_defaults(cls) -> LabSecrets:
        """The fixed demo-only passwords of the committed compose/config (never production)."""
        return cls(
            db_password="keystone-demo-db",  # noqa: S106 - demo cluster only
            db_root_password="keystone-demo-root",  # noqa: S106
            admin_password="keystone-demo-admin",  # noqa: S106
        )


@dataclass(frozen=True)
class LabSettings:
    """One lab cluster: its compose project name, release, ports, secrets and directories."""

    project: str
    keystone_version: str
    ports: LabPorts
    secrets: LabSecrets
    config_dir: Path
    state_dir: Path
    db_log_bin: bool = False
    # Another image of ``keystone_version`` for the nodes (tests: one without the release label).
    image_override: str | None = None

    @property
    def keystone_image(self) -> str:
        """The image reference the nodes run."""
        return self.image_override or f"{REPOSITORY}/keystone:{self.keystone_version}"

    def node_names(self) -> tuple[str, ...]:
        """HAProxy server names and compose service names of the nodes."""
        return tuple(f"keystone-{i}" for i in range(1, len(self.ports.nodes) + 1))

    def compose_environment(self) -> dict[str, str]:
        """The KU_* variables compose/docker-compose.yml is interpolated with."""
        env = {
            "KU_PROJECT": self.project,
            "KU_KEYSTONE_IMAGE": self.keystone_image,
            "KU_CONFIG_DIR": str(self.config_dir),
            "KU_STATE_DIR": str(self.state_dir),
            "KU_DB_PORT": str(self.ports.db),
            "KU_MEMCACHED_PORT": str(self.ports.memcached),
            "KU_LB_PORT": str(self.ports.lb),
            "KU_DB_LOG_BIN": "1" if self.db_log_bin else "0",
        }
        for index, port in enumerate(self.ports.nodes, start=1):
            env[f"KU_NODE{index}_PORT"] = str(port)
        return env

"""The value types everything else speaks in: the inventory, addresses, mounts, targets.

This module is the bottom of the house: it imports nothing of the project, so
drivers, the plan and the CLI can all use it without importing each other.
Everything here is a frozen value; reading a secret or talking to anything is
done above it (``credentials.read_secret``, the drivers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_ENGINE = "local"
DEFAULT_KEY_REPOSITORIES = ("/etc/keystone/fernet-keys", "/etc/keystone/credential-keys")
# The label this project's images carry; on other images the release is read inside them.
KEYSTONE_VERSION_LABEL = "org.openstack.keystone.version"


@dataclass(frozen=True)
class BindMount:
    """A host path mounted into a container."""

    source: str
    target: str
    read_only: bool

    @classmethod
    def parse(cls, text: str) -> BindMount:
        """SOURCE:TARGET[:ro|rw]; ValueError says what is wrong."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise ValueError(f"{text!r} is not SOURCE:TARGET[:ro|rw]")
        if not parts[0].startswith("/") or not parts[1].startswith("/"):
            raise ValueError(f"{text!r}: both paths must be absolute")
        return cls(parts[0], parts[1], len(parts) == 3 and parts[2] == "ro")

    def __str__(self) -> str:
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


@dataclass(frozen=True)
class ServerRef:
    """One HAProxy backend/server pair that routes to a node."""

    backend: str
    server: str

    def __str__(self) -> str:
        return f"{self.backend}/{self.server}"


@dataclass(frozen=True)
class NodeConfig:
    """One Keystone node: where its container runs and how HAProxy reaches it."""

    name: str
    engine: str  # "local" or a unix://, tcp:// or ssh:// Docker endpoint
    container: str
    health_url: str
    servers: tuple[ServerRef, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the plan carries nodes into the journal)."""
        return {
            "name": self.name,
            "engine": self.engine,
            "container": self.container,
            "health_url": self.health_url,
            "servers": [{"backend": s.backend, "server": s.server} for s in self.servers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeConfig:
        """The inverse of ``to_dict``."""
        return cls(
            name=data["name"],
            engine=data["engine"],
            container=data["container"],
            health_url=data["health_url"],
            servers=tuple(ServerRef(s["backend"], s["server"]) for s in data["servers"]),
        )


@dataclass(frozen=True)
class SocketAddress:
    """Where an HAProxy runtime API listens: a unix path, or a TCP host and port."""

    unix_path: str | None = None
    host: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> SocketAddress:
        """``/path``, ``unix:/path``, ``tcp:host:port`` or ``host:port``; ValueError otherwise."""
        if text.startswith("unix:"):
            return cls(unix_path=text.removeprefix("unix:"))
        if text.startswith("/"):
            return cls(unix_path=text)
        host, _, port = text.removeprefix("tcp:").rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                f"not a runtime API address: {text!r} "
                "(give a unix socket path such as /run/haproxy/admin.sock, or tcp:HOST:PORT)"
            )
        return cls(host=host, port=int(port))

    def __str__(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"tcp:{self.host}:{self.port}"


@dataclass(frozen=True)
class DatabaseTarget:
    """Where Keystone's database is and how to log in (the password never in repr)."""

    host: str
    port: int
    user: str
    database: str
    password: str = field(repr=False)
    # TLS the inventory asks for ([database.tls]); None: no TLS required, and no clear-text password.
    tls: DatabaseTls | None = None


@dataclass(frozen=True)
class DatabaseTls:
    """TLS for the database connections ([database.tls]): required whenever it is given."""

    # A PEM bundle of the CAs the server's certificate must chain to (None: the system's).
    ca_file: str | None = None
    # Check the server's certificate and host name; false encrypts without knowing who answers.
    verify: bool = True


@dataclass(frozen=True)
class SecretSource:
    """Where a password comes from: an environment variable or a file (read by credentials.read_secret)."""

    env: str | None
    file: str | None


@dataclass(frozen=True)
class DatabaseConfig:
    """Keystone's database and where its password comes from."""

    host: str
    port: int
    user: str
    name: str
    password: SecretSource
    # An account with SUPER, used only to set log_bin_trust_function_creators when
    # binary logging is on and Keystone's user lacks SUPER ([database.admin]).
    admin_user: str | None = None
    admin_password: SecretSource | None = None
    tls: DatabaseTls | None = None


@dataclass(frozen=True)
class ProbeConfig:
    """Traffic through the load balancer during the upgrade (`upgrade --probe`)."""

    url: str
    username: str
    project: str
    password: SecretSource
    domain: str = "default"
    rate_per_s: float = 30.0
    concurrency: int = 6
    max_seconds: float = 1800.0


@dataclass(frozen=True)
class Inventory:
    """A validated inventory."""

    path: Path
    database: DatabaseConfig
    target_image: str
    backup_image: str
    mounts: tuple[BindMount, ...]
    key_repositories: tuple[str, ...]
    haproxy_sockets: tuple[SocketAddress, ...]
    nodes: tuple[NodeConfig, ...]
    state_dir: Path
    backup_dir: Path
    drain_timeout_s: float = 120.0
    health_timeout_s: float = 180.0
    probe: ProbeConfig | None = None
    # How long one db_sync phase may run before the run gives up on it ([run] migration_timeout_s).
    migration_timeout_s: float = 3600.0
    # The haproxy.cfg files given beside the sockets: preflight reads whether states survive a reload.
    haproxy_configs: tuple[str, ...] = ()

    def node(self, name: str) -> NodeConfig:
        """The node named ``name``."""
        return next(n for n in self.nodes if n.name == name)

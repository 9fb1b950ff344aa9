"""The value types everything else speaks in: the inventory, addresses, mounts, targets.

This module is the bottom of the house: it imports nothing of the project, so
drivers, the plan and the CLI can all use it without importing each other.
Everything here is a frozen value; reading a secret or talking to anything is
done above it (``credentials.read_secret``, the drivers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_ENGINE = "local"
DEFAULT_KEY_REPOSITORIES = ("/etc/keystone/fernet-keys", "/etc/keystone/credential-keys")
# The label this project's images carry; on other images the release is read inside them.
KEYSTONE_VERSION_LABEL = "org.openstack.keystone.version"


# Docker's rule for a named volume's name (Kolla keeps fernet keys in the keystone_fernet_tokens volume).
VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# The Kolla way of running migrations: the image's own start with KOLLA_UPGRADE / KOLLA_FINISH_UPGRADE.
MIGRATIONS_KOLLA = "kolla"
# keystone-manage db_sync as the container's command.
MIGRATIONS_COMMAND = "command"
# Where kolla-ansible mounts a service's config.json and configuration files.
KOLLA_CONFIG_DIR = "/var/lib/kolla/config_files"


@dataclass(frozen=True)
class BindMount:
    """A host path, or a Docker named volume, mounted into a container."""

    source: str  # an absolute host path, or a volume name
    target: str
    read_only: bool

    @property
    def is_volume(self) -> bool:
        """True for a named volume (its source is a name, not a path)."""
        return not self.source.startswith("/")

    @classmethod
    def parse(cls, text: str) -> BindMount:
        """SOURCE:TARGET[:ro|rw], SOURCE an absolute path or a volume name; ValueError says what is wrong."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise ValueError(f"{text!r} is not SOURCE:TARGET[:ro|rw]")
        if not parts[1].startswith("/"):
            raise ValueError(f"{text!r}: the target must be an absolute path in the container")
        if not parts[0].startswith("/") and not VOLUME_NAME.fullmatch(parts[0]):
            raise ValueError(f"{text!r}: the source must be an absolute host path or a volume name")
        return cls(parts[0], parts[1], len(parts) == 3 and parts[2] == "ro")

    def __str__(self) -> str:
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


@dataclass(frozen=True)
class TargetConfig:
    """What the new containers get instead of, or on top of, the old container's configuration.

    A mount replaces the old container's mount at the same target path (a new
    keystone.conf, paste file, policy file or directory) or adds one; the
    environment is added (or overrides the old value); names in
    ``environment_remove`` are dropped. Old nodes keep their own until their turn.
    """

    mounts: tuple[BindMount, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    environment_remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the new containers get the old configuration as it is."""
        return not (self.mounts or self.environment or self.environment_remove)

    def overlaid(self, over: TargetConfig) -> TargetConfig:
        """This configuration with ``over`` on top (a node's own over the inventory's)."""
        replaced = {m.target for m in over.mounts}
        environment = dict(self.environment)
        for name in over.environment_remove:
            environment.pop(name, None)
        environment.update(over.environment)
        removed = (set(self.environment_remove) | set(over.environment_remove)) - set(dict(over.environment))
        return TargetConfig(
            mounts=tuple(m for m in self.mounts if m.target not in replaced) + over.mounts,
            environment=tuple(sorted(environment.items())),
            environment_remove=tuple(sorted(removed)),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (node steps carry it into the journal): the environment's names, never its values."""
        return {
            "mounts": [str(m) for m in self.mounts],
            "environment": environment_names(self.environment),
            "environment_remove": list(self.environment_remove),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetConfig:
        """The inverse of ``to_dict``, the environment's values left to be filled in again."""
        return cls(
            mounts=tuple(BindMount.parse(m) for m in data.get("mounts", ())),
            environment=environment_unfilled(data.get("environment", ())),
            environment_remove=tuple(data.get("environment_remove", ())),
        )


def environment_names(environment: tuple[tuple[str, str], ...]) -> list[str]:
    """What the journal and the printed plan keep of an environment: its names. A value may be a
    secret (a database URL with its password), and secrets are never written down."""
    return [name for name, _ in environment]


def environment_unfilled(names: Any) -> tuple[tuple[str, str], ...]:
    """An environment read back from ``environment_names`` (journals before it kept pairs), its values
    empty until a resumed run fills them in from the inventory and the nodes as they are now."""
    return tuple((str(item[0]), "") if isinstance(item, list | tuple) else (str(item), "") for item in names)


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
    # A tcp:// engine's TLS: the directory holding ca.pem, cert.pem and key.pem (as DOCKER_CERT_PATH).
    docker_tls_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the plan carries nodes into the journal)."""
        return {
            "name": self.name,
            "engine": self.engine,
            "container": self.container,
            "health_url": self.health_url,
            "servers": [{"backend": s.backend, "server": s.server} for s in self.servers],
            "docker_tls_dir": self.docker_tls_dir,
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
            # Journals written before TLS for engines have no such key.
            docker_tls_dir=data.get("docker_tls_dir"),
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


def host_and_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[ADDRESS]:PORT`` for IPv6) as (host, port); ValueError says what is wrong."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT with a port from 1 to 65535")
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1], int(port)
    if ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, [ADDRESS]:PORT")
    return host, int(port)


@dataclass(frozen=True)
class CacheConfig:
    """The memcached servers Keystone caches in ([cache]), and whether the run empties them.

    After a schema change the cache may hold what the old release wrote; flushing it once
    every node runs the target (after contract) makes Keystone read everything afresh.
    """

    memcached: tuple[str, ...]  # HOST:PORT each ([::1]:PORT for an IPv6 address)
    flush_after_upgrade: bool = False


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
    # Load each backup into a scratch database once, to record what a faithful restore holds.
    backup_restore_check: bool = True
    # Nodes swapped together (a batch: out of rotation, swapped, gated and back together), and
    # how many must stay in rotation meanwhile: a plan that would leave fewer is refused.
    nodes_at_once: int = 1
    min_in_rotation: int = 1
    # [target] image as a list: the images before the last, each a complete upgrade first (hops).
    through_images: tuple[str, ...] = ()
    # The haproxy.cfg files given beside the sockets: preflight reads whether states survive a reload.
    haproxy_configs: tuple[str, ...] = ()
    # The memcached servers and whether to flush them after the upgrade ([cache]); None: not given.
    cache: CacheConfig | None = None
    # [target] environment / environment_remove: on top of the old containers' (mounts: above).
    environment: tuple[tuple[str, str], ...] = ()
    environment_remove: tuple[str, ...] = ()
    # [nodes.target]: a node's own target configuration, over the inventory's.
    node_targets: tuple[tuple[str, TargetConfig], ...] = ()
    # How the throwaway containers migrate: MIGRATIONS_COMMAND, MIGRATIONS_KOLLA, or None (detected).
    migrations: str | None = None

    def node(self, name: str) -> NodeConfig:
        """The node named ``name``."""
        return next(n for n in self.nodes if n.name == name)

    def target_config(self, node: str | None = None) -> TargetConfig:
        """What the new containers get: [target]'s, with ``node``'s own on top."""
        shared = TargetConfig(self.mounts, self.environment, self.environment_remove)
        own = dict(self.node_targets).get(node) if node is not None else None
        return shared.overlaid(own) if own is not None else shared

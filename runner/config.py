"""The inventory: a TOML file describing the cluster, validated on load into runner.model's types.

Every problem found is reported at once, each with what is wrong and what to
do, under one ConfigError (exit code 3); nothing is touched before the
inventory is valid. The database password comes from an environment variable
or a file, never from the file itself or the command line.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from runner.errors import ConfigError
from runner.model import (
    DEFAULT_KEY_REPOSITORIES,
    LOCAL_ENGINE,
    BindMount,
    DatabaseConfig,
    Inventory,
    NodeConfig,
    ProbeConfig,
    SecretSource,
    ServerRef,
    SocketAddress,
)

ENGINE_SCHEMES = ("unix", "tcp", "ssh")


class _Problems:
    """Collects every problem so the operator sees them all in one run."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")


def _get(table: Mapping[str, Any], key: str, kind: type, where: str, problems: _Problems) -> Any:
    if key not in table:
        problems.add(where, f"'{key}' is required")
        return None
    value = table[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        problems.add(where, f"'{key}' must be a {kind.__name__}, not {type(value).__name__}")
        return None
    return value


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str, problems: _Problems) -> None:
    for key in sorted(set(table) - allowed):
        problems.add(where, f"unknown key '{key}' (known: {', '.join(sorted(allowed))})")


def _database(raw: Any, problems: _Problems) -> DatabaseConfig | None:
    if not isinstance(raw, dict):
        problems.add("[database]", "the table is required")
        return None
    where = "[database]"
    _check_keys(
        raw,
        {"host", "port", "user", "name", "password_env", "password_file", "password", "admin"},
        where,
        problems,
    )
    if "password" in raw:
        problems.add(where, "'password' is not accepted in the file: use password_env or password_file")
    host = _get(raw, "host", str, where, problems)
    port = _get(raw, "port", int, where, problems)
    user = _get(raw, "user", str, where, problems)
    name = _get(raw, "name", str, where, problems)
    password = _secret(raw, where, problems)
    if isinstance(port, int) and not 0 < port < 65536:
        problems.add(where, f"port {port} is out of range")
    admin_user, admin_password = None, None
    admin = raw.get("admin")
    if admin is not None:
        if isinstance(admin, dict):
            _check_keys(admin, {"user", "password_env", "password_file"}, "[database.admin]", problems)
            admin_user = _get(admin, "user", str, "[database.admin]", problems)
            admin_password = _secret(admin, "[database.admin]", problems)
        else:
            problems.add("[database.admin]", "must be a table")
    if None in (host, port, user, name):
        return None
    return DatabaseConfig(host, port, user, name, password, admin_user, admin_password)


def _secret(raw: Mapping[str, Any], where: str, problems: _Problems) -> SecretSource:
    env, file = raw.get("password_env"), raw.get("password_file")
    if (env is None) == (file is None):
        problems.add(where, "give exactly one of password_env and password_file")
    for key, value in (("password_env", env), ("password_file", file)):
        if value is not None and not isinstance(value, str):
            problems.add(where, f"'{key}' must be a str")
    return SecretSource(env, file)


def _probe(raw: Any, problems: _Problems) -> ProbeConfig | None:
    if raw is None:
        return None
    where = "[probe]"
    if not isinstance(raw, dict):
        problems.add(where, "must be a table")
        return None
    known = {
        "url",
        "username",
        "project",
        "domain",
        "password_env",
        "password_file",
        "rate_per_s",
        "concurrency",
        "max_seconds",
    }
    _check_keys(raw, known, where, problems)
    if "password" in raw:
        problems.add(where, "'password' is not accepted in the file: use password_env or password_file")
    url = _get(raw, "url", str, where, problems)
    username = _get(raw, "username", str, where, problems)
    project = _get(raw, "project", str, where, problems)
    password = _secret(raw, where, problems)
    numbers = {}
    for key, default in (("rate_per_s", 30.0), ("concurrency", 6), ("max_seconds", 1800.0)):
        value = raw.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            problems.add(where, f"'{key}' must be a positive number")
            value = default
        numbers[key] = value
    if None in (url, username, project):
        return None
    return ProbeConfig(
        url=url,
        username=username,
        project=project,
        password=password,
        domain=str(raw.get("domain", "default")),
        rate_per_s=float(numbers["rate_per_s"]),
        concurrency=int(numbers["concurrency"]),
        max_seconds=float(numbers["max_seconds"]),
    )


def _engine(value: Any, where: str, problems: _Problems) -> str:
    if value is None or value == LOCAL_ENGINE:
        return LOCAL_ENGINE
    if not isinstance(value, str) or urlparse(value).scheme not in ENGINE_SCHEMES:
        problems.add(where, f"docker endpoint {value!r} is not local, unix://, tcp:// or ssh://")
    return str(value)


def _nodes(raw: Any, problems: _Problems) -> tuple[NodeConfig, ...]:
    if not isinstance(raw, list) or not raw:
        problems.add("[[nodes]]", "at least one node is required")
        return ()
    nodes = []
    for index, entry in enumerate(raw):
        where = f"[[nodes]] #{index + 1}"
        if not isinstance(entry, dict):
            problems.add(where, "must be a table")
            continue
        _check_keys(entry, {"name", "docker", "container", "health_url", "servers"}, where, problems)
        name = _get(entry, "name", str, where, problems)
        where = f"node {name or index + 1}"
        container = _get(entry, "container", str, where, problems)
        health_url = _get(entry, "health_url", str, where, problems)
        if isinstance(health_url, str) and urlparse(health_url).scheme not in ("http", "https"):
            problems.add(where, f"health_url {health_url!r} is not an http(s) URL")
        servers = []
        raw_servers = entry.get("servers")
        if not isinstance(raw_servers, list) or not raw_servers:
            problems.add(where, "'servers' must list at least one {backend, server} pair")
        else:
            for pair in raw_servers:
                if (
                    isinstance(pair, dict)
                    and isinstance(pair.get("backend"), str)
                    and isinstance(pair.get("server"), str)
                ):
                    servers.append(ServerRef(pair["backend"], pair["server"]))
                else:
                    problems.add(where, f"server entry {pair!r} needs string 'backend' and 'server'")
        engine = _engine(entry.get("docker"), where, problems)
        if name and container and health_url:
            nodes.append(NodeConfig(name, engine, container, health_url, tuple(servers)))
    _unique([n.name for n in nodes], "node name", problems)
    _unique([(n.engine, n.container) for n in nodes], "node container", problems)
    _unique([str(s) for n in nodes for s in n.servers], "backend/server pair", problems)
    return tuple(nodes)


def _unique(values: list[Any], what: str, problems: _Problems) -> None:
    seen = set()
    for value in values:
        if value in seen:
            problems.add("[[nodes]]", f"{what} {value} appears twice")
        seen.add(value)


@dataclass(frozen=True)
class _Target:
    image: str | None
    backup_image: str | None
    mounts: tuple[BindMount, ...]
    key_repositories: tuple[str, ...]


def _target(raw: Any, problems: _Problems) -> _Target:
    if not isinstance(raw, dict):
        problems.add("[target]", "the table is required")
        raw = {}
    _check_keys(raw, {"image", "backup_image", "mounts", "key_repositories"}, "[target]", problems)
    mounts = []
    for text in raw.get("mounts", []):
        try:
            mounts.append(BindMount.parse(text))
        except (ValueError, AttributeError) as exc:
            problems.add("[target] mounts", str(exc))
    if not mounts:
        problems.add("[target]", "'mounts' must give the throwaway container Keystone's config and keys")
    key_repositories = tuple(raw.get("key_repositories", DEFAULT_KEY_REPOSITORIES))
    mounted = {m.target for m in mounts}
    for repository in key_repositories:
        if mounts and repository not in mounted:
            problems.add("[target] mounts", f"no mount for the key repository {repository}")
    return _Target(
        image=_get(raw, "image", str, "[target]", problems),
        backup_image=_get(raw, "backup_image", str, "[target]", problems),
        mounts=tuple(mounts),
        key_repositories=key_repositories,
    )


def _sockets(raw: Any, problems: _Problems) -> tuple[SocketAddress, ...]:
    if not isinstance(raw, list) or not raw:
        problems.add("[[haproxy]]", "at least one runtime socket is required")
        return ()
    sockets = []
    for index, entry in enumerate(raw):
        where = f"[[haproxy]] #{index + 1}"
        text = _get(entry, "socket", str, where, problems) if isinstance(entry, dict) else None
        if text is None:
            continue
        try:
            sockets.append(SocketAddress.parse(text))
        except ValueError as exc:
            problems.add(where, str(exc))
    return tuple(sockets)


@dataclass(frozen=True)
class _Run:
    state_dir: Path
    backup_dir: Path
    drain_timeout_s: float
    health_timeout_s: float


def _run(raw: Any, base: Path, problems: _Problems) -> _Run:
    if not isinstance(raw, dict):
        problems.add("[run]", "must be a table")
        raw = {}
    _check_keys(raw, {"state_dir", "backup_dir", "drain_timeout_s", "health_timeout_s"}, "[run]", problems)
    state_dir = base / str(raw.get("state_dir", "keystone-upgrade-state"))
    backup_dir = base / str(raw.get("backup_dir", state_dir / "backups"))
    timeouts = {}
    for key, default in (("drain_timeout_s", 120.0), ("health_timeout_s", 180.0)):
        value = raw.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            problems.add("[run]", f"'{key}' must be a positive number of seconds")
            value = default
        timeouts[key] = float(value)
    return _Run(state_dir, backup_dir, timeouts["drain_timeout_s"], timeouts["health_timeout_s"])


def load_inventory(path: Path) -> Inventory:
    """Read and validate an inventory; raise one ConfigError listing every problem."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the inventory {path}", observed=exc.strerror) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the inventory {path} is not valid TOML", observed=str(exc)) from exc
    problems = _Problems()
    _check_keys(raw, {"database", "target", "haproxy", "nodes", "run", "probe"}, "inventory", problems)
    database = _database(raw.get("database"), problems)
    target = _target(raw.get("target"), problems)
    sockets = _sockets(raw.get("haproxy"), problems)
    nodes = _nodes(raw.get("nodes"), problems)
    run = _run(raw.get("run", {}), path.parent, problems)
    probe = _probe(raw.get("probe"), problems)
    if problems.items or database is None or target.image is None or target.backup_image is None:
        raise ConfigError(
            f"the inventory {path} has {len(problems.items)} problem(s); nothing was touched",
            observed="\n    " + "\n    ".join(problems.items),
            hint="fix the inventory (see the README's Inventory section) and run again",
        )
    return Inventory(
        path=path,
        database=database,
        target_image=target.image,
        backup_image=target.backup_image,
        mounts=target.mounts,
        key_repositories=target.key_repositories,
        haproxy_sockets=sockets,
        nodes=nodes,
        state_dir=run.state_dir,
        backup_dir=run.backup_dir,
        drain_timeout_s=run.drain_timeout_s,
        health_timeout_s=run.health_timeout_s,
        probe=probe,
    )

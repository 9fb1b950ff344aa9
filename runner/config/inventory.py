"""The inventory's sections, read and checked together into one ``Inventory`` by ``load_inventory``.

Every problem found is reported at once, each with what is wrong, what was
found and what to do, under one ConfigError (exit code 3); whatever the file
holds, nothing else escapes, and nothing is created or touched before the
inventory is valid. Relative paths are relative to the inventory's directory.
The database password comes from an environment variable or a file, never
from the file itself or the command line (``credentials.check_secrets``
reads them).

What each section means lives here; how a table is read (``table.py``) and
what a single value must look like (``values.py``) are apart, so this module
reads as the inventory's schema.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.config.nodes import read_nodes
from runner.config.table import SECTIONS, Problems, Table, array_of_tables, top_table, unique
from runner.config.target import read_target
from runner.config.values import (
    CONTROL,
    MAX_DRAIN_TIMEOUT_S,
    MAX_HEALTH_TIMEOUT_S,
    MAX_MIGRATION_TIMEOUT_S,
    MAX_PROBE_CONCURRENCY,
    MAX_PROBE_RATE_PER_S,
    MAX_PROBE_SECONDS,
    check_ca_bundle,
    check_env_name,
    check_host,
    check_http_url,
    check_memcached_server,
    check_no_spaces,
    check_socket,
)
from runner.errors import ConfigError
from runner.model import (
    CacheConfig,
    DatabaseConfig,
    DatabaseTls,
    Inventory,
    ProbeConfig,
    SecretSource,
    SocketAddress,
)

# -- the tables --------------------------------------------------------------------------------------


def _secret(table: Table) -> SecretSource | None:
    """Where a password comes from: exactly one of password_env and password_file."""
    if "password" in table.raw:
        table.add("'password' is not accepted in the file: use password_env or password_file")
    given = [key for key in ("password_env", "password_file") if key in table.raw]
    if len(given) != 1:
        table.add(
            "give exactly one of password_env and password_file",
            fix="found both" if given else "found neither",
        )
        table.text("password_env", required=False, check=check_env_name)
        table.text("password_file", required=False)
        return None
    if given == ["password_env"]:
        env = table.text("password_env", check=check_env_name)
        return SecretSource(env, None) if env is not None else None
    file = table.path("password_file", fix="give the file holding only the password")
    return SecretSource(None, str(file)) if file is not None else None


def _tls(database: Table) -> DatabaseTls | None:
    table = database.sub("tls", {"ca_file", "verify"})
    if table is None:
        return None
    verify = table.boolean("verify", True)
    ca_file = None
    if "ca_file" in table.raw:
        path = table.path("ca_file")
        if path is not None:
            ca_file = str(path)
            wrong = check_ca_bundle(path)
            if wrong is not None:
                table.add(
                    f"'ca_file' {wrong}",
                    found=str(path),
                    fix="give the PEM file of the CA that signed the server's certificate",
                )
        if verify is False:
            table.add(
                "'ca_file' is given but verify = false: the certificate would not be checked",
                fix="remove one of them",
            )
    return DatabaseTls(ca_file=ca_file, verify=bool(verify))


def _database(raw: Any, problems: Problems, base: Path) -> DatabaseConfig | None:
    known = {"host", "port", "user", "name", "password_env", "password_file", "password", "admin", "tls"}
    table = top_table(raw, "[database]", problems, known, base, required=True)
    if table is None:
        return None
    host = table.text("host", check=check_host)
    port = table.integer("port", low=1, high=65535)
    user = table.text("user")
    name = table.text("name", check=check_no_spaces)
    password = _secret(table)
    tls = _tls(table)
    admin_user, admin_password = None, None
    admin = table.sub("admin", {"user", "password_env", "password_file", "password"})
    if admin is not None:
        admin_user = admin.text("user")
        admin_password = _secret(admin)
    if host is None or port is None or user is None or name is None or password is None:
        return None
    return DatabaseConfig(host, port, user, name, password, admin_user, admin_password, tls)


def _probe(raw: Any, problems: Problems, base: Path) -> ProbeConfig | None:
    known = {
        "url",
        "username",
        "project",
        "domain",
        "password_env",
        "password_file",
        "password",
        "rate_per_s",
        "concurrency",
        "max_seconds",
    }
    table = top_table(raw, "[probe]", problems, known, base, required=False)
    if table is None:
        return None
    url = table.text(
        "url", check=check_http_url, fix="give the load balancer's Keystone URL, e.g. http://10.0.0.10:5000"
    )
    username = table.text("username")
    project = table.text("project")
    domain = table.text("domain") if "domain" in table.raw else "default"
    password = _secret(table)
    rate = table.seconds("rate_per_s", default=30.0, high=MAX_PROBE_RATE_PER_S, what="requests a second")
    concurrency = table.integer("concurrency", low=1, high=MAX_PROBE_CONCURRENCY, default=6)
    max_seconds = table.seconds("max_seconds", default=1800.0, high=MAX_PROBE_SECONDS)
    if (
        url is None
        or username is None
        or project is None
        or domain is None
        or password is None
        or rate is None
        or concurrency is None
        or max_seconds is None
    ):
        return None
    return ProbeConfig(url, username, project, password, domain, rate, concurrency, max_seconds)


def _sockets(raw: Any, problems: Problems, base: Path) -> tuple[tuple[SocketAddress, ...], tuple[str, ...]]:
    """The runtime sockets, and the configuration files given beside them (read by preflight)."""
    example = (
        'write [[haproxy]] then socket = "/run/haproxy/admin.sock" (or "tcp:HOST:PORT") for each HAProxy'
    )
    sockets, configs = [], []
    for table in array_of_tables(raw, "haproxy", problems, {"socket", "config"}, base, example=example):
        text = table.text("socket", check=check_socket, fix=example)
        if text is not None:
            sockets.append(SocketAddress.parse(text))
        if "config" in table.raw:
            config = table.path("config", fix="give the haproxy.cfg this HAProxy runs with, or leave it out")
            if config is not None and not config.is_file():
                table.add(
                    "'config' is not a readable file", found=str(config), fix="give the haproxy.cfg path"
                )
            elif config is not None:
                configs.append(str(config))
    unique([str(s) for s in sockets], "[[haproxy]]", "runtime socket", problems)
    return tuple(sockets), tuple(configs)


@dataclass(frozen=True)
class _Run:
    state_dir: Path | None
    backup_dir: Path | None
    drain_timeout_s: float | None
    health_timeout_s: float | None
    migration_timeout_s: float | None
    backup_restore_check: bool | None
    nodes_at_once: int | None
    min_in_rotation: int | None


# Fleets larger than this are not what nodes_at_once is bounded by: the inventory's node count is.
MAX_NODES_AT_ONCE = 1000


def _run(raw: Any, problems: Problems, base: Path) -> _Run:
    known = {
        "state_dir",
        "backup_dir",
        "drain_timeout_s",
        "health_timeout_s",
        "migration_timeout_s",
        "backup_restore_check",
        "nodes_at_once",
        "min_in_rotation",
    }
    table = top_table(raw, "[run]", problems, known, base, required=False) or Table(
        {}, "[run]", problems, (), base
    )
    state_dir = table.path("state_dir", default=base / "keystone-upgrade-state")
    backup_dir = table.path("backup_dir", default=(state_dir or base / "keystone-upgrade-state") / "backups")
    for key, directory in (("state_dir", state_dir), ("backup_dir", backup_dir)):
        if directory is not None and os.path.lexists(directory) and not os.path.isdir(directory):
            table.add(f"'{key}' {directory} exists and is not a directory", fix="name a directory")
    return _Run(
        state_dir,
        backup_dir,
        table.seconds("drain_timeout_s", default=120.0, high=MAX_DRAIN_TIMEOUT_S),
        table.seconds("health_timeout_s", default=180.0, high=MAX_HEALTH_TIMEOUT_S),
        table.seconds("migration_timeout_s", default=3600.0, high=MAX_MIGRATION_TIMEOUT_S),
        table.boolean("backup_restore_check", True),
        table.integer("nodes_at_once", low=1, high=MAX_NODES_AT_ONCE, default=1),
        table.integer("min_in_rotation", low=1, high=MAX_NODES_AT_ONCE, default=1),
    )


def _memcached_problem(server: Any) -> str | None:
    """What is wrong with one entry of [cache] memcached (None: a HOST:PORT string)."""
    if not isinstance(server, str):
        return "is not a string"
    if CONTROL.search(server):
        return "holds control characters"
    return check_memcached_server(server)


def _cache(raw: Any, problems: Problems, base: Path) -> CacheConfig | None:
    """[cache]: Keystone's memcached servers, flushed after the upgrade when asked (off by default)."""
    table = top_table(raw, "[cache]", problems, {"memcached", "flush_after_upgrade"}, base, required=False)
    if table is None:
        return None
    fix = 'list every memcached Keystone uses, e.g. memcached = ["10.0.0.21:11211", "10.0.0.22:11211"]'
    given = table.raw.get("memcached")
    servers: list[str] = []
    if not isinstance(given, list) or not given:
        table.add("'memcached' must be a non-empty array of HOST:PORT strings", found=given, fix=fix)
    for index, server in enumerate(given if isinstance(given, list) else [], start=1):
        wrong = _memcached_problem(server)
        if wrong is None:
            servers.append(server)
        else:
            table.add(f"memcached server #{index} {wrong}", found=server, fix=fix)
    unique(servers, "[cache] memcached", "memcached server", problems)
    flush = table.boolean("flush_after_upgrade", False)
    if flush is None or not servers or len(servers) != len(given or ()):
        return None
    return CacheConfig(memcached=tuple(servers), flush_after_upgrade=flush)


def _parse(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the inventory {path}",
            observed=exc.strerror or str(exc),
            hint="give the path of a readable TOML file",
        ) from exc
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the inventory {path} is not UTF-8 text", observed=str(exc)) from exc
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError is a ValueError; so is a 5000-digit number
        raise ConfigError(
            f"the inventory {path} is not valid TOML",
            observed=str(exc) if not isinstance(exc, RecursionError) else "nested too deeply",
            hint="fix the syntax at the place named (see the README's Inventory section)",
        ) from exc


def load_inventory(path: Path) -> Inventory:
    """Read and validate an inventory; raise one ConfigError listing every problem, and create nothing."""
    raw = _parse(path)
    base = path.absolute().parent
    with contextlib.suppress(OSError, RuntimeError):  # a loop of links: keep the path as given
        base = base.resolve()  # the directory as named, its ".." and links resolved (not the file's link)
    problems = Problems()
    Table(raw, "inventory", problems, SECTIONS, base)
    database = _database(raw.get("database"), problems, base)
    target = read_target(raw.get("target"), problems, base)
    sockets, haproxy_configs = _sockets(raw.get("haproxy"), problems, base)
    nodes, node_targets = read_nodes(raw.get("nodes"), problems, base)
    run = _run(raw.get("run"), problems, base)
    probe = _probe(raw.get("probe"), problems, base)
    cache = _cache(raw.get("cache"), problems, base)
    if (
        problems.items
        or database is None
        or target.image is None
        or target.backup_image is None
        or run.state_dir is None
        or run.backup_dir is None
        or run.drain_timeout_s is None
        or run.health_timeout_s is None
        or run.migration_timeout_s is None
        or run.backup_restore_check is None
        or run.nodes_at_once is None
        or run.min_in_rotation is None
    ):
        raise ConfigError(
            f"the inventory {path} has {len(problems.items)} problem(s); nothing was touched",
            observed="\n    " + "\n    ".join(problems.items),
            hint="fix the inventory (see the README's Inventory section) and run again",
        )
    return Inventory(
        path=path,
        database=database,
        target_image=target.image,
        through_images=target.through,
        backup_image=target.backup_image,
        mounts=target.config.mounts,
        environment=target.config.environment,
        environment_remove=target.config.environment_remove,
        migrations=target.migrations,
        node_targets=node_targets,
        key_repositories=target.key_repositories,
        haproxy_sockets=sockets,
        haproxy_configs=haproxy_configs,
        nodes=nodes,
        state_dir=run.state_dir,
        backup_dir=run.backup_dir,
        drain_timeout_s=run.drain_timeout_s,
        health_timeout_s=run.health_timeout_s,
        migration_timeout_s=run.migration_timeout_s,
        backup_restore_check=run.backup_restore_check,
        nodes_at_once=run.nodes_at_once,
        min_in_rotation=run.min_in_rotation,
        probe=probe,
        cache=cache,
    )

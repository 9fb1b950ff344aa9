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

from runner.config.table import SECTIONS, Problems, Table, array_of_tables, top_table
from runner.config.values import (
    CONTROL,
    MAX_DRAIN_TIMEOUT_S,
    MAX_HEALTH_TIMEOUT_S,
    MAX_MIGRATION_TIMEOUT_S,
    MAX_PROBE_CONCURRENCY,
    MAX_PROBE_RATE_PER_S,
    MAX_PROBE_SECONDS,
    check_ca_bundle,
    check_container,
    check_engine_url,
    check_env_name,
    check_haproxy_name,
    check_host,
    check_http_url,
    check_image,
    check_memcached_server,
    check_no_spaces,
    check_socket,
    docker_tls_problems,
)
from runner.errors import ConfigError
from runner.model import (
    DEFAULT_KEY_REPOSITORIES,
    LOCAL_ENGINE,
    MIGRATIONS_COMMAND,
    MIGRATIONS_KOLLA,
    BindMount,
    CacheConfig,
    DatabaseConfig,
    DatabaseTls,
    Inventory,
    NodeConfig,
    ProbeConfig,
    SecretSource,
    ServerRef,
    SocketAddress,
    TargetConfig,
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


def _nodes(
    raw: Any, problems: Problems, base: Path
) -> tuple[tuple[NodeConfig, ...], tuple[tuple[str, TargetConfig], ...]]:
    """The nodes, and each node's own target configuration ([nodes.target]) where it has one."""
    example = "write one [[nodes]] table per node, with name, container, health_url and servers"
    entries = array_of_tables(
        raw,
        "nodes",
        problems,
        {"name", "docker", "docker_tls_dir", "container", "health_url", "servers", "target"},
        base,
        example=example,
    )
    nodes, names, containers, pairs = [], [], [], []
    tls_dirs: dict[str, set[str | None]] = {}  # endpoint -> the TLS directories its nodes give
    targets: list[tuple[str, TargetConfig]] = []
    for table in entries:
        name = table.text("name")
        container = table.text("container", check=check_container)
        health_url = table.text(
            "health_url",
            check=check_http_url,
            fix="give the node's own Keystone URL, e.g. http://10.0.0.11:5000/v3",
        )
        engine = table.text("docker", check=check_engine_url) if "docker" in table.raw else LOCAL_ENGINE
        tls_dir = _docker_tls_dir(table, engine)
        if engine:
            tls_dirs.setdefault(engine, set()).add(tls_dir)
        servers = _servers(table)
        # Duplicates are found among whatever could be read, even in a node with other problems.
        names += [name] if name else []
        containers += [f"{container} on {engine or table.raw.get('docker')}"] if container else []
        pairs += [str(s) for s in servers or ()]
        own = table.sub("target", TARGET_CONFIG_KEYS)
        if name and own is not None:
            targets.append((name, _target_config(own)))
        if name and container and health_url and engine and servers:
            nodes.append(NodeConfig(name, engine, container, health_url, servers, tls_dir))
    for endpoint, given in sorted(tls_dirs.items()):
        if len(given) > 1:  # one client per engine: its nodes must agree on how it is reached
            problems.add(
                "[[nodes]]",
                f"the nodes on engine {endpoint} give different docker_tls_dir values",
                found=sorted(str(d) for d in given),
                fix="give every node on that engine the same docker_tls_dir",
            )
    _unique(names, "[[nodes]]", "node name", problems)
    _unique(containers, "[[nodes]]", "container", problems)
    _unique(pairs, "[[nodes]]", "backend/server pair", problems)
    return tuple(nodes), tuple(targets)


def _docker_tls_dir(node: Table, engine: str | None) -> str | None:
    """A tcp:// engine's TLS directory (ca.pem, cert.pem, key.pem), relative to the inventory."""
    if "docker_tls_dir" not in node.raw:
        return None
    directory = node.path("docker_tls_dir", fix="give the directory of ca.pem, cert.pem and key.pem")
    if directory is None:
        return None
    if engine is not None and not engine.startswith("tcp://"):
        node.add(
            "'docker_tls_dir' is only for a tcp:// engine",
            found=engine,
            fix='remove it, or give docker = "tcp://HOST:PORT" (unix:// and ssh:// need no TLS)',
        )
    for wrong in docker_tls_problems(directory):
        node.add(
            f"'docker_tls_dir' {directory} {wrong}",
            fix="give the directory of the engine's ca.pem and this client's cert.pem and key.pem "
            "(as DOCKER_CERT_PATH)",
        )
    return str(directory)


def _servers(node: Table) -> tuple[ServerRef, ...] | None:
    fix = 'list every HAProxy server that routes to the node: servers = [{ backend = "keystone_back", server = "k1" }]'
    raw = node.raw.get("servers")
    if not isinstance(raw, list) or not raw:
        node.add("'servers' must list at least one {backend, server} pair", found=raw, fix=fix)
        return None
    servers = []
    for index, pair in enumerate(raw, start=1):
        if not isinstance(pair, dict):
            node.add(f"server #{index} must be a table", found=pair, fix=fix)
            continue
        table = Table(pair, f"{node.where} server #{index}", node.problems, {"backend", "server"}, node.base)
        backend = table.text("backend", check=check_haproxy_name)
        server = table.text("server", check=check_haproxy_name)
        if backend and server:
            servers.append(ServerRef(backend, server))
    return tuple(servers) if len(servers) == len(raw) else None


def _unique(values: list[str], where: str, what: str, problems: Problems) -> None:
    seen = set()
    for value in values:
        if value in seen:
            problems.add(where, f"{what} {value} appears twice", fix="give each once")
        seen.add(value)


@dataclass(frozen=True)
class _Target:
    image: str | None
    backup_image: str | None
    config: TargetConfig
    key_repositories: tuple[str, ...]
    migrations: str | None


def _strings(table: Table, key: str, fix: str) -> list[str] | None:
    """An array of non-empty strings (None when absent or wrong)."""
    raw = table.raw.get(key)
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        table.add(f"'{key}' must be a non-empty array of strings", found=raw, fix=fix)
        return None
    if not all(isinstance(item, str) and item.strip() and not CONTROL.search(item) for item in raw):
        bad = next(i for i in raw if not isinstance(i, str) or not i.strip() or CONTROL.search(i))
        table.add(f"'{key}' must hold only non-empty strings", found=bad, fix=fix)
        return None
    return list(raw)


# The keys of a target configuration, in [target] and in a node's [nodes.target].
TARGET_CONFIG_KEYS = {"mounts", "environment", "environment_remove"}


def _target_config(table: Table) -> TargetConfig:
    """Mounts that replace (same target path) or add to the old container's, and environment changes."""
    mount_fix = (
        'write e.g. mounts = ["/etc/keystone-29/keystone.conf:/etc/keystone/keystone.conf:ro", '
        '"keystone_fernet_tokens:/etc/keystone/fernet-keys"]'
    )
    mounts = []
    for text in _strings(table, "mounts", mount_fix) or []:
        try:
            mounts.append(BindMount.parse(text))
        except ValueError as exc:
            table.add(str(exc), fix="write SOURCE:TARGET[:ro|rw]: an absolute host path or a volume name")
    _unique([m.target for m in mounts], table.where, "mount target", table.problems)
    environment: dict[str, str] = {}
    env_fix = 'write e.g. environment = { KEYSTONE_WORKERS = "4" }'
    raw_env = table.raw.get("environment")
    if raw_env is not None and not isinstance(raw_env, dict):
        table.add("'environment' must be a table of strings", found=raw_env, fix=env_fix)
    for name, value in (raw_env or {}).items() if isinstance(raw_env, dict) else ():
        if check_env_name(name) is not None:
            table.add(f"environment: {name!r} {check_env_name(name)}", fix=env_fix)
        elif not isinstance(value, str) or CONTROL.search(value):
            table.add(f"environment: {name} must be a string without control characters", found=value)
        else:
            environment[name] = value
    removed = _strings(table, "environment_remove", 'write e.g. environment_remove = ["OLD_SETTING"]') or []
    for name in removed:
        if check_env_name(name) is not None:
            table.add(f"environment_remove: {name!r} {check_env_name(name)}")
        elif name in environment:
            table.add(
                f"{name} is both set and removed", fix="keep it in one of environment, environment_remove"
            )
    return TargetConfig(tuple(mounts), tuple(sorted(environment.items())), tuple(sorted(set(removed))))


def _target(raw: Any, problems: Problems, base: Path) -> _Target:
    known = {"image", "backup_image", "key_repositories", "migrations", *TARGET_CONFIG_KEYS}
    table = top_table(raw, "[target]", problems, known, base, required=True)
    if table is None:
        return _Target(None, None, TargetConfig(), (), None)
    config = _target_config(table)
    repositories: tuple[str, ...] = DEFAULT_KEY_REPOSITORIES
    if "key_repositories" in table.raw:
        given = _strings(table, "key_repositories", f"or leave it out for {list(DEFAULT_KEY_REPOSITORIES)}")
        repositories = tuple(given or ())
        for repository in repositories:
            if not repository.startswith("/"):
                table.add(
                    "key repositories must be absolute paths in the container",
                    found=repository,
                    fix="give where Keystone reads them, e.g. /etc/keystone/fernet-keys",
                )
        _unique(list(repositories), "[target] key_repositories", "key repository", problems)
    migrations = None
    if "migrations" in table.raw:
        migrations = table.text(
            "migrations",
            check=lambda v: (
                None
                if v in (MIGRATIONS_COMMAND, MIGRATIONS_KOLLA)
                else f"must be {MIGRATIONS_COMMAND!r} or {MIGRATIONS_KOLLA!r}"
            ),
            fix=f"{MIGRATIONS_KOLLA!r}: the image's own start with KOLLA_UPGRADE / KOLLA_FINISH_UPGRADE; "
            f"{MIGRATIONS_COMMAND!r}: keystone-manage db_sync as the command; leave it out to detect",
        )
    return _Target(
        image=table.text(
            "image",
            check=check_image,
            fix="give the Keystone image to upgrade to, e.g. keystone-upgrade/keystone:29.1.0",
        ),
        backup_image=table.text(
            "backup_image",
            check=check_image,
            fix="give an image with mariadb-dump and bash, e.g. keystone-upgrade/mariadb:10.11",
        ),
        config=config,
        key_repositories=repositories,
        migrations=migrations,
    )


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
    _unique([str(s) for s in sockets], "[[haproxy]]", "runtime socket", problems)
    return tuple(sockets), tuple(configs)


@dataclass(frozen=True)
class _Run:
    state_dir: Path | None
    backup_dir: Path | None
    drain_timeout_s: float | None
    health_timeout_s: float | None
    migration_timeout_s: float | None


def _run(raw: Any, problems: Problems, base: Path) -> _Run:
    known = {"state_dir", "backup_dir", "drain_timeout_s", "health_timeout_s", "migration_timeout_s"}
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
    _unique(servers, "[cache] memcached", "memcached server", problems)
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
    target = _target(raw.get("target"), problems, base)
    sockets, haproxy_configs = _sockets(raw.get("haproxy"), problems, base)
    nodes, node_targets = _nodes(raw.get("nodes"), problems, base)
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
        probe=probe,
        cache=cache,
    )

"""[[nodes]]: where each node's container runs, how HAProxy reaches it, and its own [nodes.target]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.config.table import Problems, Table, array_of_tables, unique
from runner.config.target import TARGET_CONFIG_KEYS, read_target_config
from runner.config.values import (
    check_container,
    check_engine_url,
    check_haproxy_name,
    check_http_url,
    docker_tls_problems,
)
from runner.model import LOCAL_ENGINE, NodeConfig, ServerRef, TargetConfig


def read_nodes(
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
            targets.append((name, read_target_config(own)))
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
    unique(names, "[[nodes]]", "node name", problems)
    unique(containers, "[[nodes]]", "container", problems)
    unique(pairs, "[[nodes]]", "backend/server pair", problems)
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

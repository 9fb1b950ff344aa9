"""Read-only facts about the live cluster: containers, images, HAProxy states, the database.

Gathering facts changes nothing (except that throwaway containers of the
target image come and go to read its migration heads and run
`db_sync --check` and `doctor`). Every probe's failure is recorded as a fact,
not raised, so that preflight can report every problem at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import requests

from runner.config import Inventory, NodeConfig
from runner.drivers.database import BinlogSettings, Database
from runner.drivers.docker_engine import (
    PURPOSE_LABEL,
    ContainerFacts,
    Engine,
    Finished,
    ImageFacts,
)
from runner.drivers.haproxy import HaproxyRuntime, ServerStat, ServerState
from runner.errors import RunnerError

log = logging.getLogger(__name__)

HEADS_SCRIPT = """\
import pathlib, sys, keystone
versions = pathlib.Path(keystone.__file__).parent / 'common/sql/migrations/versions'
print('EXPAND', (versions / 'EXPAND_HEAD').read_text().strip())
print('CONTRACT', (versions / 'CONTRACT_HEAD').read_text().strip())
for repository in sys.argv[1:]:
    path = pathlib.Path(repository)
    print('KEYS', repository, len(list(path.iterdir())) if path.is_dir() else -1)
"""


@dataclass(frozen=True)
class NodeFacts:
    """One node as observed: its container, and whether its health URL answers."""

    config: NodeConfig
    container: ContainerFacts | None
    engine_error: str | None
    health_status: int | None  # HTTP status of GET health_url, None when it did not answer
    health_error: str | None


@dataclass(frozen=True)
class SocketFacts:
    """One HAProxy runtime socket as observed."""

    address: str
    level: str | None
    error: str | None
    stats: tuple[ServerStat, ...] = ()
    states: tuple[ServerState, ...] = ()

    def stat(self, backend: str, server: str) -> ServerStat | None:
        """The show-stat row of one server, if HAProxy has it."""
        return next((s for s in self.stats if s.backend == backend and s.server == server), None)

    def state(self, backend: str, server: str) -> ServerState | None:
        """The show-servers-state row of one server, if HAProxy has it."""
        return next((s for s in self.states if s.backend == backend and s.server == server), None)


@dataclass(frozen=True)
class DatabaseFacts:
    """The database as observed with the configured user."""

    error: str | None
    heads: frozenset[str] = frozenset()
    binlog: BinlogSettings | None = None


@dataclass(frozen=True)
class TargetFacts:
    """The target image and what a throwaway container of it says."""

    image: ImageFacts | None
    expand_head: str | None = None
    contract_head: str | None = None
    key_files: Mapping[str, int] = field(default_factory=dict)  # repository -> entries (-1: missing)
    check: Finished | None = None
    doctor: Finished | None = None
    error: str | None = None

    @property
    def heads(self) -> frozenset[str]:
        """The alembic heads a fully migrated database has for the target release."""
        return frozenset(h for h in (self.expand_head, self.contract_head) if h)


@dataclass(frozen=True)
class ClusterFacts:
    """Everything preflight and the plan need, observed at one time."""

    nodes: tuple[NodeFacts, ...]
    sockets: tuple[SocketFacts, ...]
    database: DatabaseFacts
    target: TargetFacts

    def node(self, name: str) -> NodeFacts:
        """The facts of the node named ``name``."""
        return next(n for n in self.nodes if n.config.name == name)


def node_facts(node: NodeConfig, engine: Engine, session: requests.Session) -> NodeFacts:
    """Container and health of one node."""
    container, engine_error = None, None
    try:
        engine.ping()
        container = engine.container(node.container)
    except RunnerError as exc:
        engine_error = exc.render()
    health_status, health_error = None, None
    try:
        health_status = session.get(node.health_url, timeout=5).status_code
    except requests.RequestException as exc:
        health_error = str(exc)
    return NodeFacts(node, container, engine_error, health_status, health_error)


def socket_facts(runtime: HaproxyRuntime) -> SocketFacts:
    """Access level and every server's state on one runtime socket."""
    try:
        level = runtime.access_level()
        return SocketFacts(
            str(runtime.address),
            level,
            None,
            tuple(runtime.show_stat()),
            tuple(runtime.show_servers_state()),
        )
    except RunnerError as exc:
        return SocketFacts(str(runtime.address), None, exc.render())


def database_facts(database: Database) -> DatabaseFacts:
    """Whether the configured user gets in, and the schema heads."""
    try:
        return DatabaseFacts(None, database.alembic_heads(), database.binlog_settings())
    except RunnerError as exc:
        return DatabaseFacts(exc.render())


def target_facts(
    inventory: Inventory,
    engine: Engine,
    run_label: Mapping[str, str],
    database_ok: bool,
    pull_missing: bool = False,
) -> TargetFacts:
    """The target image's heads, the key repositories it sees, `db_sync --check` and `doctor`."""
    try:
        image = engine.image(inventory.target_image)
    except RunnerError as exc:
        return TargetFacts(None, error=exc.render())
    # Only an upgrade pulls: `plan` must leave the engine's images as they are.
    if image is None and pull_missing and engine.pull(inventory.target_image):
        image = engine.image(inventory.target_image)
    if image is None:
        return TargetFacts(None)
    try:
        inspected = engine.run_once(
            inventory.target_image,
            ["python3", "-c", HEADS_SCRIPT, *inventory.key_repositories],
            mounts=inventory.mounts,
            labels={**run_label, PURPOSE_LABEL: "facts"},
            user="root",  # key repositories are 0700 keystone: root counts their entries
        )
        expand_head = contract_head = None
        key_files = {}
        for line in inspected.output.splitlines():
            parts = line.split()
            if parts[:1] == ["EXPAND"]:
                expand_head = parts[1]
            elif parts[:1] == ["CONTRACT"]:
                contract_head = parts[1]
            elif parts[:1] == ["KEYS"]:
                key_files[parts[1]] = int(parts[2])
        if inspected.exit_code != 0 or expand_head is None:
            return TargetFacts(
                image, error=f"reading the target's migration heads failed:\n{inspected.tail()}"
            )
        check = doctor = None
        if database_ok:
            labels = {**run_label, PURPOSE_LABEL: "check"}
            check = engine.run_once(
                inventory.target_image,
                ["keystone-manage", "db_sync", "--check"],
                mounts=inventory.mounts,
                labels=labels,
            )
            doctor = engine.run_once(
                inventory.target_image, ["keystone-manage", "doctor"], mounts=inventory.mounts, labels=labels
            )
        return TargetFacts(image, expand_head, contract_head, key_files, check, doctor)
    except RunnerError as exc:
        return TargetFacts(image, error=exc.render())

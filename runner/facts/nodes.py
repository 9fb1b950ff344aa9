"""What is read of the nodes, the HAProxy sockets and the database: their facts, never raised.

Every probe's failure is recorded as a fact, so that preflight can report every
problem at once. Reading changes nothing, except that an upgrade pulls (or
loads from the runner's engine) a target image a node's engine lacks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.drivers.containers import ContainerFacts, Engine
from runner.drivers.database import BinlogSettings
from runner.drivers.haproxy import HaproxyRuntime, ServerStat, ServerState
from runner.drivers.image_copy import copy_image
from runner.drivers.key_digests import read_release_and_key_digests
from runner.drivers.keystone import base_url
from runner.drivers.keystone_release import release_inside
from runner.drivers.ports import Database, Http, Tokens
from runner.errors import RunnerError
from runner.model import NodeConfig
from runner.waits import HAPROXY_CHECKS_SETTLED, WaitTimeout, wait_until

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeFacts:
    """One node as observed: its container, and whether its health URL answers."""

    config: NodeConfig
    container: ContainerFacts | None
    engine_error: str | None
    health_status: int | None  # HTTP status of GET health_url, None when it did not answer
    health_error: str | None
    # Key repository -> digest of its content, read inside the running container (None: not read).
    key_digests: Mapping[str, str] | None = None
    key_error: str | None = None
    # Whether the node's engine has the target image (None: the engine did not answer).
    target_image_present: bool | None = None
    # An upgrade's copy of the target image from the runner's engine onto the node's, when no
    # registry gave it: what was loaded and how long it took, or why it failed (None: not tried).
    target_image_copy: str | None = None
    # The Keystone release installed in the running container, read inside it (None: not read).
    release: str | None = None

    @property
    def known_release(self) -> str | None:
        """What the node runs: read inside it, or (a stopped container) its image's label as a hint."""
        if self.release is not None:
            return self.release
        return self.container.keystone_version if self.container is not None else None


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
    # Its base tables (empty: not read). Without alembic_version, alembic never migrated it.
    tables: frozenset[str] = frozenset()


def keeps_states_across_reloads(config_text: str) -> bool:
    """Whether a haproxy.cfg saves runtime states to a file and loads them back on a reload."""
    words = [line.split("#", 1)[0].split() for line in config_text.splitlines()]
    return any(w[:1] == ["server-state-file"] for w in words) and any(
        w[:1] == ["load-server-state-from-file"] and w[1:2] != ["none"] for w in words
    )


def probe_login_error(tokens: Tokens | None, url: str | None) -> str | None:
    """Whether the probe's credentials get a token (the token gate and the probe use them)."""
    if tokens is None or url is None:
        return None
    try:
        tokens.issue(base_url(url))
    except OSError as exc:  # refused (PermissionError) or no answer
        return str(exc)
    return None


def haproxy_configs_losing_states(paths: tuple[str, ...]) -> tuple[str, ...]:
    """The given haproxy.cfg files after whose reload DRAIN and MAINT would be forgotten."""
    losing = []
    for path in paths:
        try:
            if not keeps_states_across_reloads(Path(path).read_text(errors="replace")):
                losing.append(path)
        except OSError:
            losing.append(path)  # unreadable now: nothing says it keeps them
    return tuple(losing)


def haproxy_configs_without_slowstart(paths: tuple[str, ...]) -> tuple[str, ...]:
    """The given haproxy.cfg files with no ``slowstart`` on any server line (or default-server):
    a node back from MAINT gets its full share of requests at once, warm or not."""
    missing = []
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue  # reported by the state check above
        words = [line.split("#", 1)[0].split() for line in text.splitlines()]
        if not any(w[:1] in (["server"], ["default-server"]) and "slowstart" in w for w in words):
            missing.append(path)
    return tuple(missing)


HEALTH_REQUEST_TIMEOUT_S = 5


def node_facts(
    node: NodeConfig,
    engine: Engine,
    http: Http,
    target_image: str,
    key_repositories: tuple[str, ...] = (),
    *,
    pull_missing: bool = False,
    image_source: Engine | None = None,
) -> NodeFacts:
    """Container and health of one node, and whether its engine has the target image.

    Only an upgrade pulls a missing target image (``pull_missing``), and when
    no registry gives it, loads it from ``image_source`` (the runner's own
    engine), before anything is drained: ``plan`` leaves every engine's images
    as they are.
    """
    container, engine_error, present, image_copy = None, None, None, None
    try:
        engine.ping()
        container = engine.container(node.container)
        present = engine.image(target_image) is not None
        if not present and pull_missing:
            present = engine.pull(target_image) and engine.image(target_image) is not None
        if (
            not present
            and pull_missing
            and image_source is not None
            and image_source.endpoint != engine.endpoint
        ):
            try:
                image_copy = copy_image(image_source, engine, target_image).describe()
                present = True
            except RunnerError as exc:  # a finding of its own, not the engine's silence
                image_copy = exc.render()
            log.info("node %s: %s", node.name, image_copy)
    except RunnerError as exc:
        engine_error = exc.render()
    health_status, health_error = None, None
    try:
        health_status = http.get_status(node.health_url, HEALTH_REQUEST_TIMEOUT_S)
    except OSError as exc:  # requests' errors are OSErrors
        health_error = str(exc)
    digests, key_error, release = None, None, None
    if container is not None and container.status == "running":
        release, digests, key_error = _release_and_keys(node, engine, key_repositories)
    return NodeFacts(
        node,
        container,
        engine_error,
        health_status,
        health_error,
        key_digests=digests,
        key_error=key_error,
        target_image_present=present,
        release=release,
        target_image_copy=image_copy,
    )


def _release_and_keys(
    node: NodeConfig, engine: Engine, key_repositories: tuple[str, ...]
) -> tuple[str | None, dict[str, str] | None, str | None]:
    """A running node's release and key digests (with the error when they cannot be read): one
    process in it for both; the release asked on its own only when that process never asked it."""
    release, digests, key_error, asked = None, None, None, False
    if key_repositories:
        try:
            readings = read_release_and_key_digests(engine, node.container, key_repositories)
            release, digests, asked = readings.release, readings.digests, readings.release_asked
            key_error = None if readings.error is None else readings.error.render()
        except RunnerError as exc:  # the engine failed the exec
            key_error = exc.render()
    if not asked:
        try:
            release = release_inside(engine, node.container)
        except RunnerError as exc:
            log.info("node %s: reading its release failed: %s", node.name, exc.render())
    return release, digests, key_error


def throwaways_running(engines: Mapping[str, Engine]) -> tuple[str, ...]:
    """Every engine's throwaway containers of earlier runs that still run (engines that fail: skipped)."""
    running: list[str] = []
    for endpoint, engine in sorted(engines.items()):
        try:
            running += [f"{description} on {endpoint}" for description in engine.running_throwaways()]
        except RunnerError:
            continue  # an engine that does not answer is a node finding of its own
    return tuple(running)


def _settled_stats(runtime: HaproxyRuntime) -> list[ServerStat]:
    """``show stat`` once no server is half-way between UP and DOWN (bounded).

    ``UP 1/2`` is one failed check on a busy machine, not a verdict: preflight
    judges the state the checks settle on, or what it last saw.
    """
    try:
        return wait_until(
            HAPROXY_CHECKS_SETTLED, runtime.show_stat, lambda stats: not any(s.in_transition for s in stats)
        )
    except WaitTimeout as exc:
        return list(exc.last_observed) if isinstance(exc.last_observed, list) else runtime.show_stat()


def socket_facts(runtime: HaproxyRuntime) -> SocketFacts:
    """Access level and every server's state on one runtime socket."""
    try:
        level = runtime.access_level()
        return SocketFacts(
            str(runtime.address),
            level,
            None,
            tuple(_settled_stats(runtime)),
            tuple(runtime.show_servers_state()),
        )
    except RunnerError as exc:
        return SocketFacts(str(runtime.address), None, exc.render())


def database_facts(database: Database) -> DatabaseFacts:
    """Whether the configured user gets in, and the schema heads."""
    try:
        tables = database.table_names()
        if "alembic_version" not in tables:  # sqlalchemy-migrate's, or empty: no heads to read
            return DatabaseFacts(None, frozenset(), database.binlog_settings(), tables)
        return DatabaseFacts(None, database.alembic_heads(), database.binlog_settings(), tables)
    except RunnerError as exc:
        return DatabaseFacts(exc.render())

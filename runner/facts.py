"""Read-only facts about the live cluster: containers, images, HAProxy states, the database.

Gathering facts changes nothing (except that throwaway containers of the
target image come and go to read its migration heads and run
`db_sync --check` and `doctor`). Every probe's failure is recorded as a fact,
not raised, so that preflight can report every problem at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from runner.drivers.containers import PURPOSE_LABEL, ContainerFacts, Engine, Finished, ImageFacts
from runner.drivers.database import BinlogSettings
from runner.drivers.docker_blueprint import ThrowawaySetup, derive_throwaway
from runner.drivers.haproxy import HaproxyRuntime, ServerStat, ServerState
from runner.drivers.image_copy import copy_image
from runner.drivers.key_digests import DIGEST_FUNCTION, parse_key_digests, read_key_digests
from runner.drivers.keystone import base_url
from runner.drivers.keystone_release import RELEASE_FUNCTION, release_inside
from runner.drivers.ports import Database, Http, Tokens
from runner.errors import RunnerError
from runner.migrations import kolla_argv, migrations_style
from runner.model import LOCAL_ENGINE, MIGRATIONS_KOLLA, Inventory, NodeConfig
from runner.waits import HAPROXY_CHECKS_SETTLED, WaitTimeout, wait_until

log = logging.getLogger(__name__)

# One throwaway container answers everything preflight asks of the target image:
# its migration heads, what it sees in the key repositories, and (when the
# database answers) `db_sync --check` and `doctor`, each framed by markers.
FACTS_SCRIPT = (
    DIGEST_FUNCTION
    + RELEASE_FUNCTION
    + """\
import pathlib, subprocess, sys, keystone
print('RELEASE', keystone_release())
versions = pathlib.Path(keystone.__file__).parent / 'common/sql/migrations/versions'
print('EXPAND', (versions / 'EXPAND_HEAD').read_text().strip())
print('CONTRACT', (versions / 'CONTRACT_HEAD').read_text().strip())
with_database, repositories = sys.argv[1] == 'with-database', sys.argv[2:]
for repository in repositories:
    path = pathlib.Path(repository)
    print('KEYS', repository, len(list(path.iterdir())) if path.is_dir() else -1)
    print('KEYDIGEST', repository, *key_digest(repository))
if with_database:
    for name, argv in (('check', ['db_sync', '--check']), ('doctor', ['doctor'])):
        done = subprocess.run(['keystone-manage', *argv], capture_output=True, text=True)
        print(f'BEGIN {name}')
        print(done.stdout + done.stderr)
        print(f'END {name} {done.returncode}')
"""
)


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


@dataclass(frozen=True)
class TargetFacts:
    """The target image and what a throwaway container of it says."""

    image: ImageFacts | None
    # The Keystone release installed in the image, read by running it (the label is only a hint).
    release: str | None = None
    expand_head: str | None = None
    contract_head: str | None = None
    key_files: Mapping[str, int] = field(default_factory=dict)  # repository -> entries (-1: missing)
    key_digests: Mapping[str, str] = field(default_factory=dict)  # repository -> digest of its content
    check: Finished | None = None
    doctor: Finished | None = None
    error: str | None = None

    @property
    def known_release(self) -> str | None:
        """The release the target carries: read by running it, else its label as a hint."""
        if self.release is not None:
            return self.release
        return self.image.keystone_version if self.image is not None else None

    @property
    def heads(self) -> frozenset[str]:
        """The alembic heads a fully migrated database has for the target release."""
        return frozenset(h for h in (self.expand_head, self.contract_head) if h)


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


@dataclass(frozen=True)
class ClusterFacts:
    """Everything preflight and the plan need, observed at one time."""

    nodes: tuple[NodeFacts, ...]
    sockets: tuple[SocketFacts, ...]
    database: DatabaseFacts
    target: TargetFacts
    # Throwaway containers of earlier runs still running (a migration left to finish), per engine.
    throwaways_running: tuple[str, ...] = ()
    # Given haproxy.cfg files without server-state-file / load-server-state-from-file.
    haproxy_configs_losing_states: tuple[str, ...] = ()
    # The probe's login through the load balancer failed (None: it worked, or no probe is given).
    probe_login_error: str | None = None
    # What the throwaway containers get from a node (None: no node container could be read).
    throwaway: ThrowawaySetup | None = None
    # The cache the mounted keystone.conf turns on ([cache] backend, or "enabled"); None: no cache.
    cache_backend: str | None = None

    def node(self, name: str) -> NodeFacts:
        """The facts of the node named ``name``."""
        return next(n for n in self.nodes if n.config.name == name)


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
        if not present and pull_missing and image_source is not None and image_source is not engine:
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
        try:
            release = release_inside(engine, node.container)
        except RunnerError as exc:
            log.info("node %s: reading its release failed: %s", node.name, exc.render())
    if container is not None and container.status == "running" and key_repositories:
        try:
            digests = read_key_digests(engine, node.container, key_repositories)
        except RunnerError as exc:
            key_error = exc.render()
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
        return DatabaseFacts(None, database.alembic_heads(), database.binlog_settings())
    except RunnerError as exc:
        return DatabaseFacts(exc.render())


def throwaway_setup(
    inventory: Inventory, nodes: tuple[NodeFacts, ...], engine_of: Callable[[str], Engine]
) -> ThrowawaySetup:
    """What the throwaway containers get: a node's mounts, volumes, environment, user and command
    with the target configuration on top, run on that node's engine (where its host paths and
    volumes are). The first node on the runner's own engine, else the first node that can be
    read (Kolla's nodes are all ssh:// when the runner is on a deploy host); [target] alone on
    the runner's engine when no node can be read."""
    config = inventory.target_config()
    for node in sorted(nodes, key=lambda n: n.config.engine != LOCAL_ENGINE):
        if node.container is None:
            continue
        try:
            image = engine_of(node.config.engine).image(node.container.image_id)
        except RunnerError:
            continue
        if image is not None:
            return derive_throwaway(node.container.inspect, image.inspect, config, node.config.engine)
    return ThrowawaySetup(config.mounts, config.environment, None, ())


def target_facts(
    inventory: Inventory,
    engine: Engine,
    run_label: Mapping[str, str],
    database_ok: bool,
    *,
    pull_missing: bool = False,
    setup: ThrowawaySetup | None = None,
) -> TargetFacts:
    """The target image's heads, the key repositories it sees, `db_sync --check` and `doctor`,
    in a throwaway container configured as the migrations will be (``setup``): the target
    configuration is checked with the target image before anything changes."""
    setup = setup or ThrowawaySetup(inventory.mounts, inventory.target_config().environment, None, ())
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
        command = [
            "python3",
            "-c",
            FACTS_SCRIPT,
            "with-database" if database_ok else "without-database",
            *inventory.key_repositories,
        ]
        if migrations_style(inventory.migrations, setup.mounts) == MIGRATIONS_KOLLA:
            # Kolla images read their configuration only once kolla_set_configs has copied it into place.
            command = kolla_argv(command)
        inspected = engine.run_once(
            inventory.target_image,
            command,
            mounts=setup.mounts,
            environment=dict(setup.environment),
            labels={**run_label, PURPOSE_LABEL: "facts"},
            user="root",  # key repositories are 0700 keystone: root counts their entries
        )
        facts = parse_facts_output(inspected.output)
        if inspected.exit_code != 0 or facts.expand_head is None:
            return TargetFacts(
                image, error=f"reading the target's migration heads failed:\n{inspected.tail()}"
            )
        return replace(facts, image=image)
    except RunnerError as exc:
        return TargetFacts(image, error=exc.render())


def parse_facts_output(output: str) -> TargetFacts:
    """What FACTS_SCRIPT printed, as TargetFacts without the image."""
    expand_head = contract_head = release = None
    key_files: dict[str, int] = {}
    sections: dict[str, Finished] = {}
    current: str | None = None
    captured: list[str] = []
    for line in output.splitlines():
        parts = line.split()
        if current is not None:
            if parts[:2] == ["END", current] and len(parts) == 3:
                sections[current] = Finished(int(parts[2]), "\n".join(captured))
                current, captured = None, []
            else:
                captured.append(line)
        elif parts[:1] == ["RELEASE"] and len(parts) == 2 and parts[1] != "None":
            release = parts[1]
        elif parts[:1] == ["EXPAND"] and len(parts) == 2:
            expand_head = parts[1]
        elif parts[:1] == ["CONTRACT"] and len(parts) == 2:
            contract_head = parts[1]
        elif parts[:1] == ["KEYS"] and len(parts) == 3:
            key_files[parts[1]] = int(parts[2])
        elif parts[:1] == ["BEGIN"] and len(parts) == 2:
            current = parts[1]
    return TargetFacts(
        None,
        release,
        expand_head,
        contract_head,
        key_files,
        parse_key_digests(output),
        sections.get("check"),
        sections.get("doctor"),
    )

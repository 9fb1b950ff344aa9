"""The target image as a container of it sees things, set up as a node is.

What preflight asks of the target image (its release, its migration heads, what it sees
in the key repositories, `db_sync --check` and `doctor`) is answered in an upgrade's warm
keystone-manage container, else in one throwaway container of the target, each configured
as the migrations will be: a node's mounts, volumes, environment, user and command, with
the target configuration on top.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from runner.background import in_background
from runner.drivers.containers import (
    PURPOSE_LABEL,
    ContainerFacts,
    Engine,
    Finished,
    ImageFacts,
    StillRunning,
)
from runner.drivers.docker_blueprint import ThrowawaySetup, derive_throwaway
from runner.drivers.key_digests import DIGEST_FUNCTION, digests_complete, parse_key_digests
from runner.drivers.keystone_release import RELEASE_FUNCTION
from runner.drivers.warm_keystone import RUN_MANAGE_FUNCTION, STILL_RUNNING, ManageSetup
from runner.errors import RunnerError
from runner.facts.nodes import NodeFacts
from runner.migrations import CHECKS_LOG_TO_OUTPUT, migration_environment, migrations_style, styled_argv
from runner.model import LOCAL_ENGINE, MIGRATIONS_COMMAND, Inventory, NodeConfig
from runner.waits import CONTAINER_EXITED

log = logging.getLogger(__name__)

# keystone-manage ARGV run elsewhere (the warm container); None when it did not run there.
ManageCheck = Callable[[Sequence[str]], Finished | None]
# COMMAND run as root in the warm container (the standard library only); None when it did not run there.
WarmReading = Callable[[Sequence[str]], Finished | None]


@dataclass(frozen=True)
class InWarm:
    """What preflight runs in an upgrade's warm keystone-manage container, once it has begun."""

    manage: ManageCheck  # `db_sync --check` and `doctor`, forked from its imported Keystone
    read: WarmReading  # the target's heads, release and keys: a process, not a container


# A check's bound there: the one its one-shot container has.
CHECK_TIMEOUT_S = CONTAINER_EXITED.timeout_s

# Everything preflight asks of the target image, in one process of a container of it: its
# migration heads, what it sees in the key repositories, and (with the database, in a throwaway)
# `db_sync --check` and `doctor`, each framed by markers.
FACTS_SCRIPT = (
    DIGEST_FUNCTION
    + RELEASE_FUNCTION
    + RUN_MANAGE_FUNCTION
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
    # Keystone is imported once and each command runs in a fork of this process, both at once:
    # a keystone-manage start spends seconds of CPU importing Keystone, CPU the serving nodes share.
    import os, traceback
    sys.stdout.flush()  # a fork inherits unwritten output: it would print it twice
    try:
        from keystone.cmd import manage
    except BaseException:
        manage, import_failure = None, traceback.format_exc()

    def forked(argv):
        read, write = os.pipe()
        pid = os.fork()
        if pid:
            os.close(write)
            return pid, read
        os.close(read)
        os.dup2(write, 1)
        os.dup2(write, 2)
        if manage is None:
            print(import_failure, flush=True)
            os._exit(1)
        os._exit(run_manage(manage, argv))

    started = {name: forked(argv) for name, argv in (('check', ['db_sync', '--check']), ('doctor', ['doctor']))}
    for name, (pid, read) in started.items():
        with os.fdopen(read, errors='replace') as pipe:
            output = pipe.read()
        status = os.waitpid(pid, 0)[1]
        print(f'BEGIN {name}')
        print(output)
        print(f'END {name} {os.waitstatus_to_exitcode(status)}')
"""
)


@dataclass(frozen=True)
class TargetFacts:
    """The target image and what a container of it says (the warm one, or a throwaway)."""

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


def inventory_setup(inventory: Inventory) -> ThrowawaySetup:
    """[target] alone, on the runner's engine: what the throwaways get when no node can be read."""
    config = inventory.target_config()
    return ThrowawaySetup(config.mounts, config.environment, None, ())


def throwaway_environment(setup: ThrowawaySetup) -> tuple[tuple[str, str], ...]:
    """A throwaway's environment: the node's with the target's, and the bounded lock wait. The
    keystone.conf it extends is read on this host: only where the throwaways run here."""
    readable = setup.mounts if setup.engine == LOCAL_ENGINE else ()
    return tuple(sorted({**dict(setup.environment), **migration_environment(readable)}.items()))


def manage_setup(inventory: Inventory, setup: ThrowawaySetup) -> ManageSetup | None:
    """What the schema steps' throwaways will be, built from ``setup`` as the plan builds them: the
    warm keystone-manage container's setup (None: the Kolla way, the image's own start migrates)."""
    if migrations_style(inventory.migrations, setup.mounts) != MIGRATIONS_COMMAND:
        return None
    return ManageSetup(
        setup.engine, inventory.target_image, tuple(setup.mounts), throwaway_environment(setup), setup.user
    )


def node_setup(
    inventory: Inventory,
    node: NodeConfig,
    container: ContainerFacts | None,
    engine_of: Callable[[str], Engine],
) -> ThrowawaySetup | None:
    """A throwaway set up as ``node``'s replacement will run (``container``: the node's now): its
    mounts, volumes, environment, user and command with its target configuration on top, on its
    engine (None: unreadable now)."""
    if container is None:
        return None
    try:
        image = engine_of(node.engine).image(container.image_id)
    except RunnerError:
        return None
    if image is None:
        return None
    own = inventory.target_config(node.name)
    return derive_throwaway(container.inspect, image.inspect, own, node.engine)


def throwaway_setup(
    inventory: Inventory, nodes: tuple[NodeFacts, ...], engine_of: Callable[[str], Engine]
) -> ThrowawaySetup:
    """What the throwaway containers get: a node's setup (``node_setup``), run on that node's
    engine, where its host paths and volumes are. The first node on the runner's own engine, else
    the first node that can be read (Kolla's nodes are all ssh:// when the runner is on a deploy
    host); [target] alone on the runner's engine when no node can be read."""
    for node in sorted(nodes, key=lambda n: n.config.engine != LOCAL_ENGINE):
        setup = node_setup(inventory, node.config, node.container, engine_of)
        if setup is not None:
            return setup
    return inventory_setup(inventory)


def target_facts(
    inventory: Inventory,
    engine: Engine,
    run_label: Mapping[str, str],
    database_ok: bool,
    *,
    pull_missing: bool = False,
    setup: ThrowawaySetup | None = None,
    warm: Callable[[], InWarm | None] | None = None,
) -> TargetFacts:
    """The target image's heads, the key repositories it sees, `db_sync --check` and `doctor`,
    in a container of it configured as the migrations will be (``setup``): the target
    configuration is checked with the target image before anything changes.

    ``warm`` gives, once begun, an upgrade's warm keystone-manage container (set up as the
    migrations are; None: there is none, the Kolla way). Everything is then read there: the heads,
    release and keys by a process started in it (no container created, started and removed while
    the nodes serve), `db_sync --check` and `doctor` beside it, forked from its one Keystone
    import. A reading it did not complete is made in the throwaway after all, checks it did not
    run too; a check it left running is a failed check, the other readings kept.
    """
    setup = setup or inventory_setup(inventory)
    try:
        image = engine.image(inventory.target_image)
    except RunnerError as exc:
        return TargetFacts(None, error=exc.render())
    # Only an upgrade pulls: `plan` must leave the engine's images as they are.
    if image is None and pull_missing and engine.pull(inventory.target_image):
        image = engine.image(inventory.target_image)
    if image is None:
        return TargetFacts(None)
    begun = warm() if warm is not None else None
    run_checks = begun.manage if begun is not None and database_ok else None
    checked = None if run_checks is None else in_background(lambda: _checked_in(run_checks), "target-checks")
    try:
        facts = _read_in_warm(inventory, begun) if begun is not None else None
        if facts is None:
            facts = _read_in_throwaway(inventory, engine, setup, run_label, database_ok and checked is None)
        if checked is not None and facts.error is None:
            answers = checked()
            if answers is None:
                facts = _read_in_throwaway(inventory, engine, setup, run_label, with_database=True)
            else:
                facts = replace(facts, check=answers[0], doctor=answers[1])
    except RunnerError as exc:
        return TargetFacts(image, error=exc.render())
    return replace(facts, image=image)


def _checked_in(checks: ManageCheck) -> tuple[Finished, Finished] | None:
    """`db_sync --check` and `doctor` through ``checks``; None unless both ran there. One left
    running (past its timeout) is a failure of that check, with what the runner was told."""

    def checked(argv: list[str]) -> Finished | None:
        try:
            return checks(argv)
        except StillRunning as exc:
            return Finished(STILL_RUNNING, exc.render())

    check = checked(["db_sync", "--check"])
    if check is not None and check.exit_code == STILL_RUNNING:
        # The warm container was closed with it: doctor is not run anywhere (nor the check again).
        return check, Finished(STILL_RUNNING, "not run: db_sync --check was left running")
    doctor = checked(["doctor"]) if check is not None else None
    return None if check is None or doctor is None else (check, doctor)


def _read_in_warm(inventory: Inventory, begun: InWarm) -> TargetFacts | None:
    """FACTS_SCRIPT, without the database, in the warm container; None unless it read the heads and
    every key repository there: the throwaway then reads them, and its failure is the one told."""
    finished = begun.read(["python3", "-c", FACTS_SCRIPT, "without-database", *inventory.key_repositories])
    if finished is None:
        return None
    facts = parse_facts_output(finished.output)
    # FACTS_SCRIPT prints a repository's entry count before its digest: a digest for each says both.
    if facts.expand_head is None or not digests_complete(finished, inventory.key_repositories):
        # Heads, release and digests only (no key leaves a container): why a throwaway reads them.
        log.info("the warm container did not read the target whole, a throwaway will: %s", finished.tail(3))
        return None
    return facts


def _read_in_throwaway(
    inventory: Inventory,
    engine: Engine,
    setup: ThrowawaySetup,
    run_label: Mapping[str, str],
    with_database: bool,
) -> TargetFacts:
    """FACTS_SCRIPT in a throwaway of the target (``with_database``: `db_sync --check` and
    `doctor` as well), without the image; its error when the heads cannot be read."""
    command = [
        "python3",
        "-c",
        FACTS_SCRIPT,
        "with-database" if with_database else "without-database",
        *inventory.key_repositories,
    ]
    # Kolla images read their configuration only once kolla_set_configs has copied it into place.
    command = styled_argv(migrations_style(inventory.migrations, setup.mounts), command)
    inspected = engine.run_once(
        inventory.target_image,
        command,
        mounts=setup.mounts,
        environment={**dict(setup.environment), **CHECKS_LOG_TO_OUTPUT},
        labels={**run_label, PURPOSE_LABEL: "facts"},
        user="root",  # key repositories are 0700 keystone: root counts their entries
    )
    facts = parse_facts_output(inspected.output)
    if inspected.exit_code != 0 or facts.expand_head is None:
        return TargetFacts(None, error=f"reading the target's migration heads failed:\n{inspected.tail()}")
    return facts


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


def node_target_facts(
    inventory: Inventory,
    nodes: tuple[NodeFacts, ...],
    engine_of: Callable[[str], Engine],
    run_label: Mapping[str, str],
    *,
    database_ok: bool,
) -> tuple[tuple[str, TargetFacts], ...]:
    """Each node with its own configuration ([nodes.target]): the target image checked with it,
    as its replacement will run (`db_sync --check` and `doctor` in a throwaway set up as the node
    is). Nodes whose container or image cannot be read now are left to their own findings."""
    own = {name for name, _ in inventory.node_targets}
    checked = []
    for node in nodes:
        setup = (
            node_setup(inventory, node.config, node.container, engine_of) if node.config.name in own else None
        )
        if setup is not None:
            engine = engine_of(node.config.engine)
            checked.append(
                (node.config.name, target_facts(inventory, engine, run_label, database_ok, setup=setup))
            )
    return tuple(checked)

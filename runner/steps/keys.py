"""Key safety: the key repositories hold the same keys on every node and in the target's throwaway container.

Checked by content (a digest read inside each container), right before the first
node is swapped and right after the last: a node that kept other keys would
issue tokens no other node accepts. (Preflight compared them before expand and
migrate, whose throwaway containers use the same mounts.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from runner.drivers.containers import Finished
from runner.drivers.key_digests import (
    KEY_DIGEST_SCRIPT,
    digests_complete,
    key_differences,
    parse_key_digests,
    short,
)
from runner.errors import DockerError, KeysError
from runner.journal import Event
from runner.migrations import styled_argv
from runner.model import LOCAL_ENGINE, MIGRATIONS_COMMAND, BindMount, NodeConfig
from runner.steps.base import RunContext, Step, StepKind, Undo

THROWAWAY = "the throwaway container"
# Where the throwaway's keys were read (journalled with the digests).
READ_IN_WARM = "the warm keystone-manage container"
READ_IN_OWN = "a container of its own"
# Readings at once: the throwaway and the nodes' execs.
READ_AT_ONCE = 4


@dataclass(frozen=True, kw_only=True)
class KeysAgree(Step):
    """Compare every node's key repositories with each other and with a throwaway container's."""

    kind = StepKind.KEYS
    undo_rule = Undo.NOTHING

    nodes: tuple[NodeConfig, ...]
    repositories: tuple[str, ...]
    image: str  # the target: its throwaway container sees the keys through ``mounts``
    mounts: tuple[BindMount, ...]
    # The node's environment, and whether the Kolla way copies the keys into place first.
    environment: tuple[tuple[str, str], ...] = ()
    migrations: str = MIGRATIONS_COMMAND
    engine: str = LOCAL_ENGINE  # where the throwaway runs: the engine of the node whose setup it copies

    def apply(self, context: RunContext) -> None:
        """Read, journal (short digests only), refuse on any difference."""
        command = ["python3", "-c", KEY_DIGEST_SCRIPT, *self.repositories]
        # Every reading waits on an engine more than it computes: the throwaway's reading and the
        # nodes' execs at once.
        with ThreadPoolExecutor(max_workers=READ_AT_ONCE) as pool:
            throwaway = pool.submit(self._throwaway_reading, context, command)
            read = pool.map(
                lambda node: context.drivers.node_runtime(node).key_digests(self.repositories), self.nodes
            )
            seen = {f"node {node.name}": digests for node, digests in zip(self.nodes, read, strict=True)}
            finished, read_in = throwaway.result()
        if not digests_complete(finished, self.repositories):
            raise DockerError(
                f"the throwaway container of {self.image} could not read the key repositories",
                observed=f"exit code {finished.exit_code}: {finished.tail(5)}",
                hint="check [target] mounts and that the image has python3",
            )
        seen[THROWAWAY] = parse_key_digests(finished.output)
        context.journal.event(
            self.id,
            Event.KEYS_COMPARED,
            digests={holder: short(d) for holder, d in seen.items()},
            throwaway_read_in=read_in,
        )
        differences = key_differences(seen, self.repositories)
        if differences:
            raise KeysError(
                "the key repositories do not hold the same keys on every node",
                observed="; ".join(differences),
                hint="a token one node issues would fail on another: sync the key repositories "
                "(every node and [target] mounts) and run resume; nothing was stopped for this",
            )

    def _throwaway_reading(self, context: RunContext, command: list[str]) -> tuple[Finished, str]:
        """What a throwaway container of the target reads, and where it was read: in the warm
        keystone-manage container when that runs the target with these mounts (a process started
        in a running container, not a container started and removed, between the nodes' swaps),
        else in a container of its own, set up as the migrations' (the Kolla way: after
        kolla_set_configs has copied the keys into place)."""
        warm = context.drivers.keystone_manage
        if warm is not None and self.migrations == MIGRATIONS_COMMAND:
            finished = warm.read(self.engine, self.image, self.mounts, command)
            # A reading that did not finish there (killed, a repository unread) is read again in a
            # container of its own: its failure is then that container's, as the error says.
            if finished is not None and digests_complete(finished, self.repositories):
                return finished, READ_IN_WARM
        finished = context.drivers.engine(self.engine).run_once(
            self.image,
            styled_argv(self.migrations, command),
            mounts=self.mounts,
            environment=dict(self.environment),
            labels=context.labels(self.id),
            user="root",  # key repositories are 0700 keystone: root reads them in any image
        )
        return finished, READ_IN_OWN

"""Typed fakes of the driver ports, for unit tests of steps and the executor (no Docker, no sockets).

Every fake writes what it is asked into one shared ``calls`` list, so a test
can assert the order of effects across drivers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from runner.drivers.backup import BackupManifest
from runner.drivers.containers import ContainerFacts, Finished, ImageFacts, StillRunning
from runner.drivers.database import BinlogSettings, IdleTransaction
from runner.drivers.docker_blueprint import ContainerBlueprint
from runner.drivers.haproxy import HaproxyRuntime
from runner.drivers.key_digests import KEY_DIGEST_SCRIPT
from runner.drivers.ports import Drivers, EffectData
from runner.errors import DockerError
from runner.model import (
    BindMount,
    DatabaseConfig,
    Inventory,
    NodeConfig,
    SecretSource,
    ServerRef,
    TargetConfig,
)
from runner.schema import Schema
from runner.waits import CONTAINER_EXITED, WaitPolicy, WaitTimeout

Calls = list[str]


SAME_KEYS = "a1" * 32  # the digest every node and throwaway shares unless a test says otherwise


class FakeEngine:
    """The local engine: throwaway containers exit with ``exit_code`` and ``output``."""

    endpoint = "local"

    def __init__(self, calls: Calls, exit_code: int = 0, output: str = "done") -> None:
        self.calls = calls
        self.exit_code = exit_code
        self.output = output
        self.commands: list[list[str]] = []
        # What a successful db_sync phase does to the heads of ``database``.
        self.database: FakeDatabase | None = None
        self.moves: dict[str, frozenset[str]] = {}
        # Throwaway containers outlive their wait (a migration longer than its timeout).
        self.outlived = False
        self.running: list[str] = []
        self.cpu_shares: dict[str, int] = {}
        self.cgroups = 1
        self.memory_dirs: list[Mapping[str, int] | None] = []  # each start_detached's

    def ping(self) -> None:
        return None

    def container(self, name: str) -> ContainerFacts | None:
        return None

    def image(self, reference: str) -> ImageFacts | None:
        return None

    def start_detached(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[BindMount],
        labels: Mapping[str, str],
        entrypoint: Sequence[str] | None = None,
        stdin_secret: str | None = None,
        tmpfs: Sequence[str] = (),
        memory_dirs: Mapping[str, int] | None = None,
    ) -> str:
        self.memory_dirs.append(memory_dirs)
        self.calls.append("start " + " ".join(command))
        return f"s-{len(self.calls)}"

    def run_once(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[BindMount],
        labels: Mapping[str, str],
        environment: Mapping[str, str] | None = None,
        user: str | None = None,
        entrypoint: Sequence[str] | None = None,
        policy: WaitPolicy = CONTAINER_EXITED,
        stdin_secret: str | None = None,
        tmpfs: Sequence[str] = (),
        keep_on_timeout: bool = False,
    ) -> Finished:
        self.commands.append(list(command))
        self.calls.append("run " + " ".join(command))
        if self.outlived and keep_on_timeout:
            self.running.append(f"c-{len(self.commands)}")
            raise StillRunning(
                f"throwaway container c-{len(self.commands)} is still running after {policy.timeout_s:.0f}s",
                observed="last lines: ...",
                hint="follow it",
                container_id=f"c-{len(self.commands)}",
            )
        if KEY_DIGEST_SCRIPT in command:  # a key check: the throwaway sees everyone's keys
            lines = [f"KEYDIGEST {r} 2 {SAME_KEYS}" for r in command[command.index(KEY_DIGEST_SCRIPT) + 1 :]]
            return Finished(0, "\n".join(lines))
        if self.exit_code == 0 and self.database is not None and command[-1] in self.moves:
            self.database.heads = self.moves[command[-1]]
        return Finished(self.exit_code, self.output)

    def start_attached(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[BindMount],
        labels: Mapping[str, str],
        environment: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> tuple[str, Callable[[], None]]:
        self.calls.append(f"start attached {image}")
        return "warm", lambda: self.calls.append("end input warm")

    def running_throwaways(self) -> list[str]:
        return list(self.running)

    def exec_output(self, container: str, command: Sequence[str], *, user: str | None = None) -> Finished:
        return Finished(1, "")

    def output_tail(self, container: str, lines: int) -> str:
        return ""

    def pull(self, reference: str) -> bool:
        return False

    def save_image(self, reference: str) -> Iterator[bytes]:
        self.calls.append(f"save {reference}")
        yield from (b"layer-1", b"layer-2")

    def load_image(self, archive: Iterable[bytes]) -> None:
        self.calls.append(f"load {sum(len(chunk) for chunk in archive)} bytes")

    def stop(self, container: str, timeout_s: int) -> None:
        return None

    def rename(self, container: str, new_name: str) -> None:
        return None

    def create_and_start(self, blueprint: ContainerBlueprint) -> str:
        return "new"

    def create(self, blueprint: ContainerBlueprint) -> str:
        return "new"

    def start(self, container: str) -> None:
        return None

    def set_cpu_shares(self, container: str, shares: int) -> None:
        self.cpu_shares[container] = shares

    def cgroup_version(self) -> int:
        return self.cgroups

    def remove(self, container: str) -> None:
        return None


class FakeDatabase:
    """Heads move as db_sync phases are run by the fake engine (see ``heads_after``)."""

    def __init__(self, calls: Calls, heads: frozenset[str], trust: bool = False) -> None:
        self.calls = calls
        self.heads = heads
        self.trust = trust

    def alembic_heads(self) -> frozenset[str]:
        return self.heads

    def binlog_settings(self) -> BinlogSettings:
        return BinlogSettings(log_bin=True, trust_function_creators=self.trust, user_has_super=False)

    def set_trust_function_creators(self, value: bool) -> None:
        self.calls.append(f"trust {int(value)}")
        self.trust = value

    def idle_transactions(self, user: str, min_idle_s: int) -> list[IdleTransaction]:
        return []

    def kill_connections(self, ids: list[int]) -> None:
        self.calls.append(f"kill {ids}")

    def table_row_counts(self) -> dict[str, int]:
        return {}

    def schema(self) -> Schema:
        return Schema({})

    def table_names(self) -> frozenset[str]:
        return frozenset({"alembic_version", "user"})

    @contextmanager
    def advisory_lock(self, name: str) -> Iterator[bool]:
        yield True


class FakeRotation:
    """HAProxy as the steps see it; ``stuck`` servers never drain, ``down`` ones never come UP."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.stuck: set[ServerRef] = set()
        self.down: set[ServerRef] = set()
        # HAProxy reloaded without saved states this many times, each right after a maint.
        self.reloads_after_maint = 0
        self.forgotten: set[ServerRef] = set()

    def _names(self, servers: tuple[ServerRef, ...]) -> str:
        return ",".join(sorted({s.server for s in servers}))

    def drain(self, servers: tuple[ServerRef, ...]) -> None:
        self.calls.append(f"drain {self._names(servers)}")

    def wait_drained(self, servers: tuple[ServerRef, ...], timeout_s: float) -> list[str]:
        self.calls.append(f"wait-drained {self._names(servers)}")
        if self.stuck & set(servers):
            raise WaitTimeout(WaitPolicy("drained", timeout_s, 0.1), "1 session")
        return []

    def maint(self, servers: tuple[ServerRef, ...]) -> None:
        self.calls.append(f"maint {self._names(servers)}")
        self.forgotten -= set(servers)
        if self.reloads_after_maint > 0:
            self.reloads_after_maint -= 1
            self.forgotten |= set(servers)

    def lost(self, servers: tuple[ServerRef, ...], state: str) -> list[str]:
        return [f"{s} is not in {state}" for s in servers if s in self.forgotten]

    def keep(self, servers: tuple[ServerRef, ...], state: str) -> list[str]:
        notes = self.lost(servers, state)
        if notes:
            self.calls.append(f"keep-{state} {self._names(servers)}")
            self.forgotten -= set(servers)
        return notes

    def ready(self, servers: tuple[ServerRef, ...]) -> None:
        self.calls.append(f"ready {self._names(servers)}")

    def wait_up(self, servers: tuple[ServerRef, ...]) -> None:
        self.calls.append(f"wait-up {self._names(servers)}")

    def not_up(self, servers: tuple[ServerRef, ...]) -> list[ServerRef]:
        return [s for s in servers if s in self.down]


@dataclass
class FakeNode:
    """A node whose release follows what was started on it."""

    node: NodeConfig
    calls: Calls
    release: str
    target_release: str
    old_release: str
    fail_start: bool = False
    fail_restore: bool = False
    # The runner dies (KeyboardInterrupt here) in this call, after it reached the engine.
    killed_in: str | None = None
    # Key repository -> digest where this node's keys differ from everyone's ("same").
    keys: dict[str, str] = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)
    # The release reads that find nothing (None) or fail (DockerError) before one answers.
    unreadable: list[str | None] = field(default_factory=list)
    # Its health URL answers 503 until its release has been read (a gate that reads it only once
    # the node answers waits forever).
    answers_once_read: bool = False

    def stop(self) -> EffectData:
        self.calls.append(f"stop {self.node.name}")
        return {
            "container_id": f"id-{self.node.name}",
            "image": f"image-{self.release}",
            "image_id": "sha256:0",
        }

    def set_aside(self, kept_as: str) -> EffectData:
        self.calls.append(f"set-aside {self.node.name}")
        self.kept.add(kept_as)
        if self.killed_in == "set_aside":
            raise KeyboardInterrupt
        return {"old_name": kept_as, "container_id": f"id-{self.node.name}"}

    def start_target(self, image: str, kept_as: str, config: TargetConfig | None = None) -> EffectData:
        self.calls.append(f"start-target {self.node.name}")
        if self.fail_start:
            raise DockerError(f"cannot create {self.node.container} from {image}")
        self.release = self.target_release
        return {"container_id": f"new-{self.node.name}", "image": image}

    def full_cpu(self, kept_as: str) -> EffectData:
        self.calls.append(f"full-cpu {self.node.name}")
        return {"cpu_shares": 1024}

    def restore_old(self, kept_as: str) -> EffectData:
        self.calls.append(f"restore-old {self.node.name}")
        if self.fail_restore:
            raise DockerError(f"cannot rename {kept_as} to {self.node.container}")
        self.kept.discard(kept_as)
        self.release = self.old_release
        return {"container_id": f"id-{self.node.name}"}

    def discard_old(self, kept_as: str) -> bool:
        self.calls.append(f"discard-old {self.node.name}")
        found = kept_as in self.kept
        self.kept.discard(kept_as)
        return found

    def running_release(self) -> str | None:
        self.calls.append(f"release {self.node.name}")
        if self.unreadable:
            if (failure := self.unreadable.pop(0)) is not None:
                raise DockerError(failure)
            return None
        return self.release

    def health(self) -> int:
        self.calls.append(f"health {self.node.name}")
        if self.answers_once_read and f"release {self.node.name}" not in self.calls:
            return 503
        return 200

    def key_digests(self, repositories: tuple[str, ...]) -> dict[str, str]:
        return {r: self.keys.get(r, SAME_KEYS) for r in repositories}

    def output_tail(self, lines: int) -> str:
        return f"last {lines} lines of {self.node.name}"


class FakeHttp:
    def get_status(self, url: str, timeout_s: float) -> int:
        return 200


class FakeBackups:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def load(self, image: str, dump: Path, sha256: str, labels: dict[str, str]) -> dict[str, int]:
        self.calls.append(f"load {dump.name}")
        return {"user": 1}

    def begin(
        self, image: str, directory: Path, labels: dict[str, str], *, restore_check: bool = True
    ) -> None:
        self.calls.append("begin backup")

    def abandon(self) -> None:
        self.calls.append("abandon backup")

    def take(
        self,
        image: str,
        directory: Path,
        labels: dict[str, str],
        *,
        restore_check: bool = True,
        release: str | None = None,
        node_images: dict[str, str] | None = None,
        node_image_ids: dict[str, str] | None = None,
    ) -> BackupManifest:
        self.calls.append("backup")
        return BackupManifest(str(directory / "dump.sql.gz"), "0" * 64, 10, "keystone", {"user": 1}, 0.0, 1.0)


class FakeTokens:
    """Tokens as nodes share them; a node in ``foreign`` signs with keys nobody else has."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.foreign: set[str] = set()  # base URLs

    def issue(self, base_url: str) -> str:
        self.calls.append(f"{base_url} issues a token")
        return f"token@{base_url}"

    def validate(self, base_url: str, auth_token: str, subject_token: str) -> int:
        self.calls.append(f"{base_url} validates a token")
        issuer = subject_token.removeprefix("token@")
        return 404 if issuer != base_url and {issuer, base_url} & self.foreign else 200


@dataclass
class FakeCluster:
    """Every fake, wired into ``Drivers`` as ``upgrade.connect`` wires the real ones."""

    nodes: dict[str, FakeNode]
    calls: Calls
    engine: FakeEngine
    database: FakeDatabase
    admin: FakeDatabase
    rotation: FakeRotation
    tokens: FakeTokens

    def drivers(self) -> Drivers:
        runtimes: tuple[HaproxyRuntime, ...] = ()
        return Drivers(
            engines={"local": self.engine},
            runtimes=runtimes,
            rotation=self.rotation,
            database=self.database,
            admin_database=self.admin,
            http=FakeHttp(),
            node_runtime=lambda node: self.nodes[node.name],
            backups=FakeBackups(self.calls),
            tokens=self.tokens,
        )


def gates_in_order(calls: Calls) -> Calls:
    """``calls`` with each node's release read put after its health check: a gate reads the release
    while the node boots, beside the health checks, so the two come in either order."""
    ordered = list(calls)
    for i in range(len(ordered) - 1):
        first, second = ordered[i], ordered[i + 1]
        if first.startswith("release ") and second == "health " + first.removeprefix("release "):
            ordered[i], ordered[i + 1] = second, first
    return ordered


def fake_cluster(
    nodes: tuple[NodeConfig, ...],
    heads: frozenset[str],
    moves: dict[str, frozenset[str]],
    old: str = "28.1.0",
    new: str = "29.1.0",
) -> FakeCluster:
    """Fakes for ``nodes`` all running ``old``, the database at ``heads``; ``moves``: phase -> heads after."""
    calls: Calls = []
    engine, database = FakeEngine(calls), FakeDatabase(calls, heads)
    engine.database, engine.moves = database, moves
    return FakeCluster(
        nodes={n.name: FakeNode(n, calls, old, new, old) for n in nodes},
        calls=calls,
        engine=engine,
        database=database,
        admin=FakeDatabase(calls, heads),
        rotation=FakeRotation(calls),
        tokens=FakeTokens(calls),
    )


def target_inventory() -> Inventory:
    """An inventory with a target image (ks:29) and nothing else to speak of."""
    return Inventory(
        path=Path("inventory.toml"),
        database=DatabaseConfig("127.0.0.1", 3306, "keystone", "keystone", SecretSource("PW", None)),
        target_image="ks:29",
        backup_image="db:1",
        mounts=(),
        key_repositories=(),
        haproxy_sockets=(),
        nodes=(),
        state_dir=Path("state"),
        backup_dir=Path("state/backups"),
    )

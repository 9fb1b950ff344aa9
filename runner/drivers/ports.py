"""The side effects the runner has, each behind a Protocol: what steps and facts are written against.

A node that is a Docker container is one ``NodeRuntime``; a systemd unit, a
Kolla container or a package install is another implementation of the same
Protocol. HAProxy is reached through ``Rotation`` (every socket, every backend
of a node at once), the database through ``Database``, health URLs through
``Http``. Unit tests pass typed fakes of these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runner.drivers.backup import BackupManifest
from runner.drivers.containers import Engine, Finished
from runner.drivers.database import BinlogSettings, IdleTransaction
from runner.drivers.haproxy import HaproxyRuntime
from runner.drivers.warm_keystone import ManageSetup
from runner.model import BindMount, NodeConfig, ServerRef, TargetConfig
from runner.schema import Schema

# What an effect on a node reports for the journal (container ids, names, versions).
EffectData = dict[str, Any]


class Http(Protocol):
    """Plain HTTP GETs (health URLs). Network failures raise OSError (requests' errors are OSErrors)."""

    def get_status(self, url: str, timeout_s: float) -> int: ...


class Database(Protocol):
    """Keystone's database, as the runner reads and (rarely) changes it."""

    def table_names(self) -> frozenset[str]: ...
    def alembic_heads(self) -> frozenset[str]: ...
    def binlog_settings(self) -> BinlogSettings: ...
    def set_trust_function_creators(self, value: bool) -> None: ...
    def idle_transactions(self, user: str, min_idle_s: int) -> list[IdleTransaction]: ...
    def kill_connections(self, ids: list[int]) -> None: ...
    def table_row_counts(self) -> dict[str, int]: ...
    def schema(self) -> Schema: ...
    def advisory_lock(self, name: str) -> AbstractContextManager[bool]: ...


class Backups(Protocol):
    """Where the verified dump before any schema change comes from."""

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
    ) -> BackupManifest: ...
    def load(self, image: str, dump: Path, sha256: str, labels: dict[str, str]) -> dict[str, int]: ...
    def begin(
        self, image: str, directory: Path, labels: dict[str, str], *, restore_check: bool = True
    ) -> None:
        """Start, while preflight reads, the dump a later ``take`` with the same image, directory
        and restore check adopts."""
        ...

    def abandon(self) -> None:
        """The dump ``begin`` started and no ``take`` adopted: waited for, and all it wrote removed."""
        ...


class NodeRuntime(Protocol):
    """One Keystone node's lifecycle: how it is stopped, replaced, brought back and asked.

    The old node is *set aside* (kept, not destroyed) until cleanup, so that it
    can be brought back exactly as it was. ``restore_old`` and ``discard_old``
    are safe to repeat and work from any point of a swap; the others act once.
    """

    node: NodeConfig

    def stop(self) -> EffectData:
        """Stop the node's current process or container."""
        ...

    def set_aside(self, kept_as: str) -> EffectData:
        """Keep the stopped old node under ``kept_as`` so that its replacement can take its place."""
        ...

    def start_target(self, image: str, kept_as: str, config: TargetConfig | None = None) -> EffectData:
        """Start the node on ``image``, configured as the node kept as ``kept_as`` was."""
        ...

    def full_cpu(self, kept_as: str) -> EffectData:
        """Give the started replacement the CPU weight the old node had (it boots at a low one)."""
        ...

    def restore_old(self, kept_as: str) -> EffectData:
        """Remove the replacement, give the old node its place back and start it."""
        ...

    def discard_old(self, kept_as: str) -> bool:
        """Remove the old node kept for rollback; False when there was none."""
        ...

    def running_release(self) -> str | None:
        """The Keystone release the node runs now, asked inside it; None when it does not run."""
        ...

    def health(self) -> int:
        """The HTTP status of the node's health URL (raises OSError when it does not answer)."""
        ...

    def key_digests(self, repositories: tuple[str, ...]) -> dict[str, str]:
        """Each key repository's content digest, read inside the running node (the keys stay there)."""
        ...

    def output_tail(self, lines: int) -> str:
        """The last lines the node's container wrote (empty when they cannot be read)."""
        ...


class Tokens(Protocol):
    """Keystone tokens asked of one node directly (its base URL), with the probe's credentials.

    Requests' errors (network, HTTP status) are OSErrors and are raised as they are;
    credentials refused on ``issue`` are a PermissionError.
    """

    def issue(self, base_url: str) -> str: ...
    def validate(self, base_url: str, auth_token: str, subject_token: str) -> int: ...


class KeystoneManage(Protocol):
    """keystone-manage forked in a warm container of the target (Keystone imported once, beside
    preflight), for commands whose own container would have been set up as it was."""

    def begin(self, setup: ManageSetup, labels: Mapping[str, str]) -> None:
        """Start the warm container for ``setup``; never raises (without one, ``run`` says None)."""
        ...

    def run(
        self,
        setup: ManageSetup,
        argv: Sequence[str],
        timeout_s: float,
        environment: Mapping[str, str] | None = None,
    ) -> Finished | None:
        """The command's exit and output, ``environment`` over the container's; None when it did
        not run (run it in a container of its own); StillRunning past ``timeout_s``."""
        ...

    def read(
        self, engine: str, image: str, mounts: Sequence[BindMount], command: Sequence[str]
    ) -> Finished | None:
        """``command`` (a reading, no keystone-manage) run as root in the warm container when it runs
        ``image`` on ``engine`` with ``mounts``; None when it did not run there (run it in a
        container of its own)."""
        ...

    def close(self, *, wait: bool = True) -> None:
        """The warm container ends (after the command it runs, never killed); ``wait``: an idle one
        is waited for until it is gone."""
        ...


class Cache(Protocol):
    """The cache Keystone's nodes share (memcached), emptied once the schema has changed.

    A server that does not answer, or refuses, raises a CacheError naming it.
    """

    def flush_all(self, server: str) -> None: ...


class Rotation(Protocol):
    """A node's place in the load balancers: every HAProxy, every backend/server pair of the node.

    Waits raise ``runner.waits.WaitTimeout`` with what they last saw; the step
    that waited says what that means. A state HAProxy forgot (a reload without
    saved server states) is found by ``lost`` and set again by ``keep``, which
    say where, for the journal.
    """

    def drain(self, servers: tuple[ServerRef, ...]) -> None: ...
    def wait_drained(self, servers: tuple[ServerRef, ...], timeout_s: float) -> list[str]: ...
    def maint(self, servers: tuple[ServerRef, ...]) -> None: ...
    def lost(self, servers: tuple[ServerRef, ...], state: str) -> list[str]: ...
    def keep(self, servers: tuple[ServerRef, ...], state: str) -> list[str]: ...
    def ready(self, servers: tuple[ServerRef, ...]) -> None: ...
    def wait_up(self, servers: tuple[ServerRef, ...]) -> None: ...
    def not_up(self, servers: tuple[ServerRef, ...]) -> list[ServerRef]: ...


@dataclass(frozen=True)
class Drivers:
    """Everything with side effects, handed in so tests and other deployments can replace it."""

    engines: Mapping[str, Engine]  # by inventory endpoint ("local", "ssh://..."); "local" runs throwaways
    runtimes: tuple[HaproxyRuntime, ...]
    rotation: Rotation
    database: Database
    # Only when the inventory gives [database.admin]: sets the trust setting, ends idle sessions.
    admin_database: Database | None
    http: Http
    node_runtime: Callable[[NodeConfig], NodeRuntime]
    backups: Backups
    # Only when the inventory gives probe credentials: the token gate of each node.
    tokens: Tokens | None = None
    # Keystone's memcached servers, flushed after contract when [cache] flush_after_upgrade asks.
    cache: Cache | None = None
    # Only an upgrade's: keystone-manage forked in a warm container begun beside preflight.
    keystone_manage: KeystoneManage | None = None

    def engine(self, endpoint: str) -> Engine:
        """The engine of a node (or "local" for throwaway containers)."""
        return self.engines[endpoint]

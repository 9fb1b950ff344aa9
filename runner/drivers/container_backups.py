"""The ``Backups`` port on a container engine, and the dump started while preflight reads the cluster.

A dump only reads the database, so it need not wait for preflight's verdict: ``begin``
starts it beside preflight's readings, and the backup step adopts it when it is the same
dump (image, directory, restore check) and recent. Refused, declined or stale, it is
removed with everything it wrote: nothing of it is left behind.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runner.background import in_background
from runner.drivers.backup import BackupManifest, dump_verified, load_backup, write_manifest
from runner.drivers.containers import Engine
from runner.model import DatabaseTarget

log = logging.getLogger(__name__)

# An early dump older than this when the backup step starts (an operator who took time to
# confirm) is not "the state just before the schema changes": it is removed and taken again.
EARLY_DUMP_FRESH_S = 60.0


@dataclass(frozen=True)
class _EarlyDump:
    """A dump started before its step: what it is, where it writes, and its result when done."""

    image: str
    directory: Path
    restore_check: bool
    created: Path  # the first directory it made: removed whole when the dump is not used
    started: float  # time.monotonic()
    result: Callable[[], BackupManifest]

    def is_for(self, image: str, directory: Path, restore_check: bool) -> bool:
        """Whether the step asks for this very dump."""
        return (image, directory, restore_check) == (self.image, self.directory, self.restore_check)

    def fresh(self) -> bool:
        """Started recently enough to stand for the database right before the schema changes."""
        return time.monotonic() - self.started <= EARLY_DUMP_FRESH_S

    def discard(self) -> None:
        """Waited for (its containers end with it), then everything it wrote removed."""
        try:
            self.result()
        except Exception:  # a dump that failed is removed all the same; its step takes its own
            log.debug("the dump started beside preflight failed; removed unused", exc_info=True)
        shutil.rmtree(self.created, ignore_errors=True)


def _first_missing(directory: Path) -> Path | None:
    """The outermost directory on the way to ``directory`` that does not exist (None: it exists)."""
    if directory.exists():
        return None
    created = directory
    while not created.parent.exists():
        created = created.parent
    return created


class ContainerBackups:
    """The ``Backups`` port: dumps taken (and loaded back) by a throwaway container of the backup image.

    ``admin`` ([database.admin]) loads a dump where given: its triggers need more than Keystone's account.
    """

    def __init__(self, engine: Engine, target: DatabaseTarget, admin: DatabaseTarget | None = None):
        self.engine = engine
        self.target = target
        self.admin = admin
        self._early: _EarlyDump | None = None

    def load(self, image: str, dump: Path, sha256: str, labels: dict[str, str]) -> dict[str, int]:
        """The database replaced by ``dump``, checked; its rows per table."""
        return load_backup(
            self.engine,
            image,
            target=self.target,
            account=self.admin or self.target,
            dump=dump,
            sha256=sha256,
            labels=labels,
        )

    def begin(
        self, image: str, directory: Path, labels: dict[str, str], *, restore_check: bool = True
    ) -> None:
        """Start the dump ``take`` will ask for now, in the background (a directory that exists
        already: not started, ``take`` dumps then)."""
        self.abandon()
        created = _first_missing(directory)
        if created is None:
            return  # not this run's own directory: nothing may be removed from it later
        self._early = _EarlyDump(
            image,
            directory,
            restore_check,
            created,
            time.monotonic(),
            in_background(
                lambda: dump_verified(
                    self.engine, image, self.target, directory, labels, restore_check=restore_check
                ),
                "early-backup",
            ),
        )

    def abandon(self) -> None:
        """The dump ``begin`` started, if ``take`` did not adopt it: waited for and removed."""
        early, self._early = self._early, None
        if early is not None:
            early.discard()

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
        """A verified dump of the database in ``directory`` (restored once to record what it holds):
        the one ``begin`` started when it is this one and recent, else one taken now."""
        early, self._early = self._early, None
        if early is not None and early.is_for(image, directory, restore_check) and early.fresh():
            dumped = early.result()  # its failure is this step's, as a dump taken now would be
        else:
            if early is not None:
                early.discard()
            dumped = dump_verified(
                self.engine, image, self.target, directory, labels, restore_check=restore_check
            )
        return write_manifest(dumped, release=release, node_images=node_images, node_image_ids=node_image_ids)

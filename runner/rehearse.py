"""Proof before production, on copies: the drift check and the rehearsal. The live cluster is only read.

``drift`` compares the live schema with the one the running release's own
migrations build (runner/facts/drift.py). ``rehearse`` loads a verified backup
into a scratch database, checks that it restored (rows and CHECKSUM TABLE
against the backup's manifest), runs every migration phase of the target on
the copy, timed, checks the heads and the schema against what the target
builds from nothing, and removes the copy.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.drivers.backup import checked_manifest, newest_dump, require_faithful
from runner.drivers.containers import RUN_ID_LABEL
from runner.drivers.database import MysqlDatabase
from runner.drivers.ports import Drivers
from runner.drivers.scratch_database import keystone_manage, scratch_database
from runner.errors import BackupError, MigrationError
from runner.facts import node_facts
from runner.facts.drift import DriftFacts, cached_reference, drift_facts, reference_cache_dir
from runner.model import LOCAL_ENGINE, Inventory
from runner.schema import schema_differences

PHASES = ("--expand", "--migrate", "--contract")


def run_drift(inventory: Inventory, drivers: Drivers, accepted: tuple[str, ...] = ()) -> DriftFacts:
    """The live schema against the running release's own; reads the nodes and the database only."""
    nodes = tuple(
        node_facts(node, drivers.engine(node.engine), drivers.http, inventory.target_image)
        for node in inventory.nodes
    )
    return drift_facts(
        nodes,
        drivers.database,
        drivers.engine(LOCAL_ENGINE),
        inventory.backup_image,
        {RUN_ID_LABEL: "drift"},
        accepted=accepted,
    )


@dataclass(frozen=True)
class PhaseTiming:
    """One migration phase run on the copy."""

    image: str
    phase: str
    seconds: float
    exit_code: int


@dataclass(frozen=True)
class Rehearsal:
    """What a rehearsal did and found."""

    dump: str
    restored_tables: int
    restore_seconds: float
    phases: tuple[PhaseTiming, ...] = ()
    heads: tuple[str, ...] = ()
    target_heads: tuple[str, ...] = ()
    # Differences between the migrated copy and what the target's migrations build from nothing.
    schema_differences: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (rehearse --json)."""
        return asdict(self)


def run_rehearsal(
    inventory: Inventory,
    drivers: Drivers,
    *,
    dump: Path | None = None,
    from_live: bool = False,
    keep_dump: bool = False,
    images: tuple[str, ...] = (),
) -> Rehearsal:
    """Restore a backup into a scratch database, check it, migrate it through ``images`` (default: the
    target), check heads and schema, remove it. Raises BackupError / MigrationError with the output.

    ``from_live``: dump the live database first, into the state directory; the dump (the whole
    database, password hashes included) is removed afterwards unless ``keep_dump``."""
    labels = {RUN_ID_LABEL: f"rehearse-{int(time.time())}"}
    if not from_live:
        return _rehearse(inventory, drivers, dump or newest_dump(inventory.backup_dir), labels, images)
    directory = inventory.state_dir / "rehearsals" / labels[RUN_ID_LABEL]
    try:
        taken = drivers.backups.take(inventory.backup_image, directory, labels)
        return _rehearse(inventory, drivers, Path(taken.dump), labels, images)
    finally:
        if not keep_dump:
            shutil.rmtree(directory, ignore_errors=True)


def _rehearse(
    inventory: Inventory, drivers: Drivers, dump: Path, labels: dict[str, str], images: tuple[str, ...]
) -> Rehearsal:
    engine = drivers.engine(LOCAL_ENGINE)
    manifest = checked_manifest(dump)
    if not manifest.restored_rows:
        raise BackupError(
            f"the backup {dump} records nothing to check a restore against",
            observed="its manifest has no restored rows or checksums (taken with backup_restore_check = "
            "false, or by --cold, which skips it to keep the outage short)",
            hint="rehearse with --from-live, or with a backup taken with [run] backup_restore_check = true",
        )
    started = time.monotonic()
    with scratch_database(
        engine, inventory.backup_image, labels, database=manifest.database, dumps=dump.parent
    ) as scratch:
        scratch.load(dump.name)
        copy = MysqlDatabase(scratch.target)
        rows, checksums = copy.table_row_counts(), copy.table_checksums()
        require_faithful(
            manifest,
            rows,
            checksums,
            what=f"the backup {dump} did not restore to what it held when it was taken",
            hint="do not rely on this backup: take a new one and rehearse again",
        )
        restored_s = time.monotonic() - started
        timings = []
        for image in images or (inventory.target_image,):
            for phase in PHASES:
                began = time.monotonic()
                finished = keystone_manage(scratch, image, ["db_sync", phase], labels)
                timings.append(
                    PhaseTiming(image, phase, round(time.monotonic() - began, 2), finished.exit_code)
                )
                if finished.exit_code != 0:
                    raise MigrationError(
                        f"the rehearsal failed: db_sync {phase} of {image} on the restored copy exited "
                        f"{finished.exit_code}",
                        observed=f"steps so far: {_timings(timings)}\nlast lines:\n{finished.tail()}",
                        hint="the live cluster is untouched; fix the cause before upgrading",
                    )
        heads, schema = copy.alembic_heads(), copy.schema()
    final = (images or (inventory.target_image,))[-1]
    reference = cached_reference(engine, final, inventory.backup_image, labels, reference_cache_dir())
    differences = tuple(d.describe() for d in schema_differences(reference.schema, schema))
    rehearsal = Rehearsal(
        dump=str(dump),
        restored_tables=len(rows),
        restore_seconds=round(restored_s, 2),
        phases=tuple(timings),
        heads=tuple(sorted(heads)),
        target_heads=tuple(sorted(reference.heads)),
        schema_differences=differences,
    )
    if heads != reference.heads or differences:
        raise MigrationError(
            f"the rehearsal's migrated copy is not what {final} builds from nothing",
            observed=f"heads {sorted(heads)}, expected {sorted(reference.heads)}; "
            + ("; ".join(differences) or "schema the same"),
            hint="the live schema drifted or a migration misbehaves: run keystone-upgrade drift before upgrading",
        )
    return rehearsal


def _timings(timings: list[PhaseTiming]) -> str:
    return ", ".join(f"{t.phase} {t.seconds:.1f}s (exit {t.exit_code})" for t in timings)

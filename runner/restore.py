"""Restore: the cold way back to a verified backup, for when contract has run and rollback cannot help.

Before anything changes the backup is proven: its dump is the one that was
taken (sha256), and loaded into a scratch database it holds what its manifest
says (rows, CHECKSUM TABLE). The operator is told what will be lost: how long
ago it was taken, and the tables whose rows differ now. Then every node goes
out of rotation and stops, the database is replaced by the dump, and every
node starts on the image it ran when the backup was taken, gated on that
release, and goes back into rotation; journalled like any run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runner.drivers.backup import (
    BackupManifest,
    checked_manifest,
    newest_dump,
    require_faithful,
    restored_contents,
)
from runner.drivers.containers import RUN_ID_LABEL
from runner.drivers.ports import Drivers
from runner.errors import ConfigError, PreflightError
from runner.facts.gather import gather_facts
from runner.interrupts import stop_requests
from runner.journal import new_run_id
from runner.model import LOCAL_ENGINE, Inventory
from runner.plan import Plan, backup_of_serving, build_plan
from runner.plan_offline import restore_plan
from runner.upgrade import hold_run_lock, run_plan


@dataclass(frozen=True)
class Loss:
    """What a restore throws away: everything written after the backup was taken."""

    taken_at: float
    age_s: float
    changed_tables: tuple[str, ...]  # "table: N rows in the backup, M now"

    def describe(self) -> str:
        """One paragraph for the confirmation."""
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.taken_at))
        tables = (
            "; ".join(self.changed_tables) or "no table's row count differs (changed rows may still be lost)"
        )
        return (
            f"the database goes back to {when} ({self.age_s / 60:.0f} minutes ago): every write since "
            f"then is lost (users, projects, role assignments, credentials, application credentials, "
            f"trusts). Row counts that differ now: {tables}"
        )


def _backup(inventory: Inventory, dump: Path | None) -> tuple[Path, BackupManifest]:
    if dump is None:
        dump = newest_dump(inventory.backup_dir)
    manifest = checked_manifest(dump)
    if not manifest.node_images or manifest.release is None:
        raise ConfigError(
            f"the backup {dump} does not say which release served on it; nothing was changed",
            observed="its manifest has no release or node images (taken by an older keystone-upgrade)",
            hint="restore it by hand (the README's restore section), or use a backup taken by this version",
        )
    return dump, manifest


def plan_restore(inventory: Inventory, drivers: Drivers, dump: Path | None) -> tuple[Plan, Loss]:
    """The restore's plan and what it would lose; BackupError or PreflightError before any change."""
    dump, manifest = _backup(inventory, dump)
    missing = [n.name for n in inventory.nodes if n.name not in manifest.node_images]
    if missing or manifest.database != inventory.database.name:
        raise PreflightError(
            f"the backup {dump} is not of this cluster; nothing was changed",
            observed=f"database {manifest.database!r} (the inventory's: {inventory.database.name!r}); "
            f"nodes it knows: {', '.join(manifest.node_images)}; not in it: {', '.join(missing) or 'none'}",
            hint="give --dump a backup this inventory's cluster took",
        )
    engine = drivers.engine(LOCAL_ENGINE)
    for node in inventory.nodes:
        image = manifest.node_images[node.name]
        found = drivers.engine(node.engine).image(image)
        served = manifest.node_image_ids.get(node.name)
        if found is None or (served is not None and found.id != served):
            raise PreflightError(
                f"node {node.name}: the image that served when the backup was taken is not on its engine; "
                "nothing was changed",
                observed=f"{image} on engine {node.engine}: "
                + ("missing" if found is None else f"now {found.id}, then {served}"),
                hint=f"load the image {served or image} there (the same build, not only the same tag)",
            )
    if manifest.restored_rows:
        labels = {RUN_ID_LABEL: "restore-check"}
        rows, checksums = restored_contents(engine, inventory.backup_image, dump, manifest.database, labels)
        require_faithful(
            manifest,
            rows,
            checksums,
            what=f"the backup {dump} does not restore to what it held when it was taken; nothing was changed",
            hint="do not restore it: use another verified backup (--dump)",
        )
    facts = gather_facts(inventory, drivers)
    template = build_plan(inventory, facts, run_id=new_run_id())
    plan = restore_plan(
        template,
        backup_image=inventory.backup_image,
        dump=str(dump),
        sha256=manifest.sha256,
        images=manifest.node_images,
        release=manifest.release,
        safety=backup_of_serving(
            inventory,
            facts,
            "backup",
            str(inventory.backup_dir / template.run_id),
            "a dump of the database as it is now, before the restore replaces it",
        ),
    )
    live = drivers.database.table_row_counts()
    before = manifest.restored_rows or manifest.tables
    changed = tuple(
        f"{table}: {before.get(table)} in the backup, {live.get(table)} now"
        for table in sorted(set(before) | set(live))
        if before.get(table) != live.get(table)
    )
    # The dump is the database as it was when it started (one transaction): later writes are lost.
    loss = Loss(manifest.started_at, time.time() - manifest.started_at, changed)
    sources = tuple(sorted({n.known_release or "unknown" for n in facts.nodes if n.container}))
    return replace(plan, source_versions=sources), loss


def run_restore(
    inventory: Inventory,
    drivers: Drivers,
    confirm: Callable[[Plan, Loss], bool],
    on_report: Callable[[dict[str, Any], Path], None],
    *,
    dump: Path | None = None,
) -> Plan:
    """Under the run lock: plan, confirm (naming the loss), execute, report."""
    with ExitStack() as stack:
        stop = stack.enter_context(stop_requests())
        hold_run_lock(stack, drivers)
        plan, loss = plan_restore(inventory, drivers, dump)
        if not confirm(plan, loss):
            return plan
        run_plan(plan, inventory, drivers, stop=stop, on_report=on_report)
        return plan

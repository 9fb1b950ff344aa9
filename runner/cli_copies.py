"""The commands around backups and copies: drift and rehearse (they change nothing live), and restore."""

from __future__ import annotations

from pathlib import Path

import click

from runner.cli_options import accept_drift_option, inventory_option, json_option
from runner.cli_render import confirmed, render_plan, run_document, show_report
from runner.config import load_inventory
from runner.credentials import require_secrets
from runner.errors import DriftError
from runner.plan import Plan
from runner.rehearse import run_drift, run_rehearsal
from runner.restore import Loss, run_restore
from runner.terminal import for_command
from runner.upgrade import connect


@click.command("drift")
@inventory_option
@accept_drift_option
@json_option
def drift_command(inventory_path: Path, accept_drift: tuple[str, ...], as_json: bool) -> None:
    """Compare the live schema with the one the running release's own migrations build."""
    out = for_command(as_json=as_json)
    inventory = load_inventory(inventory_path)
    require_secrets(inventory)
    drift = run_drift(inventory, connect(inventory, token_gate=False), accept_drift)
    document = {
        "image": drift.image,
        "skipped": drift.skipped,
        "differences": [{**d.__dict__, "accepted": d.key in drift.accepted} for d in drift.differences],
    }
    if drift.skipped:
        out.say(f"drift: not compared: {drift.skipped}")
    elif not drift.differences:
        out.say(f"drift: none (the live schema is what {drift.image} builds)")
    else:
        lines = [f"drift: {len(drift.differences)} difference(s) from what {drift.image} builds:"]
        lines += [
            f"  {d.key:<40} {d.describe()}" + ("  (accepted)" if d.key in drift.accepted else "")
            for d in drift.differences
        ]
        out.say("\n".join(lines))
    for key, value in document.items():  # with --json, an error's document carries them too
        out.attach(key, value)
    if drift.refused:
        raise DriftError(
            f"the live schema has {len(drift.refused)} difference(s) nobody accepted",
            observed=", ".join(d.key for d in drift.refused),
            hint="repair them, or accept each known one for a run with --accept-drift KEY",
        )
    out.document(document)


@click.command("rehearse")
@inventory_option
@click.option(
    "--dump",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A dump the runner took (its manifest beside it). Default: the newest backup in backup_dir.",
)
@click.option("--from-live", is_flag=True, help="Dump the live database now and rehearse with that.")
@click.option("--keep-dump", is_flag=True, help="With --from-live: keep the dump (removed by default).")
@click.option(
    "--through",
    "images",
    multiple=True,
    metavar="IMAGE",
    help="Migrate the copy through these images in order (repeatable). Default: the inventory's target.",
)
@json_option
def rehearse_command(
    inventory_path: Path,
    *,
    dump: Path | None,
    from_live: bool,
    keep_dump: bool,
    images: tuple[str, ...],
    as_json: bool,
) -> None:
    """Restore a backup into a scratch database, check it, run every migration on it; the live cluster
    is untouched."""
    if dump is not None and from_live:
        raise click.UsageError("--dump and --from-live ask for two different backups: give one")
    out = for_command(as_json=as_json)
    inventory = load_inventory(inventory_path)
    require_secrets(inventory)
    rehearsal = run_rehearsal(
        inventory,
        connect(inventory, token_gate=False),
        dump=dump,
        from_live=from_live,
        keep_dump=keep_dump,
        images=images,
    )
    lines = [
        f"rehearsal: {rehearsal.dump} restored ({rehearsal.restored_tables} tables, rows and checksums as "
        f"recorded) in {rehearsal.restore_seconds:.1f}s"
    ]
    lines += [
        f"  {p.image} db_sync {p.phase:<10} {p.seconds:6.1f}s  exit {p.exit_code}" for p in rehearsal.phases
    ]
    lines.append(f"  heads {', '.join(rehearsal.heads)}: the target's; schema as the target builds it")
    out.say("\n".join(lines), line=lines[0])
    out.document(rehearsal.to_dict())


@click.command("restore")
@inventory_option
@click.option(
    "--dump",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The backup to go back to (its manifest beside it). Default: the newest in backup_dir.",
)
@click.option("--yes", is_flag=True, help="Do not ask (the loss is still printed).")
@json_option
def restore_command(inventory_path: Path, dump: Path | None, yes: bool, as_json: bool) -> None:
    """Go back to a verified backup, cold: every node stopped, the dump loaded, every node started on
    the release that served when it was taken. Everything written after the backup is lost."""
    out = for_command(as_json=as_json)
    inventory = load_inventory(inventory_path)
    require_secrets(inventory)

    def confirm(plan: Plan, loss: Loss) -> bool:
        shown = f"{render_plan(plan)}\nWHAT IS LOST: {loss.describe()}"
        return confirmed(out, shown, f"restore {plan.target_version}", "restore, and lose that?", yes)

    plan = run_restore(inventory, connect(inventory, token_gate=False), confirm, show_report(out), dump=dump)
    run_document(out, plan)

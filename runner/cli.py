"""The keystone-upgrade command line: parse, call, render. No upgrade logic lives here."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
import docker

from runner.cli_copies import drift_command, rehearse_command, restore_command
from runner.cli_options import accept_drift_option, cold_option, inventory_option, json_option
from runner.cli_render import (
    NOT_CONFIRMED,
    confirmed,
    plan_line,
    render_plan,
    run_document,
    show_report,
)
from runner.config import load_inventory
from runner.config.kolla import (
    DEFAULT_BACKUP_IMAGE,
    DEFAULT_DB_PASSWORD_FILE,
    DEFAULT_GLOBALS,
    KollaOptions,
    inventory_from_kolla_files,
)
from runner.credentials import require_secrets
from runner.engine import ensure_engine
from runner.errors import ConfigError, ExitCode, RunnerError
from runner.host import keep_to_last_cpu
from runner.images.base import ensure_base_image
from runner.images.build import BUILDS_AT_ONCE, BuildOutcome, build_images, project_version
from runner.images.catalog import DEFAULT_KEYSTONE_VERSIONS, all_images, runner_image
from runner.interrupts import ForcedStop
from runner.journal import Journal
from runner.lab.commands import lab
from runner.plan import Plan
from runner.report import build_report, render_report, render_traffic
from runner.resume import run_resume
from runner.rollback import run_rollback
from runner.terminal import begin, current, for_command
from runner.traffic import replace_probe_seconds, start_traffic, traffic_report
from runner.upgrade import connect, hop_plan, make_plan, refuse, release_path, run_upgrade


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what is being done.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and the final one-line outcome.")
def main(verbose: bool, quiet: bool) -> None:
    """Upgrade a running Keystone cluster to a new release with zero failed requests."""
    if verbose and quiet:
        raise click.UsageError("--verbose and --quiet ask for opposite things: give one of them")
    begin(quiet=quiet)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# -- setup ------------------------------------------------------------------------------------


@main.group()
def engine() -> None:
    """The Docker engine the runner and the lab use."""


@engine.command("ensure")
def engine_ensure() -> None:
    """Make sure an engine answers; as root on Debian, install and start one."""
    ensure_engine()
    click.echo("docker engine: answering")


@main.group()
def images() -> None:
    """The project's images (Keystone per release, MariaDB, memcached, HAProxy; the runner's own)."""


def _print_outcome(outcome: BuildOutcome) -> None:
    click.echo(f"image {outcome.reference}: {outcome.action} ({outcome.seconds:.0f}s)")


@images.command("build")
@click.option(
    "--keystone",
    "versions",
    multiple=True,
    help=f"A Keystone release to build (repeatable). Default: {', '.join(DEFAULT_KEYSTONE_VERSIONS)}.",
)
@click.option("--force", is_flag=True, help="Rebuild even images whose build context is unchanged.")
@click.option(
    "--runner",
    "with_runner",
    is_flag=True,
    help="Also build the runner's own image, keystone-upgrade/runner:<version> (the top-level Dockerfile).",
)
@click.option(
    "--at-once",
    type=click.IntRange(min=1),
    default=BUILDS_AT_ONCE,
    show_default=True,
    help="How many images to build at the same time.",
)
def images_build(versions: tuple[str, ...], force: bool, with_runner: bool, at_once: int) -> None:
    """Build what is missing or changed; reuse the rest. Provisions the engine and base image."""
    ensure_engine()
    client = docker.from_env()
    click.echo(f"base image: {ensure_base_image(client)}")
    specs = all_images(versions or DEFAULT_KEYSTONE_VERSIONS)
    if with_runner:
        specs += (runner_image(project_version()),)
    build_images(client, specs, force=force, at_once=at_once, on_outcome=_print_outcome)


# -- the upgrade ------------------------------------------------------------------------------


@main.command("plan")
@inventory_option
@cold_option
@accept_drift_option
@json_option
def plan_command(inventory_path: Path, cold: bool, accept_drift: tuple[str, ...], as_json: bool) -> None:
    """Gather facts read-only and print the steps an upgrade would take. Changes nothing."""
    out = for_command(as_json=as_json)
    inventory = load_inventory(inventory_path)
    require_secrets(inventory)
    drivers = connect(inventory)
    plan = hop_plan(
        inventory, drivers, release_path(inventory, drivers), 1, accept_drift=accept_drift, cold=cold
    )
    if plan.refused:
        out.say(render_plan(plan))
        out.attach("plan", plan.to_dict())
        raise refuse(plan)
    out.say(render_plan(plan), line=plan_line(plan))
    out.document(plan.to_dict())


@main.command("upgrade")
@inventory_option
@click.option("--yes", is_flag=True, help="Do not ask before executing the plan.")
@click.option("--keep-old", is_flag=True, help="Keep the old containers (renamed) instead of removing them.")
@click.option(
    "--probe",
    "with_probe",
    is_flag=True,
    help="Send the inventory's [probe] traffic during the run and report it.",
)
@cold_option
@accept_drift_option
@json_option
def upgrade_command(
    inventory_path: Path,
    *,
    yes: bool,
    keep_old: bool,
    with_probe: bool,
    cold: bool,
    accept_drift: tuple[str, ...],
    as_json: bool,
) -> None:
    """Print the plan, ask, then upgrade node by node with zero failed requests."""
    keep_to_last_cpu()  # before any thread starts: they inherit it
    out = for_command(as_json=as_json)
    inventory = load_inventory(inventory_path)
    require_secrets(inventory)

    def confirm(plan: Plan) -> bool:
        return confirmed(out, render_plan(plan), plan_line(plan), "execute this plan?", yes)

    plan = run_upgrade(
        inventory,
        connect(inventory),
        confirm,
        show_report(out),
        keep_old=keep_old,
        with_probe=with_probe,
        accept_drift=accept_drift,
        cold=cold,
    )
    run_document(out, plan)


@main.command("resume")
@inventory_option
@click.option("--yes", is_flag=True, help="Do not ask before going on.")
@json_option
def resume_command(inventory_path: Path, yes: bool, as_json: bool) -> None:
    """Go on with the last run from its journal: a half-done node is put back, then upgraded afresh."""
    keep_to_last_cpu()
    out = for_command(as_json=as_json)
    inventory = load_inventory(inventory_path)

    def confirm(plan: Plan) -> bool:
        return confirmed(out, render_plan(plan), plan_line(plan), "resume this run?", yes)

    plan = run_resume(inventory, connect(inventory), confirm, show_report(out))
    run_document(out, plan)


@main.command("rollback")
@inventory_option
@click.option("--yes", is_flag=True, help="Do not ask before rolling back.")
@json_option
def rollback_command(inventory_path: Path, yes: bool, as_json: bool) -> None:
    """Put every node of the last run back on the release it started from (until contract has run)."""
    keep_to_last_cpu()
    out = for_command(as_json=as_json)
    inventory = load_inventory(inventory_path)

    def confirm(journal: Journal, plan: Plan) -> bool:
        what = f"roll back run {journal.run_id}: every node back to {', '.join(plan.source_versions)}"
        return confirmed(out, f"{render_report(build_report(journal))}\n{what}", what, "roll back?", yes)

    undone = run_rollback(inventory, connect(inventory, token_gate=False), confirm)
    if undone is None:
        out.say(None, line=NOT_CONFIRMED)
        out.document({"outcome": "not confirmed", "undone": []})
        return
    text = f"rolled back: {', '.join(undone)}" if undone else "nothing to roll back: already rolled back"
    out.say(text, line=text)
    journal = Journal.load(inventory.state_dir)
    out.document(
        {
            "outcome": "rolled back" if undone else "nothing to roll back",
            "undone": undone,
            "report": build_report(journal) if journal is not None else None,
        }
    )


@main.command("probe")
@inventory_option
@click.option(
    "--seconds",
    type=click.FloatRange(min=1, max=3600),
    default=30,
    show_default=True,
    help="How long to send traffic.",
)
@json_option
def probe_command(inventory_path: Path, seconds: float, as_json: bool) -> None:
    """Send the inventory's [probe] traffic for a bounded time, then report it (changes nothing else)."""
    out = for_command(as_json=as_json)
    inventory = load_inventory(inventory_path)
    runtimes = connect(inventory, token_gate=False).runtimes
    traffic = start_traffic(replace_probe_seconds(inventory, seconds), runtimes[0] if runtimes else None)
    # The probe stops itself after --seconds; this waits for it without polling.
    traffic.probe.join()
    empty_journal: dict[str, Any] = {"run_id": "probe", "steps": []}
    png = inventory.state_dir / f"probe-{int(traffic.probe.started_at)}.png"
    inventory.state_dir.mkdir(parents=True, exist_ok=True)
    section = traffic_report(traffic, empty_journal, png)
    lines = render_traffic(section)
    out.say("\n".join(lines), line=lines[0])
    out.document(section)


@main.command("status")
@inventory_option
@json_option
def status_command(inventory_path: Path, as_json: bool) -> None:
    """The cluster's facts and the journal's last state."""
    out = for_command(as_json=as_json)
    inventory = load_inventory(inventory_path)
    plan = make_plan(inventory, connect(inventory, token_gate=False))
    journal = Journal.load(inventory.state_dir)
    report = build_report(journal) if journal is not None else None
    findings = f"; {len(plan.findings)} preflight finding(s)" if plan.findings else ""
    if report is None:
        out.say(
            f"{render_plan(plan)}\njournal: no run recorded",
            line=f"{plan_line(plan)}{findings}; no run recorded",
        )
    else:
        out.say(
            f"{render_plan(plan)}\njournal:\n{render_report(report)}",
            line=f"{plan_line(plan)}{findings}; last run {report['run_id']} {report['status']}",
        )
    out.document({"plan": plan.to_dict(), "journal": report})


main.add_command(lab)


# -- writing an inventory -----------------------------------------------------------------------


@main.group("inventory")
def inventory_group() -> None:
    """Write an inventory from what a deployment tool already knows, for review."""


@inventory_group.command("from-kolla")
@click.option(
    "--inventory",
    "kolla_inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The kolla-ansible inventory (INI, e.g. a copy of multinode).",
)
@click.option(
    "--globals",
    "globals_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_GLOBALS,
    show_default=True,
    help="kolla-ansible's globals.yml.",
)
@click.option(
    "--target-image", required=True, help="The Keystone image to upgrade to (the release you chose)."
)
@click.option(
    "--backup-image", default=DEFAULT_BACKUP_IMAGE, show_default=True, help="Has mariadb-dump and bash."
)
@click.option(
    "--db-password-file",
    default=DEFAULT_DB_PASSWORD_FILE,
    show_default=True,
    help="Where you will put keystone_database_password (the inventory names the file, never the password).",
)
@click.option(
    "--haproxy-socket",
    "haproxy_sockets",
    multiple=True,
    help="An HAProxy runtime socket at level admin (repeatable); replaces those of the loadbalancer group.",
)
@click.option("--state-dir", help="The run's state directory (default: beside the inventory).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the inventory here (never over an existing file) instead of printing it.",
)
def inventory_from_kolla_command(
    *,
    kolla_inventory: Path,
    globals_path: Path,
    target_image: str,
    backup_image: str,
    db_password_file: str,
    haproxy_sockets: tuple[str, ...],
    state_dir: str | None,
    output: Path | None,
) -> None:
    """A TOML inventory from a kolla-ansible inventory and globals.yml, to review before use."""
    options = KollaOptions(target_image, backup_image, db_password_file, haproxy_sockets, state_dir)
    generated = inventory_from_kolla_files(kolla_inventory, globals_path, options)
    for warning in generated.warnings:
        click.echo(f"warning: {warning}", err=True)
    if output is None:
        click.echo(generated.toml, nl=False)
        return
    try:
        with output.open("x", encoding="utf-8") as file:
            file.write(generated.toml)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the inventory {output}",
            observed=exc.strerror or str(exc),
            hint="name a new file in a writable directory (an existing one is never overwritten)",
        ) from exc
    click.echo(f"inventory: {output} (review it before use)", err=True)


main.add_command(drift_command)
main.add_command(rehearse_command)
main.add_command(restore_command)


def run() -> None:
    """The entry point, and the one place errors are caught: each kind exits with its own code."""
    try:
        main(standalone_mode=True)
    except SystemExit:
        raise
    except RunnerError as exc:
        current().fail(exc.what, exc.observed, exc.hint, int(exc.exit_code), f"error: {exc.render()}")
        sys.exit(int(exc.exit_code))
    except ForcedStop as exc:
        hint = "go on with keystone-upgrade resume -i INVENTORY, or undo with keystone-upgrade rollback -i INVENTORY"
        current().fail(str(exc), None, hint, int(exc.exit_code), f"stopped: {exc}")
        sys.exit(int(exc.exit_code))
    except Exception as exc:
        logging.getLogger(__name__).exception("unexpected error")
        if current().as_json:  # the traceback is on stderr; stdout still gets its one document
            what = f"unexpected error: {type(exc).__name__}: {exc}"
            current().fail(what, None, "run again with --verbose and report the traceback", 1, what)
        sys.exit(int(ExitCode.UNEXPECTED))

"""The keystone-upgrade command line: parse, call, render. No upgrade logic lives here."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
import docker

from runner.config import load_inventory
from runner.credentials import require_secrets
from runner.engine import ensure_engine
from runner.errors import ExitCode, RunnerError
from runner.images.base import ensure_base_image
from runner.images.build import BuildOutcome, build_images
from runner.images.catalog import DEFAULT_KEYSTONE_VERSIONS, all_images
from runner.interrupts import ForcedStop
from runner.journal import Journal
from runner.lab.commands import lab
from runner.plan import Plan
from runner.report import build_report, render_report, render_traffic
from runner.resume import run_resume
from runner.rollback import run_rollback
from runner.traffic import replace_probe_seconds, start_traffic, traffic_report
from runner.upgrade import connect, make_plan, refuse, run_upgrade


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what is being done.")
def main(verbose: bool) -> None:
    """Upgrade a running Keystone cluster to a new release with zero failed requests."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
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
    """The project's images (Keystone per release, MariaDB, memcached, HAProxy)."""


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
def images_build(versions: tuple[str, ...], force: bool) -> None:
    """Build what is missing or changed; reuse the rest. Provisions the engine and base image."""
    ensure_engine()
    client = docker.from_env()
    click.echo(f"base image: {ensure_base_image(client)}")
    build_images(
        client,
        all_images(versions or DEFAULT_KEYSTONE_VERSIONS),
        force=force,
        on_outcome=_print_outcome,
    )


# -- the upgrade ------------------------------------------------------------------------------

inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The cluster's inventory (TOML).",
)


def render_plan(plan: Plan) -> str:
    """The plan for people: what runs, what is skipped and why."""
    lines = [
        f"upgrade {', '.join(plan.source_versions) or '?'} -> {plan.target_version} ({plan.target_image})",
        f"  database heads {', '.join(plan.database_heads) or '-'}; target heads {', '.join(plan.target_heads) or '-'}",
        f"  db_sync --check with the target: exit {plan.check_exit_code}",
    ]
    if plan.doctor_findings is not None:
        said = [line for line in plan.doctor_findings.splitlines() if line.strip()]
        lines.append(f"  keystone-manage doctor (target image): {'says:' if said else 'no findings'}")
        lines += [f"    {line}" for line in said]
    for number, step in enumerate(plan.steps, start=1):
        verdict = f"skip: {step.skip_reason}" if step.skipped else step.why
        lines.append(f"  {number:2}. {step.id:<22} {verdict}")
    if plan.notices:
        lines.append("notices:")
        lines += [f"  - {notice}" for notice in plan.notices]
    if plan.findings:
        lines.append("preflight findings:")
        lines += ["  " + finding.render().replace("\n", "\n  ") for finding in plan.findings]
    return "\n".join(lines)


@main.command("plan")
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_command(inventory_path: Path, as_json: bool) -> None:
    """Gather facts read-only and print the steps an upgrade would take. Changes nothing."""
    inventory = load_inventory(inventory_path)
    require_secrets(inventory)
    plan = make_plan(inventory, connect(inventory))
    click.echo(json.dumps(plan.to_dict(), indent=2) if as_json else render_plan(plan))
    if plan.refused:
        raise refuse(plan)


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
def upgrade_command(inventory_path: Path, yes: bool, keep_old: bool, with_probe: bool) -> None:
    """Print the plan, ask, then upgrade node by node with zero failed requests."""
    inventory = load_inventory(inventory_path)
    require_secrets(inventory)

    def confirm(plan: Plan) -> bool:
        click.echo(render_plan(plan))
        return yes or click.confirm("execute this plan?", default=False)

    def show_report(report: dict[str, Any], path: Path) -> None:
        click.echo(render_report(report))
        click.echo(f"report: {path}")

    run_upgrade(inventory, connect(inventory), confirm, show_report, keep_old=keep_old, with_probe=with_probe)


@main.command("resume")
@inventory_option
@click.option("--yes", is_flag=True, help="Do not ask before going on.")
def resume_command(inventory_path: Path, yes: bool) -> None:
    """Go on with the last run from its journal: a half-done node is put back, then upgraded afresh."""
    inventory = load_inventory(inventory_path)

    def confirm(plan: Plan) -> bool:
        click.echo(render_plan(plan))
        return yes or click.confirm("resume this run?", default=False)

    def show_report(report: dict[str, Any], path: Path) -> None:
        click.echo(render_report(report))
        click.echo(f"report: {path}")

    run_resume(inventory, connect(inventory), confirm, show_report)


@main.command("rollback")
@inventory_option
@click.option("--yes", is_flag=True, help="Do not ask before rolling back.")
def rollback_command(inventory_path: Path, yes: bool) -> None:
    """Put every node of the last run back on the release it started from (until contract has run)."""
    inventory = load_inventory(inventory_path)

    def confirm(journal: Journal, plan: Plan) -> bool:
        click.echo(render_report(build_report(journal)))
        click.echo(f"roll back run {journal.run_id}: every node back to {', '.join(plan.source_versions)}")
        return yes or click.confirm("roll back?", default=False)

    undone = run_rollback(inventory, connect(inventory, token_gate=False), confirm)
    if undone is None:
        return
    click.echo(f"rolled back: {', '.join(undone)}" if undone else "nothing to roll back: already rolled back")


@main.command("probe")
@inventory_option
@click.option(
    "--seconds",
    type=click.FloatRange(min=1, max=3600),
    default=30,
    show_default=True,
    help="How long to send traffic.",
)
def probe_command(inventory_path: Path, seconds: float) -> None:
    """Send the inventory's [probe] traffic for a bounded time, then report it (changes nothing else)."""
    inventory = load_inventory(inventory_path)
    runtimes = connect(inventory, token_gate=False).runtimes
    traffic = start_traffic(replace_probe_seconds(inventory, seconds), runtimes[0] if runtimes else None)
    # The probe stops itself after --seconds; this waits for it without polling.
    traffic.probe.join()
    empty_journal: dict[str, Any] = {"run_id": "probe", "steps": []}
    png = inventory.state_dir / f"probe-{int(traffic.probe.started_at)}.png"
    inventory.state_dir.mkdir(parents=True, exist_ok=True)
    click.echo("\n".join(render_traffic(traffic_report(traffic, empty_journal, png))))


@main.command("status")
@inventory_option
def status_command(inventory_path: Path) -> None:
    """The cluster's facts and the journal's last state."""
    inventory = load_inventory(inventory_path)
    plan = make_plan(inventory, connect(inventory, token_gate=False))
    click.echo(render_plan(plan))
    journal = Journal.load(inventory.state_dir)
    if journal is None:
        click.echo("journal: no run recorded")
    else:
        click.echo("journal:")
        click.echo(render_report(build_report(journal)))


main.add_command(lab)


def run() -> None:
    """The entry point, and the one place errors are caught: each kind exits with its own code."""
    try:
        main(standalone_mode=True)
    except SystemExit:
        raise
    except RunnerError as exc:
        click.echo(f"error: {exc.render()}", err=True)
        sys.exit(int(exc.exit_code))
    except ForcedStop as exc:
        click.echo(f"stopped: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except Exception:
        logging.getLogger(__name__).exception("unexpected error")
        sys.exit(int(ExitCode.UNEXPECTED))

"""The keystone-upgrade command line: parse, call, render. No upgrade logic lives here."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
import docker

from runner.config import load_inventory
from runner.engine import ensure_engine
from runner.errors import ExitCode, LabError, RunnerError
from runner.images.base import ensure_base_image
from runner.images.build import BuildOutcome, build_images
from runner.images.catalog import DEFAULT_KEYSTONE_VERSIONS, all_images
from runner.journal import Journal
from runner.lab.check import prove_serving
from runner.lab.cluster import Lab, LabEndpoints
from runner.lab.inventory import write_inventory
from runner.lab.render import write_config
from runner.lab.settings import LabPorts, LabSecrets, LabSettings
from runner.lab.store import load_settings, save_settings
from runner.plan import Plan
from runner.report import build_report, render_report, render_traffic
from runner.traffic import replace_probe_seconds, start_traffic, traffic_report
from runner.upgrade import connect, make_plan, refuse, run_upgrade

P = ParamSpec("P")
R = TypeVar("R")

COMPOSE_DIR = Path(__file__).resolve().parents[1] / "compose"
DEMO_STATE_DIR = COMPOSE_DIR / "state"


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Catch RunnerError once, print its three parts, exit with its code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except RunnerError as exc:
            click.echo(f"error: {exc.render()}", err=True)
            sys.exit(int(exc.exit_code))

    return wrapper


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
@reports_errors
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
@reports_errors
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
    if plan.findings:
        lines.append("preflight findings:")
        lines += ["  " + finding.render().replace("\n", "\n  ") for finding in plan.findings]
    return "\n".join(lines)


@main.command("plan")
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@reports_errors
def plan_command(inventory_path: Path, as_json: bool) -> None:
    """Gather facts read-only and print the steps an upgrade would take. Changes nothing."""
    inventory = load_inventory(inventory_path)
    plan = make_plan(inventory, connect(inventory))
    click.echo(json.dumps(plan.as_dict(), indent=2) if as_json else render_plan(plan))
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
@reports_errors
def upgrade_command(inventory_path: Path, yes: bool, keep_old: bool, with_probe: bool) -> None:
    """Print the plan, ask, then upgrade node by node with zero failed requests."""
    inventory = load_inventory(inventory_path)

    def confirm(plan: Plan) -> bool:
        click.echo(render_plan(plan))
        return yes or click.confirm("execute this plan?", default=False)

    def show_report(report: dict[str, Any], path: Path) -> None:
        click.echo(render_report(report))
        click.echo(f"report: {path}")

    run_upgrade(inventory, connect(inventory), confirm, show_report, keep_old=keep_old, with_probe=with_probe)


@main.command("probe")
@inventory_option
@click.option(
    "--seconds",
    type=click.FloatRange(min=1, max=3600),
    default=30,
    show_default=True,
    help="How long to send traffic.",
)
@reports_errors
def probe_command(inventory_path: Path, seconds: float) -> None:
    """Send the inventory's [probe] traffic for a bounded time, then report it (changes nothing else)."""
    inventory = load_inventory(inventory_path)
    runtimes = connect(inventory).runtimes
    traffic = start_traffic(replace_probe_seconds(inventory, seconds), runtimes[0] if runtimes else None)
    # The probe stops itself after --seconds; this waits for it without polling.
    traffic.probe.join()
    empty_journal: dict[str, Any] = {"run_id": "probe", "steps": []}
    png = inventory.state_dir / f"probe-{int(traffic.probe.started_at)}.png"
    inventory.state_dir.mkdir(parents=True, exist_ok=True)
    click.echo("\n".join(render_traffic(traffic_report(traffic, empty_journal, png))))


@main.command("status")
@inventory_option
@reports_errors
def status_command(inventory_path: Path) -> None:
    """The cluster's facts and the journal's last state."""
    inventory = load_inventory(inventory_path)
    plan = make_plan(inventory, connect(inventory))
    click.echo(render_plan(plan))
    journal = Journal.load(inventory.state_dir)
    if journal is None:
        click.echo("journal: no run recorded")
    else:
        click.echo("journal:")
        click.echo(render_report(build_report(journal)))


# -- lab --------------------------------------------------------------------------------------


@main.group()
def lab() -> None:
    """The demo cluster defined by compose/docker-compose.yml."""


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEMO_STATE_DIR,
    show_default=True,
    help="Where the lab keeps its configuration, keys and HAProxy socket.",
)


def describe(endpoints: LabEndpoints) -> str:
    """Where a lab cluster listens, for people. Passwords are named by file, never printed."""
    lines = [
        f"lab {endpoints.project}: Keystone {endpoints.keystone_version}",
        f"  load balancer (HAProxy): {endpoints.lb_url}/v3 (internal), "
        f"{endpoints.lb_external_url}/v3 (external)",
    ]
    lines += [f"  node {name}: {url}/v3" for name, url in endpoints.node_urls.items()]
    lines += [
        f"  HAProxy runtime API (admin): {endpoints.admin_socket}",
        f"  MariaDB: {endpoints.db_host}:{endpoints.db_port} database {endpoints.db_name} "
        f"user {endpoints.db_user} (password in {endpoints.config_dir}/secrets/db-password)",
        f"  admin login: user {endpoints.admin_username}, project {endpoints.admin_project} "
        f"(password in {endpoints.config_dir}/secrets/admin-password)",
    ]
    return "\n".join(lines)


@lab.command("up")
@click.option("--keystone", "version", default="28.1.0", show_default=True, help="Release the nodes run.")
@click.option("--project", default="kudemo", show_default=True, help="Container name prefix.")
@click.option(
    "--port-base",
    type=int,
    default=None,
    help="Bind a block of ports from here instead of the defaults.",
)
@state_dir_option
@reports_errors
def lab_up(version: str, project: str, port_base: int | None, state_dir: Path) -> None:
    """Bring up MariaDB, memcached, HAProxy and three Keystone nodes, bootstrapped."""
    ensure_engine()
    settings = LabSettings(
        project=project,
        keystone_version=version,
        ports=LabPorts.from_base(port_base) if port_base else LabPorts(),
        secrets=LabSecrets.generate(),
        config_dir=state_dir / "config",
        state_dir=state_dir,
    )
    lab_cluster = Lab(settings, docker.from_env())
    save_settings(settings)
    click.echo(describe(lab_cluster.up()))


@lab.command("info")
@state_dir_option
@reports_errors
def lab_info(state_dir: Path) -> None:
    """Say where the lab cluster recorded in STATE_DIR listens."""
    settings = load_settings(state_dir)
    click.echo(describe(Lab(settings, docker.from_env()).endpoints()))


@lab.command("check")
@state_dir_option
@reports_errors
def lab_check(state_dir: Path) -> None:
    """Issue a token through HAProxy and validate it on every node directly."""
    settings = load_settings(state_dir)
    proof = prove_serving(Lab(settings, docker.from_env()).endpoints())
    click.echo(f"token issued through HAProxy, served by {proof.issued_by}")
    for node, code in proof.validations.items():
        click.echo(f"  validated on {node} directly: HTTP {code}")
    for server, status in proof.haproxy_status.items():
        click.echo(f"  HAProxy {server}: {status}")
    if not proof.ok:
        raise LabError("the lab cluster does not fully serve", observed=str(proof))


@lab.command("inventory")
@click.option(
    "--target", "target_version", default="29.1.0", show_default=True, help="Release to upgrade to."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Default: STATE_DIR/inventory.toml.",
)
@state_dir_option
@reports_errors
def lab_inventory(target_version: str, output: Path | None, state_dir: Path) -> None:
    """Write the inventory that upgrades the lab cluster (as an operator would for theirs)."""
    settings = load_settings(state_dir)
    path = output or state_dir / "inventory.toml"
    write_inventory(Lab(settings, docker.from_env()).endpoints(), target_version, path, state_dir / "upgrade")
    click.echo(str(path))


@lab.command("down")
@state_dir_option
@reports_errors
def lab_down(state_dir: Path) -> None:
    """Remove every container of the lab and its state directory."""
    settings = load_settings(state_dir)
    Lab(settings, docker.from_env()).down()
    click.echo(f"lab {settings.project}: removed")


@lab.command("render")
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=COMPOSE_DIR / "config",
    show_default=True,
)
@reports_errors
def lab_render(config_dir: Path) -> None:
    """Write keystone.conf, haproxy.cfg and the demo-only secrets for the default ports."""
    settings = LabSettings(
        project="kudemo",
        keystone_version="28.1.0",
        ports=LabPorts(),
        secrets=LabSecrets.demo_defaults(),
        config_dir=config_dir,
        state_dir=COMPOSE_DIR / "state",
    )
    write_config(settings)
    click.echo(f"rendered {config_dir}")


def run() -> None:
    """Entry point that maps anything unexpected to its own exit code."""
    try:
        main(standalone_mode=True)
    except SystemExit:
        raise
    except Exception:
        logging.getLogger(__name__).exception("unexpected error")
        sys.exit(int(ExitCode.UNEXPECTED))

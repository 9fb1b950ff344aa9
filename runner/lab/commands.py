"""``keystone-upgrade lab``: the demo/test cluster defined by compose/docker-compose.yml."""

from __future__ import annotations

from pathlib import Path

import click
import docker

from runner.engine import ensure_engine
from runner.errors import LabError
from runner.lab.check import prove_serving
from runner.lab.cluster import Lab, LabEndpoints
from runner.lab.inventory import write_inventory
from runner.lab.render import write_config
from runner.lab.settings import LabPorts, LabSecrets, LabSettings
from runner.lab.store import load_settings, save_settings

COMPOSE_DIR = Path(__file__).resolve().parents[2] / "compose"
DEMO_STATE_DIR = COMPOSE_DIR / "state"


# -- commands --------------------------------------------------------------------------------------


@click.group()
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
def lab_info(state_dir: Path) -> None:
    """Say where the lab cluster recorded in STATE_DIR listens."""
    settings = load_settings(state_dir)
    click.echo(describe(Lab(settings, docker.from_env()).endpoints()))


@lab.command("check")
@state_dir_option
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
def lab_inventory(target_version: str, output: Path | None, state_dir: Path) -> None:
    """Write the inventory that upgrades the lab cluster (as an operator would for theirs)."""
    settings = load_settings(state_dir)
    path = output or state_dir / "inventory.toml"
    write_inventory(Lab(settings, docker.from_env()).endpoints(), target_version, path, state_dir / "upgrade")
    click.echo(str(path))


@lab.command("down")
@state_dir_option
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

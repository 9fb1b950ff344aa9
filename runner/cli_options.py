"""Options several commands share."""

from __future__ import annotations

from pathlib import Path

import click

inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The cluster's inventory (TOML).",
)
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document on stdout and nothing else there (an error too, with its exit code).",
)
accept_drift_option = click.option(
    "--accept-drift",
    "accept_drift",
    multiple=True,
    metavar="KEY",
    help="Accept one schema difference drift reports (its key, e.g. column:trust.remaining_uses) "
    "for this run; repeatable. Every other difference refuses the upgrade.",
)
cold_option = click.option(
    "--cold",
    is_flag=True,
    help="Keystone's offline procedure instead of the rolling one: every node out of rotation and "
    "stopped, backup, expand/migrate/contract, every node started on the target. An outage (--probe "
    "measures it), for hops that cannot run old and new side by side.",
)

"""What migration containers need beyond `keystone-manage db_sync`: a bounded lock wait."""

from __future__ import annotations

import configparser
import urllib.parse

from runner.keystone_conf import mounted_keystone_conf
from runner.model import KOLLA_CONFIG_DIR, MIGRATIONS_COMMAND, MIGRATIONS_KOLLA, BindMount

# The runner's own checks (db_sync --check, doctor) log to their output, captured in the run's
# log, never into the node's log files: run as root they would leave root-owned files in a
# log volume (Kolla's kolla_logs) that Keystone's own user can no longer append to.
CHECKS_LOG_TO_OUTPUT = {"OS_DEFAULT__LOG_FILE": ""}
MIGRATION_LOCK_WAIT_S = 5
IDLE_TRANSACTION_S = 2
LOCK_TIMEOUT = "Lock wait timeout exceeded"


def migration_environment(mounts: tuple[BindMount, ...]) -> dict[str, str]:
    """oslo.config environment overrides for migration containers: a bounded metadata-lock wait.

    ``[database] connection_parameters`` from the mounted keystone.conf is kept and extended.
    """
    existing = ""
    conf = mounted_keystone_conf(mounts)
    if conf is not None:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(conf)
            existing = parser.get("database", "connection_parameters", fallback="")
        except (configparser.Error, OSError):
            existing = ""
    init = "init_command=" + urllib.parse.quote(
        f"SET SESSION lock_wait_timeout={MIGRATION_LOCK_WAIT_S}", safe=""
    )
    return {"OS_DATABASE__CONNECTION_PARAMETERS": f"{existing}&{init}" if existing else init}


def migrations_style(configured: str | None, mounts: tuple[BindMount, ...]) -> str:
    """How the throwaway containers migrate: as configured, else the Kolla way when they get
    Kolla's config_files directory (config.json and the files it copies), else as a command."""
    if configured is not None:
        return configured
    kolla = any(m.target.rstrip("/") == KOLLA_CONFIG_DIR for m in mounts)
    return MIGRATIONS_KOLLA if kolla else MIGRATIONS_COMMAND


def styled_argv(style: str, command: list[str]) -> list[str]:
    """``command`` as a throwaway of ``style`` runs it: the Kolla way, only after kolla_set_configs
    has copied config.json's files into place; otherwise as it is."""
    if style != MIGRATIONS_KOLLA:
        return command
    return ["sh", "-c", 'kolla_set_configs >&2 && exec "$@"', "kolla-set-configs-then", *command]

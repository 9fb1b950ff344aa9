"""What migration containers need beyond `keystone-manage db_sync`: a bounded lock wait."""

from __future__ import annotations

import configparser
import urllib.parse

from runner.model import Inventory

MIGRATION_LOCK_WAIT_S = 5
IDLE_TRANSACTION_S = 2
LOCK_TIMEOUT = "Lock wait timeout exceeded"


def migration_environment(inventory: Inventory) -> dict[str, str]:
    """oslo.config environment overrides for migration containers: a bounded metadata-lock wait.

    ``[database] connection_parameters`` from the mounted keystone.conf is kept and extended.
    """
    existing = ""
    conf = next((m.source for m in inventory.mounts if m.target.endswith("/keystone.conf")), None)
    if conf is not None:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(conf)
            existing = parser.get("database", "connection_parameters", fallback="")
        except configparser.Error:
            existing = ""
    init = "init_command=" + urllib.parse.quote(
        f"SET SESSION lock_wait_timeout={MIGRATION_LOCK_WAIT_S}", safe=""
    )
    return {"OS_DATABASE__CONNECTION_PARAMETERS": f"{existing}&{init}" if existing else init}

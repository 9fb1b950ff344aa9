"""Passwords, read only when they are needed, from where the inventory says they are.

They never come from the inventory file or the command line; once read they
live in a DatabaseTarget or Credentials whose repr leaves them out.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.errors import ConfigError
from runner.model import DatabaseConfig, DatabaseTarget, SecretSource


def read_secret(source: SecretSource, what: str, table: str) -> str:
    """The secret now, or ConfigError saying which source failed."""
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None:
            raise ConfigError(
                f"the {what} is not available",
                observed=f"environment variable {source.env} is not set",
                hint=f"export {source.env} before running, or use {table}.password_file",
            )
        return value
    assert source.file is not None
    try:
        return Path(source.file).read_text().rstrip("\n")
    except OSError as exc:
        raise ConfigError(
            f"the {what} is not available",
            observed=f"cannot read {source.file}: {exc.strerror}",
            hint=f"point {table}.password_file at a readable file holding only the password",
        ) from exc


def database_target(config: DatabaseConfig) -> DatabaseTarget:
    """The connection target with the password read now (never stored in the inventory)."""
    password = read_secret(config.password, "database password", "database")
    return DatabaseTarget(config.host, config.port, config.user, config.name, password)


def admin_database_target(config: DatabaseConfig) -> DatabaseTarget | None:
    """The admin account's connection target, when the inventory gives one."""
    if config.admin_user is None or config.admin_password is None:
        return None
    password = read_secret(config.admin_password, "database admin password", "database.admin")
    return DatabaseTarget(config.host, config.port, config.admin_user, config.name, password)

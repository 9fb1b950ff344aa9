"""Passwords, read only when they are needed, from where the inventory says they are.

They never come from the inventory file or the command line; once read they
live in a DatabaseTarget or Credentials whose repr leaves them out, and no
message ever holds one. ``check_secrets`` reads every one an inventory names,
so that a missing, empty or unreadable password is found before anything is
done, all of them at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.errors import ConfigError
from runner.model import DatabaseConfig, DatabaseTarget, Inventory, SecretSource

# A password file holds one password; more than this is the wrong file (or /dev/zero).
MAX_SECRET_CHARS = 4096


def read_secret(source: SecretSource, what: str, table: str) -> str:
    """The secret now, or ConfigError saying which source failed (never what it held)."""
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None:
            raise ConfigError(
                f"the {what} is not available",
                observed=f"environment variable {source.env} is not set",
                hint=f"export {source.env} before running, or use {table}.password_file",
            )
        if not value:
            raise ConfigError(
                f"the {what} is empty",
                observed=f"environment variable {source.env} is set to an empty string",
                hint=f"export {source.env} with the password",
            )
        return value
    if source.file is None:
        raise ConfigError(
            f"the {what} has no source", hint=f"give {table}.password_env or {table}.password_file"
        )
    try:
        with Path(source.file).open(encoding="utf-8") as handle:
            value = handle.read(MAX_SECRET_CHARS + 1).rstrip("\r\n")
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(
            f"the {what} is not available",
            observed=f"cannot read {source.file}: {reason}",
            hint=f"point {table}.password_file at a readable file holding only the password",
        ) from exc
    if len(value) > MAX_SECRET_CHARS:
        raise ConfigError(
            f"the {what} is not available",
            observed=f"{source.file} holds more than {MAX_SECRET_CHARS} characters: not a password file",
            hint=f"point {table}.password_file at a file holding only the password",
        )
    if not value:
        raise ConfigError(
            f"the {what} is empty",
            observed=f"{source.file} holds nothing but line ends",
            hint=f"write the password into {source.file}",
        )
    return value


def check_secrets(inventory: Inventory, *, probe: bool = True) -> list[str]:
    """Read every password the inventory names (the probe's too, when ``probe``); what is wrong with each.

    An empty list means every one is there. The passwords themselves are
    dropped at once and never appear in what is returned.
    """
    database = inventory.database
    sources = [(database.password, "database password", "database")]
    if database.admin_password is not None:
        sources.append((database.admin_password, "database admin password", "database.admin"))
    if probe and inventory.probe is not None:
        sources.append((inventory.probe.password, "probe password", "probe"))
    problems = []
    for source, what, table in sources:
        try:
            read_secret(source, what, table)
        except ConfigError as exc:
            problems.append(f"[{table}]: {exc.what}: {exc.observed}; {exc.hint}")
    return problems


def require_secrets(inventory: Inventory, *, probe: bool = True) -> None:
    """ConfigError (exit 3) listing every password ``check_secrets`` finds missing, empty or unreadable."""
    problems = check_secrets(inventory, probe=probe)
    if problems:
        raise ConfigError(
            f"{len(problems)} password(s) the inventory {inventory.path} names cannot be read; nothing was touched",
            observed="\n    " + "\n    ".join(problems),
            hint="make each available where the inventory says, and run again",
        )


def database_target(config: DatabaseConfig) -> DatabaseTarget:
    """The connection target with the password read now (never stored in the inventory)."""
    password = read_secret(config.password, "database password", "database")
    return DatabaseTarget(config.host, config.port, config.user, config.name, password, config.tls)


def admin_database_target(config: DatabaseConfig) -> DatabaseTarget | None:
    """The admin account's connection target, when the inventory gives one."""
    if config.admin_user is None or config.admin_password is None:
        return None
    password = read_secret(config.admin_password, "database admin password", "database.admin")
    return DatabaseTarget(config.host, config.port, config.admin_user, config.name, password, config.tls)

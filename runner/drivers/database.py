"""Keystone's database as the runner sees it: reachable with the configured user, and its schema heads."""

from __future__ import annotations

from dataclasses import dataclass, field

import pymysql

from runner.errors import RunnerError


@dataclass(frozen=True)
class DatabaseTarget:
    """Where Keystone's database is and how to log in (the password never in repr)."""

    host: str
    port: int
    user: str
    database: str
    password: str = field(repr=False)


class Database:
    """A short-lived connection per question; the runner asks few and rarely."""

    def __init__(self, target: DatabaseTarget, connect_timeout_s: float = 10.0):
        self.target = target
        self.connect_timeout_s = connect_timeout_s

    def _connect(self) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
        target = self.target
        try:
            return pymysql.connect(
                host=target.host,
                port=target.port,
                user=target.user,
                password=target.password,
                database=target.database,
                connect_timeout=self.connect_timeout_s,
            )
        except pymysql.MySQLError as exc:
            raise RunnerError(
                f"cannot connect to database {target.database} at {target.host}:{target.port} "
                f"as {target.user}",
                observed=str(exc),
                hint="check the database address, user and password the inventory names",
            ) from exc

    def alembic_heads(self) -> frozenset[str]:
        """The revisions in alembic_version: Keystone keeps one per branch (expand, contract)."""
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            return frozenset(str(row[0]) for row in cursor.fetchall())

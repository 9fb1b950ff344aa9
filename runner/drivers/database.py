"""Keystone's database as the runner sees it: reachable with the configured user, and its schema heads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pymysql

from runner.errors import DatabaseError
from runner.model import DatabaseTarget


@dataclass(frozen=True)
class BinlogSettings:
    """What decides whether expand may create triggers without SUPER."""

    log_bin: bool
    trust_function_creators: bool
    user_has_super: bool

    @property
    def needs_trust(self) -> bool:
        """Binary logging is on, the user lacks SUPER and the server does not trust it."""
        return self.log_bin and not self.user_has_super and not self.trust_function_creators


@dataclass(frozen=True)
class IdleTransaction:
    """A session idle inside an open transaction: it holds metadata locks DDL waits for."""

    connection_id: int
    host: str
    idle_s: int


class MysqlDatabase:
    """The ``Database`` of a MariaDB or MySQL server: a short-lived connection per question."""

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
            raise DatabaseError(
                f"cannot connect to database {target.database} at {target.host}:{target.port} "
                f"as {target.user}",
                observed=str(exc),
                hint="check the database address, user and password the inventory names",
            ) from exc

    @contextmanager
    def _cursor(self, what: str) -> Iterator[pymysql.cursors.Cursor]:
        """A cursor on a fresh connection; a server error while ``what`` becomes a DatabaseError."""
        with self._connect() as connection, connection.cursor() as cursor:
            try:
                yield cursor
            except pymysql.MySQLError as exc:
                target = self.target
                raise DatabaseError(
                    f"the database refused {what} ({target.user}@{target.host}:{target.port})",
                    observed=str(exc),
                    hint="check the account's privileges and the server's log",
                ) from exc

    def alembic_heads(self) -> frozenset[str]:
        """The revisions in alembic_version: Keystone keeps one per branch (expand, contract)."""
        with self._cursor("reading the schema heads") as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            return frozenset(str(row[0]) for row in cursor.fetchall())

    def binlog_settings(self) -> BinlogSettings:
        """Whether binary logging is on, the trust setting, and whether this user has SUPER."""
        with self._cursor("reading the binary-logging settings") as cursor:
            cursor.execute("SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators")
            row = cursor.fetchone()
            cursor.execute("SHOW GRANTS")
            grants = " ".join(str(r[0]) for r in cursor.fetchall()).upper()
        assert row is not None
        has_super = "ALL PRIVILEGES ON *.*" in grants or "SUPER" in grants
        return BinlogSettings(
            log_bin=bool(row[0]), trust_function_creators=bool(row[1]), user_has_super=has_super
        )

    def set_trust_function_creators(self, value: bool) -> None:
        """SET GLOBAL log_bin_trust_function_creators (needs SUPER: call on the admin account)."""
        with self._cursor("setting log_bin_trust_function_creators") as cursor:
            cursor.execute(f"SET GLOBAL log_bin_trust_function_creators = {1 if value else 0}")

    def idle_transactions(self, user: str, min_idle_s: int) -> list[IdleTransaction]:
        """Sessions of ``user`` that sit idle inside an open transaction (needs PROCESS: admin account)."""
        with self._cursor("listing idle transactions") as cursor:
            cursor.execute(
                "SELECT p.id, p.host, p.time FROM information_schema.innodb_trx t "
                "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
                "WHERE p.command = 'Sleep' AND p.time >= %s AND p.user = %s AND p.id <> CONNECTION_ID()",
                (min_idle_s, user),
            )
            return [IdleTransaction(int(r[0]), str(r[1]), int(r[2])) for r in cursor.fetchall()]

    def kill_connections(self, ids: list[int]) -> None:
        """KILL CONNECTION each id; one already gone is not an error."""
        with self._cursor("ending idle sessions") as cursor:
            for connection_id in ids:
                try:
                    cursor.execute(f"KILL CONNECTION {int(connection_id)}")
                except pymysql.err.InternalError:
                    continue  # already gone (unknown thread id)
                except pymysql.err.OperationalError as exc:
                    if exc.args and exc.args[0] == 1094:  # unknown thread id
                        continue
                    raise

    def table_row_counts(self) -> dict[str, int]:
        """Rows per base table, read in one consistent snapshot."""
        with self._cursor("counting rows") as cursor:
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cursor.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
                (self.target.database,),
            )
            tables = [str(row[0]) for row in cursor.fetchall()]
            counts = {}
            for table in tables:
                cursor.execute(f"SELECT COUNT(*) FROM `{table}`")  # noqa: S608 - names from the server
                row = cursor.fetchone()
                counts[table] = int(row[0]) if row else 0
            cursor.execute("COMMIT")
            return counts

    @contextmanager
    def advisory_lock(self, name: str) -> Iterator[bool]:
        """Hold GET_LOCK(name) for the block; yields False when another session holds it.

        The lock lives as long as its connection, so a runner that dies frees it.
        """
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT GET_LOCK(%s, 0)", (name,))
                row = cursor.fetchone()
            acquired = bool(row and row[0] == 1)
            yield acquired
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))
        finally:
            connection.close()

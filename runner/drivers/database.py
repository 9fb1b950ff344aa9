"""Keystone's database as the runner sees it: reachable with the configured user, and its schema heads."""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import pymysql

from runner.errors import DatabaseError
from runner.model import DatabaseTarget, DatabaseTls
from runner.schema import Schema, schema_from_information_schema

log = logging.getLogger(__name__)

# PyMySQL's client error code for an authentication plugin that failed (CR_AUTH_PLUGIN_ERR).
AUTH_PLUGIN_ERROR = 2061
# The mariadb client loading a dump may echo the statement it failed on (it did when its server
# stopped mid-load), and its errors quote what they failed on (`near '...'`, `Duplicate entry
# '...'`): a dump's rows (password hashes, credential blobs) must reach no error message, log or
# journal. Its own error lines and gunzip's are kept, quoted text masked, the last few of them.
CLIENT_ERROR_CHARACTERS = 240
CLIENT_ERROR_LINES = 5
_QUOTED = re.compile(r"'.*'")  # greedy: from the first quote to the last, quotes in a value too


def client_errors(output: str) -> str:
    """What the mariadb client (and gunzip before it) said went wrong, from their ``output``: their
    own error lines with anything quoted masked, never a statement or a value of the dump."""
    errors = [
        _QUOTED.sub("'...'", line)[:CLIENT_ERROR_CHARACTERS]
        for line in output.splitlines()
        if line.startswith(("ERROR", "gzip:"))
    ]
    if not errors:
        return "no ERROR line from the client (its server may have stopped: see its last lines)"
    return "\n".join(errors[-CLIENT_ERROR_LINES:])


def tls_context(tls: DatabaseTls) -> ssl.SSLContext:
    """The TLS context [database.tls] asks for: the given CA (or the system's), certificate and host checked."""
    context = ssl.create_default_context(cafile=tls.ca_file)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ClearTextRefused(pymysql.err.OperationalError):
    """The server asked for the password in clear text on a connection the inventory did not encrypt."""


class _ClearTextPlugin:
    """A PyMySQL auth plugin handler for the plugins that send the password as it is.

    PyMySQL answers ``mysql_clear_password`` (and MariaDB's PAM ``dialog``) with
    the password in clear, whatever the connection. This handler lets that
    happen only over TLS the inventory asked for ([database.tls]) and actually
    in use; otherwise it ends the handshake before the password is written.
    """

    plugin: ClassVar[bytes]
    tls_required: ClassVar[bool] = False

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def authenticate(self, packet: Any) -> Any:
        """Hand the exchange to PyMySQL's own code over required TLS; refuse it otherwise."""
        if self.tls_required and getattr(self.connection, "_secure", False):
            # PyMySQL's own exchange, exactly as it runs when no handler is registered.
            return self.connection._process_auth(self.plugin, packet)
        raise ClearTextRefused(
            AUTH_PLUGIN_ERROR,
            f"the server asked for the {self.plugin.decode()} authentication plugin, which sends the "
            "password in clear text, and this connection is not encrypted with the TLS the inventory "
            "asks for; the password was not sent",
        )


class _ClearPassword(_ClearTextPlugin):
    plugin = b"mysql_clear_password"


class _Dialog(_ClearTextPlugin):
    plugin = b"dialog"  # MariaDB's PAM: answers the "Password: " prompt in clear


class _ClearPasswordOverTls(_ClearPassword):
    tls_required = True


class _DialogOverTls(_Dialog):
    tls_required = True


def auth_plugin_map(tls: DatabaseTls | None) -> dict[str, Callable[[Any], _ClearTextPlugin]]:
    """PyMySQL's ``auth_plugin_map``: the clear-text plugins, allowed over required TLS only."""
    plugins: dict[str, Callable[[Any], _ClearTextPlugin]] = {
        "mysql_clear_password": _ClearPassword,
        "dialog": _Dialog,
    }
    if tls is not None:
        plugins = {"mysql_clear_password": _ClearPasswordOverTls, "dialog": _DialogOverTls}
    return plugins


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
        where = f"database {target.database} at {target.host}:{target.port} as {target.user}"
        try:
            # With [database.tls] the connection is encrypted or not made (PyMySQL refuses a server
            # without TLS when given a context); without it, PyMySQL's default applies.
            context = tls_context(target.tls) if target.tls is not None else None
        except (ssl.SSLError, OSError) as exc:
            raise DatabaseError(
                f"cannot set up TLS for {where}",
                observed=str(exc),
                hint="check [database.tls] ca_file: a readable PEM file of the CA that signed the server's certificate",
            ) from exc
        try:
            connection = pymysql.connect(
                host=target.host,
                port=target.port,
                user=target.user,
                password=target.password,
                database=target.database,
                connect_timeout=self.connect_timeout_s,
                ssl=context,
                auth_plugin_map=auth_plugin_map(target.tls),
            )
        except ClearTextRefused as exc:
            raise DatabaseError(
                f"refused to send the password in clear text to {where}",
                observed=str(exc.args[1]) if len(exc.args) > 1 else str(exc),
                hint="add [database.tls] (ca_file, verify) so the connection is encrypted, or give the "
                "account a plugin that does not send the password (mysql_native_password, ed25519, "
                "caching_sha2_password)",
            ) from exc
        except pymysql.MySQLError as exc:
            tls_failed = isinstance(getattr(exc, "original_exception", None), ssl.SSLError)
            raise DatabaseError(
                f"cannot connect to {where}" + (": the TLS handshake failed" if tls_failed else ""),
                observed=str(exc),
                hint="check that the server's certificate is signed by [database.tls] ca_file and names "
                "the host the inventory gives"
                if tls_failed
                else "check the database address, user and password the inventory names"
                + (", and that the server offers TLS ([database.tls])" if target.tls is not None else ""),
            ) from exc
        if target.tls is not None and not getattr(connection, "_secure", False):
            # Older PyMySQL carries on in clear text when the server offers no TLS.
            connection.close()
            raise DatabaseError(
                f"the connection to {where} is not encrypted",
                observed="the server did not take up TLS",
                hint="enable TLS on the server, or remove [database.tls] from the inventory",
            )
        return connection

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

    def _base_tables(self, cursor: pymysql.cursors.Cursor) -> list[str]:
        """The database's base tables (not views), by name."""
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
            (self.target.database,),
        )
        return [str(row[0]) for row in cursor.fetchall()]

    def size_bytes(self) -> int:
        """What the database's tables and indexes take, as information_schema estimates it."""
        with self._cursor("reading the database's size") as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
                "WHERE table_schema = %s",
                (self.target.database,),
            )
            row = cursor.fetchone()
            return int(row[0]) if row else 0

    def table_names(self) -> frozenset[str]:
        """The database's base tables."""
        with self._cursor("listing the tables") as cursor:
            return frozenset(self._base_tables(cursor))

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
            tables = self._base_tables(cursor)
            counts = {}
            for table in tables:
                cursor.execute(f"SELECT COUNT(*) FROM `{table}`")  # noqa: S608 - names from the server
                row = cursor.fetchone()
                counts[table] = int(row[0]) if row else 0
            cursor.execute("COMMIT")
            return counts

    def schema(self) -> Schema:
        """The database's base tables, their columns, indexes and foreign keys, as information_schema says."""
        database = (self.target.database,)
        with self._cursor("reading the schema") as cursor:
            tables = self._base_tables(cursor)
            cursor.execute(
                "SELECT table_name, column_name, column_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = %s ORDER BY table_name, ordinal_position",
                database,
            )
            columns = cursor.fetchall()
            cursor.execute(
                "SELECT table_name, index_name, non_unique, column_name FROM information_schema.statistics "
                "WHERE table_schema = %s ORDER BY table_name, index_name, seq_in_index",
                database,
            )
            statistics = cursor.fetchall()
            cursor.execute(
                "SELECT k.table_name, k.constraint_name, k.column_name, k.referenced_table_name, "
                "k.referenced_column_name, r.update_rule, r.delete_rule "
                "FROM information_schema.key_column_usage k "
                "JOIN information_schema.referential_constraints r ON r.constraint_schema = k.constraint_schema "
                "AND r.table_name = k.table_name AND r.constraint_name = k.constraint_name "
                "WHERE k.table_schema = %s AND k.referenced_table_name IS NOT NULL "
                "ORDER BY k.table_name, k.constraint_name, k.ordinal_position",
                database,
            )
            foreign_keys = cursor.fetchall()
        return schema_from_information_schema(tables, columns, statistics, foreign_keys)

    def table_checksums(self) -> dict[str, int | None]:
        """``CHECKSUM TABLE`` of each base table (None where the server gives none).

        Each table is read at its own moment, and the checksum depends on the
        server's row format: compare checksums taken on the same server with no writes between.
        """
        with self._cursor("checksumming the tables") as cursor:
            tables = self._base_tables(cursor)
            checksums: dict[str, int | None] = {}
            for table in tables:
                quoted = table.replace("`", "``")  # names from the server, quoted as identifiers
                cursor.execute(f"CHECKSUM TABLE `{quoted}`")
                row = cursor.fetchone()
                checksums[table] = None if row is None or row[1] is None else int(row[1])
            return checksums

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
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))
                except pymysql.MySQLError as exc:
                    # The connection ended under the run (the database restarted): the lock went with it.
                    log.warning("the lock %s was already gone with its connection: %s", name, exc)
        finally:
            with contextlib.suppress(pymysql.MySQLError, OSError):
                connection.close()

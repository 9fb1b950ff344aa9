"""A scratch MariaDB: a throwaway server for a copy of Keystone's database, never the live one.

Rehearsals load a backup into it and migrate the copy; the drift check builds
the schema a release's own migrations produce in it; a backup is restored into
it once to record what a faithful restore holds (row counts, CHECKSUM TABLE).

It runs in a container of the backup image (MariaDB's server and client) on
host networking, bound to 127.0.0.1 on a free port, with its data in the
container's own layer, or in the engine host's memory when the copy is known to
be small (``memory_for``): removing the container removes the copy. Its root
password is made up for this one server, reaches it on its stdin and stays in
its tmpfs; Keystone's throwaway containers get the connection the same way
(``keystone_conf``), never in an argument or an environment.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from runner.drivers.containers import PURPOSE_LABEL, Engine, Finished
from runner.drivers.database import client_errors
from runner.errors import DatabaseError
from runner.model import BindMount, DatabaseTarget
from runner.waits import MIGRATION_FINISHES, SCRATCH_DATABASE_ANSWERS, WaitPolicy, WaitTimeout, wait_until

log = logging.getLogger(__name__)

SECRETS_DIR = "/run/keystone-upgrade"  # a tmpfs of the scratch server's container
DUMPS_DIR = "/dumps"
DATA_DIR = "/var/lib/keystone-upgrade-scratch"
# A copy in memory writes nothing to the disk the live database commits on. Measured on the lab at
# 30 requests/s: with the restore check's server on disk, 5-14 requests per upgrade took 40-163 ms
# while it initialised and loaded (credential writes above all); in memory, 1-3, none over 70 ms.
# The memory is the server's own files (a 96 MiB redo log, the system tablespace, undo, the mysql
# schema) and about twice the live data and indexes, for a copy that lives for seconds; a database
# beyond the cap keeps its copy on disk.
IN_MEMORY_BASE_BYTES = 384 * 1024 * 1024
IN_MEMORY_MAX_BYTES = 1024 * 1024 * 1024
# A failed load's error shows the server's last lines (its own messages: no rows of the dump).
SERVER_LINES = 10
# Speed over durability: the copy lives as long as one rehearsal or check.
SERVER_SCRIPT = (
    "set -eu; umask 077; "
    f"timeout 30 cat > {SECRETS_DIR}/password; "
    # Its data and its temporary files (sorts of a bulk load) both under DATA_DIR: in memory or not, together.
    f'password=$(cat {SECRETS_DIR}/password); port="$0"; data={DATA_DIR}/data; sorts={DATA_DIR}/sorts; '
    f'mkdir -p "$data" "$sorts"; chown mysql:mysql {DATA_DIR} "$data" "$sorts"; '
    'mariadb-install-db --user=mysql --datadir="$data" --skip-test-db '
    "--auth-root-authentication-method=normal >/dev/null; "
    "printf \"ALTER USER 'root'@'localhost' IDENTIFIED BY '%s';\\n"
    "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\\n"
    "ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '%s';\\n"
    "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\\n\" "
    f'"$password" "$password" > {SECRETS_DIR}/init.sql; '
    'printf "[client]\\nuser=root\\nhost=127.0.0.1\\nport=%s\\npassword=%s\\n" "$port" "$password" '
    f"> {SECRETS_DIR}/client.cnf; "
    f"chown -R mysql:mysql {SECRETS_DIR}; "
    'exec mariadbd --user=mysql --datadir="$data" --bind-address=127.0.0.1 --port="$port" '
    f'--socket={SECRETS_DIR}/mysqld.sock --init-file={SECRETS_DIR}/init.sql --tmpdir="$sorts" --skip-log-bin '
    "--innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --max-allowed-packet=1G"
)


def memory_for(database_bytes: int | None) -> int | None:
    """The memory a scratch copy of a database of ``database_bytes`` (its data and indexes, as
    information_schema says) gets; None: it stays on disk (too big, or its size is not known)."""
    if database_bytes is None:
        return None
    size = IN_MEMORY_BASE_BYTES + 2 * database_bytes
    return size if size <= IN_MEMORY_MAX_BYTES else None


def free_local_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (the server fails loudly if one takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ScratchDatabase:
    """A running scratch server: where it is, and the container to run its client in."""

    engine: Engine
    container: str
    target: DatabaseTarget  # root on 127.0.0.1:<port>, database ``target.database``
    memory_bytes: int | None = None  # the size of its copy's tmpfs; None: the copy is on disk

    def keystone_conf(self) -> str:
        """A keystone.conf fragment pointing Keystone at this copy (handed over on stdin)."""
        t = self.target
        return (
            f"[database]\nconnection = mysql+pymysql://{t.user}:{t.password}@{t.host}:{t.port}/{t.database}\n"
        )

    def client(self, sql_or_script: str) -> Finished:
        """Run a shell command inside the server's container with the client options file at hand."""
        return self.engine.exec_output(
            self.container,
            ["bash", "-c", f"set -o pipefail; {sql_or_script}"],
        )

    def load(self, dump_name: str) -> None:
        """Load a gzip'd dump (mounted at DUMPS_DIR) into this server; DatabaseError when it fails."""
        finished = self.client(
            f'gunzip -c "{DUMPS_DIR}/{dump_name}" | mariadb --defaults-extra-file={SECRETS_DIR}/client.cnf'
        )
        if finished.exit_code != 0:
            where = "on disk" if self.memory_bytes is None else f"in {self.memory_bytes} bytes of memory"
            server = self.engine.output_tail(self.container, SERVER_LINES).strip() or "(none)"
            raise DatabaseError(
                f"the dump {dump_name} did not load into a scratch database ({where})",
                observed=f"exit code {finished.exit_code}: {client_errors(finished.output)}\n"
                f"the server's last lines:\n{server}",
                hint="the dump is damaged or was written by a different server; take a new backup",
            )

    def create_database(self) -> None:
        """An empty database of ``target.database`` (for a fresh db_sync)."""
        with self.connection() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{self.target.database}`")

    @contextmanager
    def connection(self, database: str | None = None) -> Iterator[pymysql.connections.Connection[Any]]:
        """A connection as root (to ``database``, default none)."""
        t = self.target
        connection = pymysql.connect(
            host=t.host, port=t.port, user=t.user, password=t.password, database=database, connect_timeout=5
        )
        try:
            yield connection
        finally:
            with contextlib.suppress(pymysql.MySQLError, OSError):
                connection.close()


@contextmanager
def scratch_database(
    engine: Engine,
    image: str,
    labels: dict[str, str],
    *,
    database: str = "keystone",
    dumps: Path | None = None,
    database_bytes: int | None = None,
) -> Iterator[ScratchDatabase]:
    """A scratch server for the block, removed afterwards however the block ends.

    ``dumps`` (a directory on the engine's host) is mounted read-only for ``load``.
    ``database_bytes``: the size of what it will hold, when known (0: a schema alone); a small
    enough copy lives in memory (``memory_for``), any other on disk.
    """
    memory = memory_for(database_bytes)
    password = secrets.token_hex(24)
    port = free_local_port()
    mounts = [BindMount(str(dumps), DUMPS_DIR, read_only=True)] if dumps is not None else []
    container = engine.start_detached(
        image,
        [str(port)],
        entrypoint=["bash", "-c", SERVER_SCRIPT],
        mounts=mounts,
        labels={**labels, PURPOSE_LABEL: "scratch-database"},
        stdin_secret=password,
        tmpfs=(SECRETS_DIR,),
        memory_dirs=None if memory is None else {DATA_DIR: memory},
    )
    try:
        scratch = ScratchDatabase(
            engine, container, DatabaseTarget("127.0.0.1", port, "root", database, password), memory
        )
        _wait_until_it_answers(scratch)
        yield scratch
    finally:
        try:
            engine.remove(container)
        except Exception as exc:
            log.warning("could not remove scratch database container %s: %s", container[:12], exc)


def _wait_until_it_answers(scratch: ScratchDatabase) -> None:
    def answers() -> str | None:
        try:
            with scratch.connection() as connection, connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return None
        except (pymysql.MySQLError, OSError) as exc:
            return str(exc)

    try:
        wait_until(SCRATCH_DATABASE_ANSWERS, answers, lambda error: error is None)
    except WaitTimeout as exc:
        raise DatabaseError(
            "a scratch database (a throwaway MariaDB for a copy) did not start",
            observed=f"{exc}\nlast lines:\n{scratch.engine.output_tail(scratch.container, 20)}",
            hint="check that the backup image has MariaDB's server (mariadbd) and the engine's host has "
            "disk space (and memory, for a copy kept in memory)",
        ) from exc


# Keystone's own command against a scratch database: its connection arrives on stdin into the
# container's tmpfs, and keystone-manage reads that file alone (no keystone.conf of a node).
KEYSTONE_MANAGE_SCRIPT = (
    f"set -eu; umask 077; timeout 30 cat > {SECRETS_DIR}/scratch.conf; "
    f'exec keystone-manage --config-file {SECRETS_DIR}/scratch.conf "$@"'
)


def keystone_manage(
    scratch: ScratchDatabase,
    image: str,
    arguments: list[str],
    labels: dict[str, str],
    policy: WaitPolicy = MIGRATION_FINISHES,
) -> Finished:
    """``keystone-manage ARGUMENTS`` of ``image`` against ``scratch`` (in a throwaway container)."""
    return scratch.engine.run_once(
        image,
        ["keystone-manage-on-scratch", *arguments],
        entrypoint=["bash", "-c", KEYSTONE_MANAGE_SCRIPT],
        mounts=[],
        labels={**labels, PURPOSE_LABEL: f"scratch {' '.join(arguments)}"},
        user="root",  # the tmpfs is root's; Kolla's images would run as keystone
        policy=policy,
        stdin_secret=scratch.keystone_conf(),
        tmpfs=(SECRETS_DIR,),
    )

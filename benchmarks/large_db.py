"""A large Keystone database: users, projects, role assignments and revocation events.

Rows are written straight into Keystone's tables (as a long-lived production
database has them), in batches, filling any NOT NULL column the release has
that we do not name with a neutral value, so the same generator works across
releases. Defaults: 100k users, 1M assignments.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from runner.model import DatabaseTarget

BATCH = 5000
DEFAULT_DOMAIN = "default"


@dataclass(frozen=True)
class Size:
    """How much to generate."""

    users: int = 100_000
    projects: int = 10_000
    assignments: int = 1_000_000
    # Keystone prunes revocation events once the tokens they revoke have expired (token
    # expiration + expiration_buffer, 1.5 h by default), so the table holds that window's worth:
    # a cloud revoking 55 tokens a second (logouts, password changes, role removals) keeps
    # about 300k. 29.x's expand indexes this table (742c857f1dfb).
    revocations: int = 300_000


def _neutral(data_type: str) -> Any:
    if data_type in ("int", "bigint", "smallint", "tinyint", "float", "double", "decimal"):
        return 0
    if data_type in ("datetime", "timestamp", "date"):
        return "2026-01-01 00:00:00"
    return "{}" if data_type in ("text", "mediumtext", "longtext") else ""


class Writer:
    """Batched inserts that fill the columns a release requires and we do not name."""

    def __init__(self, connection: pymysql.connections.Connection[Any], database: str):
        self.connection = connection
        self.database = database
        self._columns: dict[str, list[tuple[str, str, bool]]] = {}

    def _required(self, table: str) -> list[tuple[str, str, bool]]:
        if table not in self._columns:
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT column_name, data_type, is_nullable = 'NO' AND column_default IS NULL "
                    "AND extra NOT LIKE '%%auto_increment%%' FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                    (self.database, table),
                )
                self._columns[table] = [(str(r[0]), str(r[1]), bool(r[2])) for r in cursor.fetchall()]
        return self._columns[table]

    def insert(self, table: str, rows: Iterator[Mapping[str, Any]]) -> int:
        """Insert every row, BATCH at a time; returns how many."""
        columns = self._required(table)
        count = 0
        batch: list[Mapping[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                count += self._flush(table, columns, batch)
                batch = []
        if batch:
            count += self._flush(table, columns, batch)
        return count

    def _flush(
        self, table: str, columns: Sequence[tuple[str, str, bool]], batch: list[Mapping[str, Any]]
    ) -> int:
        names = [name for name, _, required in columns if required or name in batch[0]]
        kinds = {name: kind for name, kind, _ in columns}
        values = [tuple(row.get(name, _neutral(kinds[name])) for name in names) for row in batch]
        column_list = ", ".join(f"`{n}`" for n in names)
        placeholders = ", ".join(["%s"] * len(names))
        with self.connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO `{table}` ({column_list}) VALUES ({placeholders})", values)  # noqa: S608
        self.connection.commit()
        return len(batch)


def generate(target: DatabaseTarget, size: Size) -> dict[str, Any]:
    """Fill the database; returns the row counts written and the seconds it took."""
    started = time.monotonic()
    connection = pymysql.connect(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        database=target.database,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM role WHERE name = 'member'")
            row = cursor.fetchone()
        if row is None:
            raise RuntimeError("no 'member' role: bootstrap the database first")
        member_role = str(row[0])
        writer = Writer(connection, target.database)
        run = uuid.uuid4().hex[:6]
        # Spread over the last 1.5 hours, as the prune leaves them (one timestamp a second).
        recent = [time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - k)) for k in range(1, 5400)]
        user_ids = [uuid.uuid4().hex for _ in range(size.users)]
        project_ids = [uuid.uuid4().hex for _ in range(size.projects)]
        written = {
            "project": writer.insert(
                "project",
                (
                    {
                        "id": pid,
                        "name": f"bench-{run}-p{i}",
                        "domain_id": DEFAULT_DOMAIN,
                        "enabled": 1,
                        "parent_id": DEFAULT_DOMAIN,
                        "is_domain": 0,
                        "extra": "{}",
                        "description": "",
                    }
                    for i, pid in enumerate(project_ids)
                ),
            ),
            "user": writer.insert(
                "user",
                ({"id": uid, "domain_id": DEFAULT_DOMAIN, "enabled": 1, "extra": "{}"} for uid in user_ids),
            ),
            "local_user": writer.insert(
                "local_user",
                (
                    {"user_id": uid, "domain_id": DEFAULT_DOMAIN, "name": f"bench-{run}-u{i}"}
                    for i, uid in enumerate(user_ids)
                ),
            ),
        }
        per_user = max(1, size.assignments // max(1, size.users))
        written["assignment"] = writer.insert(
            "assignment",
            (
                {
                    "type": "UserProject",
                    "actor_id": uid,
                    "target_id": project_ids[(i * per_user + k) % len(project_ids)],
                    "role_id": member_role,
                    "inherited": 0,
                }
                for i, uid in enumerate(user_ids)
                for k in range(per_user)
            ),
        )
        written["revocation_event"] = writer.insert(
            "revocation_event",
            (
                {
                    "user_id": user_ids[i % len(user_ids)],
                    "project_id": project_ids[i % len(project_ids)] if i % 3 == 0 else None,
                    "issued_before": recent[i % len(recent)],
                    "revoked_at": recent[i % len(recent)],
                    "audit_id": uuid.uuid4().hex[:22],
                }
                for i in range(size.revocations)
            ),
        )
    finally:
        connection.close()
    return {"rows": written, "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    """Fill a Keystone database from the command line (password from a file)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="keystone")
    parser.add_argument("--database", default="keystone")
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--users", type=int, default=Size.users)
    parser.add_argument("--projects", type=int, default=Size.projects)
    parser.add_argument("--assignments", type=int, default=Size.assignments)
    parser.add_argument("--revocations", type=int, default=Size.revocations)
    args = parser.parse_args()
    with open(args.password_file) as handle:
        password = handle.read().strip()
    target = DatabaseTarget(args.host, args.port, args.user, args.database, password)
    print(generate(target, Size(args.users, args.projects, args.assignments, args.revocations)))


if __name__ == "__main__":
    main()

"""A session idle inside a transaction must not hang the schema change (nor the cluster behind it)."""

from __future__ import annotations

import json

import pymysql
import pytest

from runner.lab.cluster import LabEndpoints
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import keystone_upgrade, write_inventory

pytestmark = pytest.mark.integration


def _idle_in_transaction(cluster: LabEndpoints) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    """What a leaked Keystone session looks like: it read service_provider and never committed."""
    connection = pymysql.connect(
        host=cluster.db_host,
        port=cluster.db_port,
        user=cluster.db_user,
        password=cluster.db_password,
        database=cluster.db_name,
    )
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT COUNT(*) FROM service_provider")
    return connection


def test_expand_ends_an_idle_transaction_that_holds_its_table(cluster_factory: ClusterFactory) -> None:
    # 23.0.2 -> 24.1.0's expand alters service_provider: without help it waits for the
    # idle session's metadata lock for ever (lock_wait_timeout is a day by default).
    cluster = cluster_factory("23.0.2")
    leaked = _idle_in_transaction(cluster)
    try:
        result = keystone_upgrade("upgrade", "-i", write_inventory(cluster, "24.1.0"), "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
        journal = json.loads((cluster.state_dir / "upgrade" / "journal.json").read_text())
        expand = next(s for s in journal["steps"] if s["id"] == "expand")
        ended = [e for e in expand["events"] if e["event"] == "ended idle transactions"]
        assert ended, expand["events"]
        assert leaked.thread_id() in {session["id"] for s in ended for session in s["sessions"]}
        with pytest.raises(pymysql.err.OperationalError), leaked.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        leaked.close()

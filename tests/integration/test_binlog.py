"""Binary logging on, Keystone's user without SUPER: trust function creators for the run, then put it back."""

from __future__ import annotations

import json

import pytest

from runner.drivers.database import MysqlDatabase
from runner.errors import ExitCode
from runner.lab.cluster import LabEndpoints
from runner.model import DatabaseTarget
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import (
    database,
    holding_a_request_on,
    keystone_upgrade,
    write_inventory,
)

pytestmark = pytest.mark.integration


def _root(cluster: LabEndpoints) -> MysqlDatabase:
    password = (cluster.config_dir / "secrets" / "db-root-password").read_text()
    return MysqlDatabase(DatabaseTarget(cluster.db_host, cluster.db_port, "root", cluster.db_name, password))


def _journal(cluster: LabEndpoints) -> dict[str, dict[str, object]]:
    document = json.loads((cluster.state_dir / "upgrade" / "journal.json").read_text())
    return {step["id"]: step for step in document["steps"]}


def test_trust_is_set_before_expand_and_put_back_at_the_end(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory("28.1.0", db_log_bin=True)
    settings = database(cluster).binlog_settings()
    assert settings.log_bin
    assert not settings.user_has_super
    assert not settings.trust_function_creators

    # Without an account that may change it, preflight refuses.
    admin_table = (
        f'[database.admin]\nuser = "root"\npassword_file = "{cluster.config_dir}/secrets/db-root-password"\n'
    )
    refused = keystone_upgrade("plan", "-i", write_inventory(cluster, "29.1.0", **{admin_table: ""}))
    assert refused.returncode == ExitCode.PREFLIGHT
    assert "binary logging is on" in refused.stderr

    result = keystone_upgrade("upgrade", "-i", write_inventory(cluster, "29.1.0"), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    steps = _journal(cluster)
    order = list(steps)
    assert order.index("trust-function-creators") < order.index("expand")
    assert order.index("contract") < order.index("restore-trust")
    assert steps["trust-function-creators"]["events"][0]["previous"] == 0  # type: ignore[index]
    assert steps["restore-trust"]["status"] == "done"
    assert not _root(cluster).binlog_settings().trust_function_creators


def test_trust_is_put_back_when_the_run_fails(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory("28.1.0", db_log_bin=True)
    inventory = write_inventory(cluster, "29.1.0", **{"[run]\n": "[run]\ndrain_timeout_s = 1\n"})
    # A request that never completes keeps keystone-1 from draining: the run fails there.
    with holding_a_request_on(cluster, "keystone-1"):
        result = keystone_upgrade("upgrade", "-i", inventory, "--yes")
    assert result.returncode == ExitCode.DRAIN, result.stdout + result.stderr
    assert "did not drain" in result.stderr
    steps = _journal(cluster)
    assert steps["expand"]["status"] == "done"
    assert steps["node:keystone-1"]["status"] == "failed"
    assert steps["restore-trust"]["status"] == "done"
    assert steps["restore-trust"]["detail"] == "restored after the run failed"
    assert not _root(cluster).binlog_settings().trust_function_creators

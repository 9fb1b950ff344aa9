"""Proof on copies, and the way back, against a real cluster: drift, rehearse, a backup that
changed after it was taken, a cold upgrade and a restore to its backup.

One 28.1.0 cluster for the module: the rehearsals only read it, the drift test
puts back what it changes, and the last test ends where it began (restored).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pymysql
import pytest

from runner.errors import ExitCode
from runner.images.catalog import REPOSITORY
from runner.lab.cluster import LabEndpoints
from tests.integration.harness import lab_cluster
from tests.integration.throwaway import migration_heads
from tests.integration.upgrade_helpers import (
    database,
    holding_a_request_on,
    keystone_upgrade,
    runtime,
    snapshot,
    write_inventory,
)

pytestmark = pytest.mark.integration

DROPPED_COLUMN = "column:trust.remaining_uses"
EXTRA_INDEX = "index:local_user.ix_ku_test_extra"


@pytest.fixture(scope="module")
def cluster(docker_client: docker.DockerClient) -> Iterator[LabEndpoints]:
    """One 28.1.0 cluster: nothing here may leave it changed."""
    with lab_cluster(docker_client, "28.1.0") as endpoints:
        yield endpoints


def _as_root(cluster: LabEndpoints, *statements: str) -> None:
    password = (cluster.config_dir / "secrets" / "db-root-password").read_text().strip()
    connection = pymysql.connect(
        host=cluster.db_host, port=cluster.db_port, user="root", password=password, database=cluster.db_name
    )
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        connection.commit()
    finally:
        connection.close()


def test_drift_reports_a_dropped_column_and_an_extra_index_and_upgrade_refuses_them(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    inventory = write_inventory(cluster, "29.1.0")
    clean = keystone_upgrade("drift", "-i", inventory, "--json")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["differences"] == []
    assert json.loads(clean.stdout)["skipped"] is None

    _as_root(
        cluster,
        "ALTER TABLE trust DROP COLUMN remaining_uses",
        "CREATE INDEX ix_ku_test_extra ON local_user (name)",
    )
    try:
        drifted = keystone_upgrade("drift", "-i", inventory, "--json")
        assert drifted.returncode == ExitCode.DRIFT, drifted.stdout + drifted.stderr
        found = {d["key"]: d for d in json.loads(drifted.stdout)["differences"]}
        assert set(found) == {DROPPED_COLUMN, EXTRA_INDEX}
        assert found[DROPPED_COLUMN]["kind"] == "missing"
        assert "int(11)" in found[DROPPED_COLUMN]["detail"]
        assert found[EXTRA_INDEX]["kind"] == "extra"
        assert "(name)" in found[EXTRA_INDEX]["detail"]

        before = snapshot(docker_client, cluster)
        refused = keystone_upgrade("upgrade", "-i", inventory, "--yes")
        assert refused.returncode == ExitCode.PREFLIGHT, refused.stdout + refused.stderr
        assert f"--accept-drift {DROPPED_COLUMN}" in refused.stderr
        assert f"--accept-drift {EXTRA_INDEX}" in refused.stderr
        assert snapshot(docker_client, cluster) == before

        half = keystone_upgrade("plan", "-i", inventory, "--accept-drift", DROPPED_COLUMN)
        assert half.returncode == ExitCode.PREFLIGHT
        assert EXTRA_INDEX in half.stderr
        accepted = keystone_upgrade(
            "plan", "-i", inventory, "--accept-drift", DROPPED_COLUMN, "--accept-drift", EXTRA_INDEX, "--json"
        )
        assert accepted.returncode == 0, accepted.stderr
        assert any("schema drift accepted" in n for n in json.loads(accepted.stdout)["notices"])
    finally:
        _as_root(
            cluster,
            "ALTER TABLE trust ADD COLUMN remaining_uses int(11) NULL DEFAULT NULL",
            "DROP INDEX ix_ku_test_extra ON local_user",
        )
    assert keystone_upgrade("drift", "-i", inventory).returncode == 0


def test_rehearse_migrates_a_copy_and_leaves_the_cluster_as_it_was(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    inventory = write_inventory(cluster, "29.1.0")
    before, heads = snapshot(docker_client, cluster), database(cluster).alembic_heads()
    result = keystone_upgrade("rehearse", "-i", inventory, "--from-live", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rehearsal = json.loads(result.stdout)
    assert [(p["phase"], p["exit_code"]) for p in rehearsal["phases"]] == [
        ("--expand", 0),
        ("--migrate", 0),
        ("--contract", 0),
    ]
    assert all(p["seconds"] > 0 for p in rehearsal["phases"])
    assert rehearsal["heads"] == rehearsal["target_heads"] != sorted(heads)
    assert rehearsal["schema_differences"] == []
    assert snapshot(docker_client, cluster) == before
    assert database(cluster).alembic_heads() == heads
    assert not [c.name for c in docker_client.containers.list(all=True) if "scratch" in str(c.labels)]
    assert not list((cluster.state_dir / "upgrade" / "rehearsals").rglob("*.sql.gz"))  # the dump is removed


def _altered_copy(dump: Path, into: Path, *, fix_sha256: bool) -> Path:
    """The dump with one value changed in one table's rows, and its manifest (sha256 fixed or not)."""
    text = gzip.decompress(dump.read_bytes()).decode()
    marker = "INSERT INTO `region` VALUES\n("  # mariadb-dump's layout: one row per line
    assert marker in text
    text = text.replace(marker, "INSERT INTO `region` VALUES\n('ku-test-forged','',NULL,NULL),(", 1)
    into.mkdir(parents=True, exist_ok=True)
    copy = into / dump.name
    copy.write_bytes(gzip.compress(text.encode()))
    manifest = json.loads((dump.parent / f"{dump.name}.manifest.json").read_text())
    if fix_sha256:
        manifest["sha256"] = hashlib.sha256(copy.read_bytes()).hexdigest()
    (into / f"{dump.name}.manifest.json").write_text(json.dumps(manifest))
    return copy


def test_a_dump_changed_after_the_backup_is_caught(cluster: LabEndpoints, tmp_path: Path) -> None:
    inventory = write_inventory(cluster, "29.1.0")
    kept = keystone_upgrade("rehearse", "-i", inventory, "--from-live", "--keep-dump")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    dumps = sorted((cluster.state_dir / "upgrade" / "rehearsals").rglob("*.sql.gz"))
    assert len(dumps) == 1
    changed = keystone_upgrade(
        "rehearse", "-i", inventory, "--dump", _altered_copy(dumps[-1], tmp_path / "a", fix_sha256=False)
    )
    assert changed.returncode == ExitCode.BACKUP, changed.stdout + changed.stderr
    assert "changed after the backup" in changed.stderr
    # The manifest rewritten to match: the restore check itself catches the extra row.
    forged = keystone_upgrade(
        "rehearse", "-i", inventory, "--dump", _altered_copy(dumps[-1], tmp_path / "b", fix_sha256=True)
    )
    assert forged.returncode == ExitCode.BACKUP, forged.stdout + forged.stderr
    assert "did not restore to what it held" in forged.stderr
    assert "region:" in forged.stderr


def test_a_cold_run_that_fails_before_the_schema_changes_puts_every_node_back(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    """keystone-2 does not drain: keystone-1, already stopped, and keystone-2 are started again."""
    inventory = write_inventory(cluster, "29.1.0", **{"[run]\n": "[run]\ndrain_timeout_s = 1\n"})
    heads = database(cluster).alembic_heads()
    with holding_a_request_on(cluster, "keystone-2"):
        failed = keystone_upgrade("upgrade", "-i", inventory, "--cold", "--yes")
    assert failed.returncode == ExitCode.DRAIN, failed.stdout + failed.stderr
    assert "every node serves its old release again" in failed.stderr
    journal = json.loads((cluster.state_dir / "upgrade" / "journal.json").read_text())
    assert journal["status"] == "rolled back"
    steps = {s["id"]: s["status"] for s in journal["steps"]}
    assert steps["node-out:keystone-1"] == "undone"
    assert steps["offline-migration"] == "pending"
    assert database(cluster).alembic_heads() == heads
    assert all(s.ready for s in runtime(cluster).show_servers_state())
    assert all(s.is_up for s in runtime(cluster).show_stat())
    for container in cluster.node_containers.values():
        assert docker_client.containers.get(container).status == "running"


def test_a_cold_upgrade_shows_its_outage_and_restore_brings_the_backup_back(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    """--cold 28.1.0 -> 29.1.0 (contracted: rollback cannot help), then restore to its backup."""
    inventory = write_inventory(cluster, "29.1.0")
    cold = keystone_upgrade("upgrade", "-i", inventory, "--cold", "--yes", "--probe", "--json")
    assert cold.returncode == 0, cold.stdout[-3000:] + cold.stderr[-3000:]
    report = json.loads(cold.stdout)
    assert report["status"] == "succeeded"
    probe = report["probe"]
    # Every node was stopped at once: the probe saw the outage, and the report says how long.
    assert probe["failed"] > 0
    assert probe["longest_outage_s"] > 1.0
    stopped = {p["phase"]: p for p in probe["phases"]}["offline-migration"]
    assert stopped["requests"] == stopped["failed"] > 0
    assert not probe["writes"]["lost"]
    assert database(cluster).alembic_heads() == migration_heads(f"{REPOSITORY}/keystone:29.1.0")

    _as_root(cluster, "INSERT INTO region (id, description, extra) VALUES ('ku-after-backup', '', '{}')")
    rollback = keystone_upgrade("rollback", "-i", inventory, "--yes")
    assert rollback.returncode == ExitCode.ROLLBACK  # contracted: only the backup goes back
    assert "keystone-upgrade restore" in rollback.stderr

    restored = keystone_upgrade("restore", "-i", inventory, "--yes", "--json")
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]
    assert json.loads(restored.stdout)["status"] == "succeeded"
    releases = {
        docker_client.containers.get(c).exec_run(["keystone-manage", "--version"]).output.decode().strip()
        for c in cluster.node_containers.values()
    }
    assert releases == {"28.1.0"}
    assert database(cluster).alembic_heads() == migration_heads(f"{REPOSITORY}/keystone:28.1.0")
    backups = cluster.state_dir / "upgrade" / "backups"
    manifests = [json.loads(p.read_text()) for p in backups.rglob("*.manifest.json")]
    # The cold run's backup (taken with every node stopped: its row counts are the dump's), and the
    # restore's own dump of the database it replaced (the row written after the backup is in it).
    assert sorted(m["release"] for m in manifests) == ["28.1.0", "29.1.0"]
    backup = next(m for m in manifests if m["release"] == "28.1.0")
    safety = next(m for m in manifests if m["release"] == "29.1.0")
    assert safety["tables"]["region"] == backup["tables"]["region"] + 1
    # What the backup held, and not the row written after it.
    assert database(cluster).table_row_counts() == backup["tables"]
    served = keystone_upgrade("probe", "-i", inventory, "--seconds", "3", "--json")
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout)["failed"] == 0

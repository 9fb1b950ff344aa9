"""A scratch server's copy lives in the engine host's memory when it is known to be small, and on
disk otherwise: the restore check's server no longer writes on the disk the live database commits
on. Against the real backup image on the local engine."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import docker
import pytest

import runner.drivers.scratch_database
from runner.config.kolla import DEFAULT_BACKUP_IMAGE
from runner.drivers.backup import _restore_checked
from runner.drivers.docker_engine import DockerEngine
from runner.drivers.scratch_database import DATA_DIR, IN_MEMORY_MAX_BYTES, memory_for, scratch_database

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("database_bytes", "in_memory"),
    [(0, True), (50 * 1024 * 1024, True), (IN_MEMORY_MAX_BYTES, False), (None, False)],
)
def test_a_small_copy_lives_in_memory_and_a_big_or_unknown_one_on_disk(
    docker_client: docker.DockerClient, database_bytes: int | None, in_memory: bool
) -> None:
    with scratch_database(
        DockerEngine(),
        DEFAULT_BACKUP_IMAGE,
        {"io.keystone-upgrade.test": "scratch"},
        database_bytes=database_bytes,
    ) as scratch:
        scratch.create_database()
        with scratch.connection(scratch.target.database) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB")
            cursor.executemany("INSERT INTO t VALUES (%s, %s)", [(i, "x" * 64) for i in range(1000)])
            connection.commit()
            cursor.execute("SELECT COUNT(*) FROM t")
            assert cursor.fetchone() == (1000,)
        filesystem = scratch.client(f"stat -f -c %T {DATA_DIR}")
        assert filesystem.exit_code == 0, filesystem.output
        tmpfs = docker_client.api.inspect_container(scratch.container)["HostConfig"]["Tmpfs"] or {}
        if in_memory:
            assert filesystem.output.strip() == "tmpfs"
            assert tmpfs[DATA_DIR] == f"size={memory_for(database_bytes)},mode=0700"
        else:
            assert filesystem.output.strip() != "tmpfs"
            assert DATA_DIR not in tmpfs
    assert not docker_client.containers.list(all=True, filters={"id": scratch.container})


# Enough for the server's own files (about 130 MiB on MariaDB 10.11), not for the rows below,
# which alone are more than all of it.
SMALL_MEMORY_BYTES = 160 * 1024 * 1024
BIG_ROWS = 200
ROW = "s3cret-row-" + "x" * (1024 * 1024)


def test_a_copy_that_outgrows_its_memory_is_loaded_again_on_disk_and_no_row_is_told(
    docker_client: docker.DockerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """information_schema's sizes lag: a dump bigger than the memory its copy got fails to load
    there and is loaded once more on disk. The failure is logged by the client's and the server's
    own messages, without a row of the dump."""
    dump = tmp_path / "big.sql.gz"
    with gzip.open(dump, "wt") as out:
        out.write("CREATE DATABASE IF NOT EXISTS keystone; USE keystone;\n")
        out.write("CREATE TABLE big (id INT PRIMARY KEY, v LONGTEXT) ENGINE=InnoDB;\n")
        out.writelines(f"INSERT INTO big VALUES ({n}, '{ROW}');\n" for n in range(BIG_ROWS))  # noqa: S608 - a dump written by the test
    monkeypatch.setattr(runner.drivers.scratch_database, "IN_MEMORY_BASE_BYTES", SMALL_MEMORY_BYTES)
    engine, labels = DockerEngine(), {"io.keystone-upgrade.test": "scratch-fallback"}
    with (
        caplog.at_level(logging.WARNING, logger="runner.drivers.backup"),
        scratch_database(
            engine, DEFAULT_BACKUP_IMAGE, labels, database="keystone", dumps=tmp_path, database_bytes=0
        ) as scratch,
    ):
        assert scratch.memory_bytes == SMALL_MEMORY_BYTES
        rows, checksums = _restore_checked(
            scratch, dump, engine=engine, image=DEFAULT_BACKUP_IMAGE, labels=labels, database="keystone"
        )
    assert rows == {"big": BIG_ROWS}
    assert checksums["big"] is not None
    (fallback,) = [
        r.getMessage() for r in caplog.records if "loading the dump again on disk" in r.getMessage()
    ]
    assert f"in {SMALL_MEMORY_BYTES} bytes of memory" in fallback
    assert "s3cret-row" not in caplog.text
    assert "xxxxxxxxxx" not in caplog.text
    assert not docker_client.containers.list(
        all=True, filters={"label": "io.keystone-upgrade.test=scratch-fallback"}
    )

"""A scratch server's copy lives in the engine host's memory when it is known to be small, and on
disk otherwise: the restore check's server no longer writes on the disk the live database commits
on. Against the real backup image on the local engine."""

from __future__ import annotations

import docker
import pytest

from runner.config.kolla import DEFAULT_BACKUP_IMAGE
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

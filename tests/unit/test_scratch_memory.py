"""Where a scratch server keeps its copy: in memory when it is known to be small, else on disk."""

from __future__ import annotations

from runner.drivers.scratch_database import IN_MEMORY_BASE_BYTES, IN_MEMORY_MAX_BYTES, memory_for
from tests.unit.test_keep_to_one_cpu import _Client, _engine

MIB = 1024 * 1024


def test_a_schema_alone_or_a_small_database_gets_its_files_and_twice_its_data_in_memory() -> None:
    assert memory_for(0) == IN_MEMORY_BASE_BYTES
    assert memory_for(100 * MIB) == IN_MEMORY_BASE_BYTES + 200 * MIB


def test_a_database_past_the_cap_or_of_unknown_size_stays_on_disk() -> None:
    largest = (IN_MEMORY_MAX_BYTES - IN_MEMORY_BASE_BYTES) // 2
    assert memory_for(largest) == IN_MEMORY_MAX_BYTES
    assert memory_for(largest + 1) is None
    assert memory_for(None) is None


def test_the_engine_mounts_secrets_small_and_data_at_its_size() -> None:
    client = _Client(2)
    _engine(client)._create_throwaway(
        "mariadb",
        ["3306"],
        mounts=(),
        labels={},
        environment=None,
        user=None,
        entrypoint=None,
        stdin_open=True,
        tmpfs=("/run/secrets",),
        memory_dirs={"/var/lib/data": 512 * MIB},
    )
    assert client.api.created[0]["tmpfs"] == {
        "/run/secrets": "size=64k,mode=0700",
        "/var/lib/data": f"size={512 * MIB},mode=0700",
    }

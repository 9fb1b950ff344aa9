"""Where a scratch server keeps its copy: in memory when it is known to be small, else on disk."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

from runner.drivers import backup
from runner.drivers import scratch_database as scratch_database_module
from runner.drivers.scratch_database import (
    DATA_DIR,
    IN_MEMORY_BASE_BYTES,
    IN_MEMORY_MAX_BYTES,
    memory_for,
    scratch_database,
)
from runner.errors import BackupError, DatabaseError
from runner.facts import drift
from runner.model import DatabaseTarget
from tests.unit.fakes import FakeEngine
from tests.unit.test_keep_to_one_cpu import _Client, _create, _engine

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
    _create(_engine(client), tmpfs=("/run/secrets",), memory_dirs={"/var/lib/data": 512 * MIB})
    assert client.api.created[0]["tmpfs"] == {
        "/run/secrets": "size=64k,mode=0700",
        "/var/lib/data": f"size={512 * MIB},mode=0700",
    }


def test_the_scratch_server_asks_its_engine_for_memory_only_for_a_copy_known_to_be_small(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scratch_database_module, "_wait_until_it_answers", lambda scratch: None)
    engine = FakeEngine([])
    for database_bytes in (0, None, IN_MEMORY_MAX_BYTES):
        with scratch_database(engine, "mariadb", {}, database_bytes=database_bytes) as scratch:
            assert scratch.memory_bytes == memory_for(database_bytes)
    assert engine.memory_dirs == [{DATA_DIR: IN_MEMORY_BASE_BYTES}, None, None]


class _FailingLoad:
    """A scratch server whose load fails: its copy's tmpfs was too small, or the dump is bad."""

    def __init__(self, memory_bytes: int | None) -> None:
        self.memory_bytes = memory_bytes

    def load(self, dump_name: str) -> None:
        raise DatabaseError("the dump did not load", observed="The table 'x' is full", hint="")


def test_a_restore_check_whose_copy_did_not_load_in_memory_loads_it_once_more_on_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_disk: list[Path] = []

    def restored(
        engine: object, image: str, dump: Path, database: str, labels: object
    ) -> tuple[dict[str, int], dict[str, int | None]]:
        on_disk.append(dump)
        return {"user": 1}, {"user": 7}

    monkeypatch.setattr(backup, "restored_contents", restored)
    dump = tmp_path / "keystone.sql.gz"
    scratch: Any = _FailingLoad(IN_MEMORY_BASE_BYTES)
    assert backup._restore_checked(
        scratch, dump, engine=FakeEngine([]), image="mariadb", labels={}, database="keystone"
    ) == (
        {"user": 1},
        {"user": 7},
    )
    assert on_disk == [dump]
    with pytest.raises(DatabaseError):  # on disk already: the failure is the dump's
        backup._restore_checked(
            _FailingLoad(None),  # type: ignore[arg-type]
            dump,
            engine=FakeEngine([]),
            image="mariadb",
            labels={},
            database="keystone",
        )
    assert on_disk == [dump]


class _Stop(Exception):
    """Ends the code under test once it has asked for its scratch server."""


def _scratch_asked(asked: list[dict[str, object]]) -> Callable[..., AbstractContextManager[object]]:
    @contextmanager
    def ask(engine: object, image: str, labels: object, **options: object) -> Iterator[object]:
        asked.append(options)
        raise _Stop
        yield  # a generator: the context manager's shape

    return ask


def test_the_drift_reference_asks_for_its_scratch_server_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dict[str, object]] = []
    monkeypatch.setattr(drift, "scratch_database", _scratch_asked(asked))
    with pytest.raises(_Stop):
        drift.build_reference(FakeEngine([]), "keystone:29.1.0", "mariadb", {})
    assert asked == [{"database_bytes": 0}]


class _LiveDatabase:
    """The live database as the backup reads it: its rows, and its size when asked."""

    asked: ClassVar[list[str]] = []

    def __init__(self, target: DatabaseTarget) -> None:
        pass

    def table_row_counts(self) -> dict[str, int]:
        self.asked.append("rows")
        return {"user": 1}

    def size_bytes(self) -> int:
        self.asked.append("size")
        return 5 * MIB


def test_the_backup_reads_the_live_size_only_for_its_restore_check_and_hands_it_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[dict[str, object]] = []
    monkeypatch.setattr(backup, "MysqlDatabase", _LiveDatabase)
    monkeypatch.setattr(backup, "scratch_database", _scratch_asked(asked))
    target = DatabaseTarget("127.0.0.1", 3306, "keystone", "keystone", "secret")
    _LiveDatabase.asked = []
    with pytest.raises(BackupError):  # the fake engine writes no dump
        backup.dump_verified(FakeEngine([]), "mariadb", target, tmp_path, {}, restore_check=False)
    assert _LiveDatabase.asked == ["rows"]
    assert asked == []
    _LiveDatabase.asked = []
    with pytest.raises(_Stop):
        backup.dump_verified(FakeEngine([]), "mariadb", target, tmp_path, {}, restore_check=True)
    assert _LiveDatabase.asked == ["rows", "size"]
    assert asked == [{"database": "keystone", "dumps": tmp_path, "database_bytes": 5 * MIB}]

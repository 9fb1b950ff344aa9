"""The dump started beside preflight: adopted by the step that asks for that very dump while it is
recent, removed with everything it wrote otherwise."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from runner.drivers import container_backups
from runner.drivers.backup import BackupManifest
from runner.drivers.container_backups import ContainerBackups
from runner.errors import BackupError
from runner.interrupts import ForcedStop, Interrupted
from runner.model import DatabaseTarget
from runner.upgrade import _abandon_unless_forced

IMAGE = "backup:1"
LABELS = {"run": "r"}


class Dumps:
    """``dump_verified`` without an engine: writes a file where the real one would, counts calls."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.directories: list[Path] = []
        self.lock = threading.Lock()

    def __call__(
        self, engine: Any, image: str, target: Any, directory: Path, labels: Any, **_: Any
    ) -> BackupManifest:
        with self.lock:
            self.directories.append(directory)
        directory.mkdir(parents=True, exist_ok=True)
        dump = directory / f"keystone-{len(self.directories)}.sql.gz"
        dump.write_bytes(b"dump")
        if self.fail:
            raise BackupError("the database backup failed; nothing was changed")
        return BackupManifest(str(dump), "0" * 64, 4, "keystone", {"user": 1}, 0.0, 1.0)


@pytest.fixture
def dumps(monkeypatch: pytest.MonkeyPatch) -> Dumps:
    fake = Dumps()
    monkeypatch.setattr(container_backups, "dump_verified", fake)
    return fake


def _backups() -> ContainerBackups:
    return ContainerBackups(engine=None, target=DatabaseTarget("127.0.0.1", 1, "u", "keystone", "p"))  # type: ignore[arg-type]


def test_the_step_adopts_the_dump_begun_beside_preflight_and_writes_its_manifest(
    tmp_path: Path, dumps: Dumps
) -> None:
    backups, directory = _backups(), tmp_path / "backups" / "run-1"
    backups.begin(IMAGE, directory, LABELS)
    manifest = backups.take(IMAGE, directory, LABELS, release="28.1.0", node_images={"k1": "ks:28"})
    assert dumps.directories == [directory]  # one dump: the early one
    assert manifest.release == "28.1.0"
    assert BackupManifest.read(Path(f"{manifest.dump}.manifest.json")).node_images == {"k1": "ks:28"}
    backups.abandon()  # adopted: nothing left to remove
    assert Path(manifest.dump).is_file()


def test_a_dump_begun_and_not_taken_is_removed_with_the_directories_it_made(
    tmp_path: Path, dumps: Dumps
) -> None:
    (tmp_path / "backups").mkdir()
    backups = _backups()
    backups.begin(IMAGE, tmp_path / "backups" / "run-1" / "29.1.0", LABELS)
    backups.abandon()
    assert dumps.directories  # it ran
    assert list((tmp_path / "backups").iterdir()) == []  # run-1 and all under it: gone


def test_another_dump_or_a_stale_one_is_removed_and_the_step_dumps_anew(
    tmp_path: Path, dumps: Dumps, monkeypatch: pytest.MonkeyPatch
) -> None:
    backups = _backups()
    backups.begin(IMAGE, tmp_path / "run-1", LABELS)
    backups.take(IMAGE, tmp_path / "run-2", LABELS)
    assert dumps.directories == [tmp_path / "run-1", tmp_path / "run-2"]
    assert not (tmp_path / "run-1").exists()

    monkeypatch.setattr(container_backups, "EARLY_DUMP_FRESH_S", -1.0)  # an operator slow to confirm
    backups.begin(IMAGE, tmp_path / "run-3", LABELS)
    manifest = backups.take(IMAGE, tmp_path / "run-3", LABELS)
    assert len(dumps.directories) == 4  # the stale one, then one taken at the step
    assert Path(manifest.dump).name == "keystone-4.sql.gz"
    assert sorted(p.name for p in (tmp_path / "run-3").iterdir()) == [
        "keystone-4.sql.gz",
        "keystone-4.sql.gz.manifest.json",
    ]


def test_a_directory_that_exists_is_never_dumped_into_early(tmp_path: Path, dumps: Dumps) -> None:
    (tmp_path / "run-1").mkdir()
    (tmp_path / "run-1" / "operator's file").write_text("kept")
    backups = _backups()
    backups.begin(IMAGE, tmp_path / "run-1", LABELS)
    backups.abandon()
    assert dumps.directories == []
    assert (tmp_path / "run-1" / "operator's file").read_text() == "kept"


def test_an_early_dump_that_failed_fails_its_step_and_leaves_nothing_when_abandoned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(container_backups, "dump_verified", Dumps(fail=True))
    backups = _backups()
    backups.begin(IMAGE, tmp_path / "run-1", LABELS)
    with pytest.raises(BackupError, match="backup failed"):
        backups.take(IMAGE, tmp_path / "run-1", LABELS)
    backups.begin(IMAGE, tmp_path / "run-2", LABELS)
    backups.abandon()
    assert not (tmp_path / "run-2").exists()


def test_an_unadopted_dump_is_removed_when_a_run_ends_unless_a_forced_stop_asks_not_to_wait() -> None:
    class Drivers:
        def __init__(self) -> None:
            self.backups = self
            self.abandoned = 0

        def abandon(self) -> None:
            self.abandoned += 1

    drivers = Drivers()
    on_exit = _abandon_unless_forced(drivers)  # type: ignore[arg-type]
    assert on_exit(None, None, None) is False
    assert on_exit(Interrupted, None, None) is False
    assert drivers.abandoned == 2
    on_exit(ForcedStop, None, None)
    assert drivers.abandoned == 2

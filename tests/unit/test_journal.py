"""The journal: atomic, complete after every transition, readable by a later process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.journal import JOURNAL_FILE, Event, Journal, StepStatus

PLAN = {
    "run_id": "20261124T000000Z-abcdef",
    "target_image": "k:29",
    "target_version": "29.1.0",
    "source_versions": ["28.1.0"],
    "steps": [
        {"id": "expand", "kind": "expand", "node": None},
        {"id": "node:a", "kind": "node", "node": "a"},
    ],
}


def test_every_transition_is_on_disk_and_a_new_process_reads_it(tmp_path: Path) -> None:
    journal = Journal.start(tmp_path, PLAN, "inventory.toml")
    on_disk = json.loads((tmp_path / JOURNAL_FILE).read_text())
    assert [s["status"] for s in on_disk["steps"]] == ["pending", "pending"]
    journal.begin("expand")
    assert json.loads((tmp_path / JOURNAL_FILE).read_text())["steps"][0]["status"] == "running"
    journal.intend("expand", Event.DB_SYNC, phase="--expand")
    # An intent is on disk before its effect: a run killed now leaves it for the next reader.
    assert json.loads((tmp_path / JOURNAL_FILE).read_text())["steps"][0]["intended"]["event"] == "db_sync"
    journal.event("expand", Event.DB_SYNC, exit_code=0)
    assert journal.step("expand").intended is None
    journal.end("expand", StepStatus.DONE)
    journal.end("node:a", StepStatus.SKIPPED, "already runs 29.1.0")
    journal.finish("succeeded")

    loaded = Journal.load(tmp_path)
    assert loaded is not None
    assert loaded.run_id == journal.run_id == PLAN["run_id"]
    assert loaded.step("expand").status is StepStatus.DONE
    assert loaded.step("expand").events[0]["exit_code"] == 0
    assert loaded.step("node:a").detail == "already runs 29.1.0"
    assert loaded.document["status"] == "succeeded"
    assert list(tmp_path.glob(".journal-*")) == []  # no temp files left behind


def test_a_failed_write_leaves_the_previous_journal_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal.start(tmp_path, PLAN, "inventory.toml")
    before = (tmp_path / JOURNAL_FILE).read_text()

    def broken_dump(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        journal.begin("expand")
    assert (tmp_path / JOURNAL_FILE).read_text() == before
    assert list(tmp_path.glob(".journal-*")) == []


def test_no_journal_is_none(tmp_path: Path) -> None:
    assert Journal.load(tmp_path) is None

"""The run's journal: every transition, written atomically before and after each step.

A JSON document in the state directory, replaced whole (temp file, fsync,
rename) on every change, so a reader (``status``, a resumed run, a rollback)
sees either the previous state or the next, never half of one. It holds no
secrets: only names, versions, container ids, states and timings.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from runner.errors import ConfigError
from runner.journal_shape import damaged_journal, document_problems, has_type, no_constant

JOURNAL_FILE = "journal.json"
SCHEMA_VERSION = 2  # 2: the plan carries every step's parameters; steps record intents


class StepStatus(StrEnum):
    """Where a step is."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNDONE = "undone"  # applied, then put back by a rollback


class Event(StrEnum):
    """Every name a journal event has: written by the steps, read by status, reports and benchmarks."""

    # A node's upgrade, in order.
    DRAIN = "drain"
    DRAINED = "drained"
    MAINT = "maint"
    STOPPED = "stopped"
    RENAMED = "renamed"  # the stopped old node set aside (kept under another name) for rollback
    STARTED = "started"
    HEALTHY = "healthy"
    FULL_CPU = "full cpu weight"  # booted at a low CPU weight; the old node's weight once healthy
    VERSION = "version"
    TOKENS = "tokens accepted both ways"  # issued on the swapped node, validated on a peer, and back
    WARMED = "warmed up"  # direct requests to every worker before it takes the load balancer's traffic
    READY = "ready"
    UP = "up"
    # HAProxy forgot a state the runner set (a reload or restart without saved states): set again.
    REAPPLIED = "state set again"
    # Bringing a node's old release back (a step's undo).
    RESTORED_OLD = "old node restored"
    # A failed step the executor undid at once: what it changed is put back.
    ROLLED_BACK = "rolled back"
    # The database.
    DUMPED = "dumped"
    LOADED = "backup loaded"  # restore: the live database replaced by a dump
    TRUST_SET = "set"
    TRUST_RESTORED = "restored"
    IDLE_TRANSACTIONS_ENDED = "ended idle transactions"
    DB_SYNC = "db_sync"
    LEFT_RUNNING = "left running"  # a migration past its timeout: reported, not killed
    CLUSTER_ON_TARGET = "every node on target and UP"
    CHECKED = "checked"
    # Every node's and a throwaway's key repositories compared (short digests).
    KEYS_COMPARED = "keys compared"
    # Keystone's memcached emptied after contract ([cache] flush_after_upgrade).
    FLUSHED = "cache flushed"
    # Cleanup.
    REMOVED = "removed"


def new_run_id() -> str:
    """A run's id: when it was planned, and enough randomness to tell two apart."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def _now() -> float:
    return time.time()


@dataclass
class StepRecord:
    """One step's history: its status, times, and the sub-transitions within it."""

    id: str
    kind: str
    node: str | None
    status: StepStatus = StepStatus.PENDING
    started_at: float | None = None
    finished_at: float | None = None
    detail: str | None = None
    # Ordered sub-transitions (e.g. a node's drain, maint, swap, ready) with times and data.
    events: list[dict[str, Any]] = field(default_factory=list)
    # The effect announced by ``intend`` and not yet recorded as done: after a crash it says
    # what may have happened to the cluster.
    intended: dict[str, Any] | None = None

    @property
    def seconds(self) -> float | None:
        """How long the step took, once it ended."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class Journal:
    """The journal of one run, kept in memory and mirrored to disk on every change."""

    def __init__(self, path: Path, document: dict[str, Any], steps: list[StepRecord]):
        self.path = path
        self.document = document
        self.steps = steps

    @classmethod
    def start(cls, state_dir: Path, plan: dict[str, Any], inventory: str) -> Journal:
        """A new run's journal, written before anything changes; the run id is the plan's."""
        state_dir.mkdir(parents=True, exist_ok=True)
        document = {
            "schema": SCHEMA_VERSION,
            "run_id": plan["run_id"],
            "inventory": inventory,
            "started_at": _now(),
            "finished_at": None,
            "status": "running",
            "plan": plan,
            "events": [],
        }
        steps = [StepRecord(id=s["id"], kind=s["kind"], node=s.get("node")) for s in plan["steps"]]
        journal = cls(state_dir / JOURNAL_FILE, document, steps)
        journal.save()
        return journal

    @classmethod
    def load(cls, state_dir: Path) -> Journal | None:
        """The last run's journal, or None when there is none; one ConfigError (exit 3) when it is damaged.

        Every reader (status, resume, rollback, an upgrade asking about the last
        run) comes through here, so a journal that passes has the shape each of
        them reads: a damaged one never reaches them to end in a traceback.
        """
        path = state_dir / JOURNAL_FILE
        if not os.path.lexists(path):
            return None
        try:
            document = json.loads(path.read_bytes().decode("utf-8"), parse_constant=no_constant)
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON, NaN
            found = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise damaged_journal(
                path, [f"it is not a readable JSON document ({found or type(exc).__name__})"]
            ) from exc
        schema = document.get("schema") if isinstance(document, dict) else None
        if schema is not None and (not has_type(schema, int) or schema != SCHEMA_VERSION):
            raise ConfigError(
                f"the journal {path} was written by another version of keystone-upgrade; nothing was changed",
                observed=f"journal schema {schema!r}; this version reads schema {SCHEMA_VERSION}",
                hint="finish or roll back that run with the version that wrote it, "
                "or move the journal aside to start afresh",
            )
        problems = document_problems(
            document,
            schema=SCHEMA_VERSION,
            statuses=tuple(s.value for s in StepStatus),
            payloads=EVENT_PAYLOADS,
        )
        if problems:
            raise damaged_journal(path, problems)
        return cls._from_document(path, document)

    @classmethod
    def _from_document(cls, path: Path, document: dict[str, Any]) -> Journal:
        steps = [
            StepRecord(
                id=s["id"],
                kind=s["kind"],
                node=s.get("node"),
                status=StepStatus(s["status"]),
                started_at=s.get("started_at"),
                finished_at=s.get("finished_at"),
                detail=s.get("detail"),
                events=list(s.get("events", [])),
                intended=s.get("intended"),
            )
            for s in document.pop("steps")
        ]
        return cls(path, document, steps)

    @property
    def run_id(self) -> str:
        """This run's id (also the label on its containers)."""
        return str(self.document["run_id"])

    def step(self, step_id: str) -> StepRecord:
        """The record of one step."""
        return next(s for s in self.steps if s.id == step_id)

    def begin(self, step_id: str) -> None:
        """Mark a step running (written before it does anything)."""
        record = self.step(step_id)
        record.status, record.started_at = StepStatus.RUNNING, _now()
        self.save()

    def intend(self, step_id: str, name: Event, **data: Any) -> None:
        """Announce an effect on the cluster before it is applied (cleared when it is recorded done)."""
        self.step(step_id).intended = {"at": _now(), "event": name.value, **data}
        self.save()

    def event(self, step_id: str, name: Event, **data: Any) -> None:
        """Record a sub-transition of a running step (an effect done, or a state observed)."""
        record = self.step(step_id)
        if record.intended is not None and record.intended["event"] == name.value:
            record.intended = None
        record.events.append({"at": _now(), "event": name.value, **data})
        self.save()

    def rolled_back(self, step_id: str) -> bool:
        """True when the step failed and was put back at once (its last event says so)."""
        events = self.step(step_id).events
        return bool(events) and events[-1]["event"] == Event.ROLLED_BACK.value

    def events_of(self, step_id: str, name: Event) -> list[dict[str, Any]]:
        """A step's recorded events of one name, in order."""
        return [e for e in self.step(step_id).events if e["event"] == name.value]

    def end(self, step_id: str, status: StepStatus, detail: str | None = None) -> None:
        """Mark a step done, skipped or failed."""
        record = self.step(step_id)
        if record.started_at is None:
            record.started_at = _now()
        record.status, record.finished_at, record.detail = status, _now(), detail
        if status in (StepStatus.DONE, StepStatus.SKIPPED, StepStatus.UNDONE):
            record.intended = None  # only an interrupted or failed step leaves an intent behind
        self.save()

    def finish(self, status: str) -> None:
        """Close the run: succeeded, failed or refused."""
        self.document["status"] = status
        self.document["finished_at"] = _now()
        self.save()

    def reopen(self) -> None:
        """The run goes on (resume): running again, each resumption recorded."""
        self.document["status"] = "running"
        self.document["finished_at"] = None
        self.document.setdefault("resumed_at", []).append(_now())
        self.save()

    def as_dict(self) -> dict[str, Any]:
        """The journal as written."""
        return {
            **self.document,
            "steps": [
                {
                    "id": s.id,
                    "kind": s.kind,
                    "node": s.node,
                    "status": s.status.value,
                    "started_at": s.started_at,
                    "finished_at": s.finished_at,
                    "detail": s.detail,
                    "events": s.events,
                    "intended": s.intended,
                }
                for s in self.steps
            ],
        }

    def save(self) -> None:
        """Replace the file atomically: temp file in the same directory, fsync, rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".journal-", suffix=".json")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(self.as_dict(), out, indent=2, sort_keys=False)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


# -- reading a journal back: its shape is checked (runner.journal_shape) against this vocabulary -----

# Data the readers take from an event's payload, by event name.
EVENT_PAYLOADS: dict[str, tuple[tuple[str, type], ...]] = {
    Event.TRUST_SET.value: (("previous", int),),
    Event.DUMPED.value: (("dump", str),),
    Event.FLUSHED.value: (("server", str),),
}

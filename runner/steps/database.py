"""Steps on the database that change no schema: the verified backup, and the trust setting for triggers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.drivers.ports import Database
from runner.errors import MigrationError
from runner.journal import Event
from runner.steps.base import RunContext, Step, StepKind, Undo


@dataclass(frozen=True, kw_only=True)
class Backup(Step):
    """A verified dump before the schema changes; nothing else runs without it."""

    kind = StepKind.BACKUP

    image: str  # the backup client image (mariadb-dump, bash)
    directory: str  # where this run's dump and manifest go
    restore_check: bool = True  # restored once into a scratch database to record what it holds
    # What serves on the database now (a restore starts these again): its release, node -> image.
    release: str | None = None
    node_images: tuple[tuple[str, str], ...] = ()
    node_image_ids: tuple[tuple[str, str], ...] = ()

    def apply(self, context: RunContext) -> None:
        """Dump, read the dump back, write its manifest."""
        context.journal.intend(self.id, Event.DUMPED, directory=self.directory)
        manifest = context.drivers.backups.take(
            self.image,
            Path(self.directory),
            context.labels("backup"),
            restore_check=self.restore_check,
            release=self.release,
            node_images=dict(self.node_images),
            node_image_ids=dict(self.node_image_ids),
        )
        # started_at: before this step's intent when the dump was begun beside preflight.
        context.journal.event(
            self.id,
            Event.DUMPED,
            dump=manifest.dump,
            sha256=manifest.sha256,
            tables=len(manifest.tables),
            started_at=manifest.started_at,
        )


def _admin(context: RunContext) -> Database:
    if context.drivers.admin_database is None:
        raise MigrationError(
            "setting log_bin_trust_function_creators needs [database.admin]",
            hint="give an account with SUPER in the inventory",
        )
    return context.drivers.admin_database


def _put_trust_back(context: RunContext, step_id: str, trust_step: str) -> None:
    set_events = context.journal.events_of(trust_step, Event.TRUST_SET)
    if not set_events:
        return  # the setting was never changed
    previous = bool(set_events[-1]["previous"])
    context.journal.intend(step_id, Event.TRUST_RESTORED, log_bin_trust_function_creators=int(previous))
    _admin(context).set_trust_function_creators(previous)
    context.journal.event(step_id, Event.TRUST_RESTORED, log_bin_trust_function_creators=int(previous))


@dataclass(frozen=True, kw_only=True)
class TrustFunctionCreators(Step):
    """Binary logging is on and Keystone's user lacks SUPER: let expand create its triggers.

    The value it found is journalled, so that putting it back needs nothing but the journal.
    """

    kind = StepKind.TRUST_FUNCTION_CREATORS
    undo_rule = Undo.REVERSIBLE

    def apply(self, context: RunContext) -> None:
        """SET GLOBAL log_bin_trust_function_creators = 1, recording what it was."""
        admin = _admin(context)
        # A resumed run finds the value it set itself: what counts is the first one recorded.
        recorded = context.journal.events_of(self.id, Event.TRUST_SET)
        before = (
            bool(recorded[0]["previous"]) if recorded else admin.binlog_settings().trust_function_creators
        )
        context.journal.intend(
            self.id, Event.TRUST_SET, log_bin_trust_function_creators=1, previous=int(before)
        )
        admin.set_trust_function_creators(True)
        context.journal.event(
            self.id, Event.TRUST_SET, log_bin_trust_function_creators=1, previous=int(before)
        )

    def undo(self, context: RunContext) -> None:
        """The value recorded by ``apply``, back."""
        _put_trust_back(context, self.id, self.id)


@dataclass(frozen=True, kw_only=True)
class RestoreTrust(Step):
    """Put log_bin_trust_function_creators back; ``closes`` names the step that changed it."""

    kind = StepKind.RESTORE_TRUST

    def apply(self, context: RunContext) -> None:
        """The value the trust step recorded, back."""
        assert self.closes is not None
        _put_trust_back(context, self.id, self.closes)

"""The offline procedures' steps: every node out and stopped, the database changed while nothing
serves, every node started on the release that fits it and put back.

``--cold`` (Keystone's documented offline upgrade) and ``restore`` (back to a
verified backup) are made of these. A node's way out is the rolling swap's
first half and its way back the second, with the same journalled moves and
gates; between them the schema changes with no node running.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.errors import HealthError, RunnerError
from runner.journal import Event
from runner.steps.base import RunContext, Step, StepKind, Undo
from runner.steps.migration import Throwaway, db_sync
from runner.steps.node import NodeStep

OFFLINE_PHASES = ("--expand", "--migrate", "--contract")


@dataclass(frozen=True, kw_only=True)
class NodeOut(NodeStep):
    """Drain, MAINT, stop: the node serves nothing until its ``NodeIn``. Undone: started again."""

    kind = StepKind.NODE_OUT

    def apply(self, context: RunContext) -> None:
        """Out of rotation without a failed request, then stopped (its container kept as it is)."""
        runtime = context.drivers.node_runtime(self.node)
        self._take_out_of_rotation(context)
        self._verify_out_of_rotation(context)
        context.journal.intend(self.id, Event.STOPPED)
        context.journal.event(self.id, Event.STOPPED, **runtime.stop())
        self._keep_out(context)

    # undo: NodeStep's (the stopped container started again, gated on its release, READY).

    def after_rollback(self, failure: RunnerError) -> RunnerError:
        """This node serves again; the nodes stopped before it are brought back by the procedure."""
        return type(failure)(
            f"node {self.node.name} could not be taken out and stopped: {failure.what}",
            observed=failure.observed,
            hint=f"node {self.node.name} was started again on {self.from_release}. {failure.hint or ''}".strip(),
        )


@dataclass(frozen=True, kw_only=True)
class NodeIn(NodeStep):
    """The stopped node replaced by a container of ``image``, gated on ``release``, put back.

    Undone (a failed start, or before a resume tries again): the replacement removed and the
    stopped container given its name back, still stopped and in MAINT.
    """

    kind = StepKind.NODE_IN

    def apply(self, context: RunContext) -> None:
        """Set the stopped container aside, start the replacement, gate it, READY."""
        runtime = context.drivers.node_runtime(self.node)
        self._keep_out(context)
        self._replace(context, runtime)
        self._gate(
            context,
            runtime,
            self.release,
            f"release {self.release}",
            f"read the new container's last lines (above) and check the image {self.image}",
        )
        self._full_cpu(context, runtime)
        self._put_into_rotation(context)

    def undo(self, context: RunContext) -> None:
        """Back to where ``apply`` began: the old container under the node's name, stopped, in MAINT."""
        runtime = context.drivers.node_runtime(self.node)
        done = self._events_so_far(context)
        if Event.READY in done:
            self._take_out_of_rotation(context)
        if Event.RENAMED in done:
            context.journal.intend(self.id, Event.RESTORED_OLD, old_name=self.kept_as)
            context.journal.event(self.id, Event.RESTORED_OLD, **runtime.restore_old(self.kept_as))
            context.journal.event(self.id, Event.STOPPED, **runtime.stop())
        self._keep_out(context)

    def after_rollback(self, failure: RunnerError) -> RunnerError:
        """The node stays out, stopped: nothing older can serve on the changed database."""
        return HealthError(
            f"node {self.node.name} did not come back on {self.release}; it is stopped and in MAINT",
            observed=failure.render(),
            hint="the database was changed while every node was stopped, so the old containers cannot "
            "serve on it: fix the cause (the image, its configuration) and run 'keystone-upgrade resume'",
        )


@dataclass(frozen=True, kw_only=True)
class OfflineMigration(Throwaway, Step):
    """Expand, migrate and contract in one go while no node runs (``--cold``)."""

    kind = StepKind.OFFLINE_MIGRATION
    undo_rule = Undo.ENDS_WINDOW
    closes_window_because = "the schema was contracted: the old release needs what contract removes"

    release: str | None

    def apply(self, context: RunContext) -> None:
        """Each phase with the rolling run's bounded lock wait; a resumed run repeats them safely.

        The Kolla way has two: KOLLA_UPGRADE runs --migrate right after --expand."""
        for phase in OFFLINE_PHASES:
            if not (self.kolla and phase == "--migrate"):
                db_sync(context, self.id, self, phase)

    def closed_window(self, context: RunContext) -> bool:
        """Once contract was announced."""
        record = context.journal.step(self.id)
        said = [*record.events, *([record.intended] if record.intended else [])]
        return any(e.get("phase") == "--contract" for e in said if e["event"] == Event.DB_SYNC.value)


@dataclass(frozen=True, kw_only=True)
class LoadBackup(Step):
    """The live database replaced by a verified dump (``restore``): what was written since is gone."""

    kind = StepKind.LOAD_BACKUP
    undo_rule = Undo.ENDS_WINDOW
    closes_window_because = "the database was replaced by the backup"

    image: str  # the backup client image (mariadb, bash)
    dump: str
    sha256: str

    def apply(self, context: RunContext) -> None:
        """Drop the database, load the dump, check what it holds against the manifest."""
        context.journal.intend(self.id, Event.LOADED, dump=self.dump)
        rows = context.drivers.backups.load(
            self.image, Path(self.dump), self.sha256, context.labels("restore")
        )
        context.journal.event(self.id, Event.LOADED, dump=self.dump, tables=len(rows))

    def closed_window(self, context: RunContext) -> bool:
        """Once the load was announced."""
        record = context.journal.step(self.id)
        return bool(record.events) or record.intended is not None

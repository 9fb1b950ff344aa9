"""The last step: the old nodes kept for rollback are removed (unless the operator keeps them)."""

from __future__ import annotations

from dataclasses import dataclass

from runner.journal import Event
from runner.model import NodeConfig
from runner.steps.base import RunContext, Step, StepKind, Undo


@dataclass(frozen=True, kw_only=True)
class Cleanup(Step):
    """Remove each node's old copy; skipped at plan time with ``--keep-old``."""

    kind = StepKind.CLEANUP
    undo_rule = Undo.ENDS_WINDOW
    closes_window_because = "the old nodes kept for rollback were removed"

    nodes: tuple[NodeConfig, ...]
    kept_as: tuple[str, ...]  # the old copy of ``nodes[i]`` is ``kept_as[i]``

    def closed_window(self, context: RunContext) -> bool:
        """Once an old node's removal was announced."""
        record = context.journal.step(self.id)
        return bool(context.journal.events_of(self.id, Event.REMOVED)) or record.intended is not None

    def apply(self, context: RunContext) -> None:
        """Remove what is there; a node that was not swapped has nothing kept."""
        for node, kept_as in zip(self.nodes, self.kept_as, strict=True):
            context.journal.intend(self.id, Event.REMOVED, container=kept_as)
            if context.drivers.node_runtime(node).discard_old(kept_as):
                context.journal.event(self.id, Event.REMOVED, container=kept_as)

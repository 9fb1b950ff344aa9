"""Walks the plan: each step journalled before and after, and the stop rules.

The rules, all here:
- steps run in the plan's order; a skipped step is journalled as skipped with its reason;
- the first RunnerError marks its step failed and stops the run;
- a step that ``closes`` another (the trust setting put back) still runs after a
  failure, once the step it closes was done; its own failure is logged, and the
  first error is the one reported;
- ``undo`` walks what was done backwards, and refuses, before changing anything,
  once a step that ends the undo window (contract) has started.
"""

from __future__ import annotations

import logging

from runner.errors import RollbackError, RunnerError
from runner.journal import StepStatus
from runner.plan import Plan
from runner.steps import RunContext, Step, Undo

log = logging.getLogger(__name__)

CLOSED_AFTER_FAILURE = "restored after the run failed"


class Executor:
    """Carries out one plan against the cluster."""

    def __init__(self, plan: Plan, context: RunContext):
        self.plan = plan
        self.context = context
        self.journal = context.journal

    def run(self) -> None:
        """Every step in order; raises the first RunnerError after journalling it."""
        try:
            for step in self.plan.steps:
                if step.skipped:
                    self.journal.end(step.id, StepStatus.SKIPPED, step.skip_reason)
                    continue
                self._apply(step)
        except BaseException:
            self._close_after_failure()
            raise

    def _apply(self, step: Step, detail: str | None = None) -> None:
        self.journal.begin(step.id)
        log.info("step %s: %s", step.id, step.why)
        try:
            step.apply(self.context)
        except RunnerError as exc:
            self.journal.end(step.id, StepStatus.FAILED, exc.render())
            raise
        self.journal.end(step.id, StepStatus.DONE, detail)

    def _close_after_failure(self) -> None:
        for step in self.plan.steps:
            if step.closes is None or self.journal.step(step.id).status is not StepStatus.PENDING:
                continue
            if self.journal.step(step.closes).status is not StepStatus.DONE:
                continue
            try:
                self._apply(step, CLOSED_AFTER_FAILURE)
            except RunnerError as exc:
                log.error("could not run %s after the failure: %s", step.id, exc.render())

    def undo(self) -> list[str]:
        """Undo what this run did, newest first; the ids undone. RollbackError when it cannot.

        Expand and migrate are kept: the old release serves on the expanded
        schema, as Keystone promises between expand and contract.
        """
        started = [
            s
            for s in self.plan.steps
            if self.journal.step(s.id).status in (StepStatus.RUNNING, StepStatus.DONE, StepStatus.FAILED)
        ]
        past_window = [s.id for s in started if s.undo_rule is Undo.ENDS_WINDOW]
        if past_window:
            raise RollbackError(
                "the run cannot be undone: the schema was contracted",
                observed=f"{', '.join(past_window)} started; the old release needs what contract removes",
                hint="restore the verified backup taken by this run (its path is in the journal's backup step)",
            )
        undone = []
        for step in reversed(started):
            if step.undo_rule is not Undo.REVERSIBLE:
                continue
            try:
                step.undo(self.context)
            except RunnerError as exc:
                self.journal.end(step.id, StepStatus.FAILED, exc.render())
                raise RollbackError(
                    f"undoing {step.id} failed",
                    observed=exc.render(),
                    hint="the journal's last intent for this step says what was being done; finish it by hand",
                ) from exc
            self.journal.end(step.id, StepStatus.UNDONE, "put back by a rollback")
            undone.append(step.id)
        return undone

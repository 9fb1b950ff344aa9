"""Walks the plan: each step journalled before and after, and the stop rules.

The rules, all here:
- steps run in the plan's order; a skipped step is journalled as skipped with its reason;
- the first RunnerError marks its step failed and stops the run; a step that is
  ``undo_on_failure`` (a node) is rolled back first, so the cluster is whole (it stays
  failed, its last event ``rolled back``);
- a step that ``closes`` another (the trust setting put back) still runs after a
  failure, once the step it closes was done; its own failure is logged, and the
  first error is the one reported;
- a first SIGINT/SIGTERM lets the step in progress finish and stops before the next
  (``Interrupted``); a second stops at once (``ForcedStop``) and names what it cut short;
- ``undo`` walks what was done backwards, and refuses, before changing anything,
  once a step that ends the undo window (contract, cleanup) has started.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from runner.errors import RollbackError, RunnerError
from runner.interrupts import ForcedStop, Interrupted
from runner.journal import Event, StepStatus
from runner.plan import Plan
from runner.steps import RunContext, Step, Undo

log = logging.getLogger(__name__)

CLOSED_AFTER_FAILURE = "restored after the run failed"


def batched(steps: tuple[Step, ...]) -> list[list[Step]]:
    """The plan's steps in groups: the node steps of one batch together (where its first one
    stands, whatever stands between them: a node already on the target), every other alone."""
    groups: list[list[Step]] = []
    placed: dict[int, list[Step]] = {}
    for step in steps:
        batch = getattr(step, "batch", None)
        if batch is None:
            groups.append([step])
        elif batch in placed:
            placed[batch].append(step)
        else:
            placed[batch] = [step]
            groups.append(placed[batch])
    return groups


class Executor:
    """Carries out one plan against the cluster."""

    def __init__(self, plan: Plan, context: RunContext):
        self.plan = plan
        self.context = context
        self.journal = context.journal

    def run(self) -> None:
        """Every step in order; raises the first RunnerError after journalling it."""
        with self._closing_on_failure():
            for group in batched(self.plan.steps):
                self._stop_if_asked(group[0])
                for step in group:
                    if step.skipped:
                        self.journal.end(step.id, StepStatus.SKIPPED, step.skip_reason)
                to_run = [step for step in group if not step.skipped]
                if len(to_run) > 1:
                    self._apply_together(to_run)
                elif to_run:
                    self._apply(to_run[0])

    def resume(self) -> None:
        """Go on with a run from its journal: done steps stay done, a half-done one is made safe first.

        A reversible step that was running or failed when the run stopped (a
        node killed half-way through its swap) is undone, then applied afresh;
        any other unfinished step is applied again (db_sync phases are safe to repeat).
        What the stopped run put back early (the trust setting) is set again first.
        """
        with self._closing_on_failure():
            self._reopen_closed_after_failure()
            for group in batched(self.plan.steps):
                left = [
                    s
                    for s in group
                    if self.journal.step(s.id).status not in (StepStatus.DONE, StepStatus.SKIPPED)
                ]
                if not left:
                    continue
                self._stop_if_asked(left[0])
                to_run = []
                for step in left:
                    if step.skipped:
                        self.journal.end(step.id, StepStatus.SKIPPED, step.skip_reason)
                        continue
                    status = self.journal.step(step.id).status
                    half_done = status is StepStatus.RUNNING or (
                        status is StepStatus.FAILED and not self.journal.rolled_back(step.id)
                    )
                    if half_done and step.undo_rule is Undo.REVERSIBLE:
                        self._make_safe(step)
                    to_run.append(step)
                if len(to_run) > 1:
                    self._apply_together(to_run)
                elif to_run:
                    self._apply(to_run[0])

    def _reopen_closed_after_failure(self) -> None:
        """Steps the stopped run closed early (the trust setting put back when expand failed): the
        step each closes is applied again, and the closing step runs again at its own place."""
        for step in self.plan.steps:
            record = self.journal.step(step.id)
            if (
                step.closes is None
                or record.status is not StepStatus.DONE
                or record.detail != CLOSED_AFTER_FAILURE
            ):
                continue
            log.info("%s was done early when the run stopped; %s is applied again", step.id, step.closes)
            self._apply(self.plan.step(step.closes), "applied again for the resumed run")
            self.journal.end(step.id, StepStatus.UNDONE, "to run again at its place in the resumed run")

    @contextmanager
    def _closing_on_failure(self) -> Iterator[None]:
        """However the walk ends early, steps that close others run (the trust setting put back)."""
        try:
            yield
        except ForcedStop as exc:
            self._close_after_failure(forced=True)
            raise self._left_behind(exc) from exc
        except BaseException:
            self._close_after_failure()
            raise

    def _stop_if_asked(self, step: Step) -> None:
        """Between two steps: stop cleanly when a signal asked for it."""
        if not self.context.stop.requested:
            return
        signal = self.context.stop.signal
        name = signal.name if signal is not None else "a signal"
        done = [s.id for s in self.plan.steps if self.journal.step(s.id).status is StepStatus.DONE]
        raise Interrupted(
            f"stopped on {name} before step {step.id}; the step in progress was finished",
            observed=f"done: {', '.join(done) or 'nothing'}; every node serves a working release, in rotation",
            hint="go on with: keystone-upgrade resume -i INVENTORY (or undo it: keystone-upgrade rollback)",
        )

    def _left_behind(self, stop: ForcedStop) -> ForcedStop:
        """The second signal's message: which step it cut short and what that step had announced."""
        cut = [
            f"{s.id} (may not have finished: {record.intended['event'] if record.intended else 'its last event'})"
            for s in self.plan.steps
            if (record := self.journal.step(s.id)).status is StepStatus.RUNNING
        ]
        return ForcedStop(
            f"{stop}; left behind: {', '.join(cut) or 'no step in progress'}. The journal holds the rest: "
            "keystone-upgrade resume or rollback takes it from there"
        )

    def _make_safe(self, step: Step) -> None:
        log.info("step %s was left half-done; putting it back before it runs again", step.id)
        try:
            step.undo(self.context)
        except RunnerError as exc:
            self.journal.end(step.id, StepStatus.FAILED, exc.render())
            raise RollbackError(
                f"step {step.id} was left half-done and cannot be put back",
                observed=exc.render(),
                hint="the journal's intended entry for the step says what was being done; finish it by hand",
            ) from exc
        self.journal.end(step.id, StepStatus.UNDONE, "put back before resuming")

    def _apply(self, step: Step, detail: str | None = None) -> None:
        self.journal.begin(step.id)
        log.info("step %s: %s", step.id, step.why)
        try:
            step.apply(self.context)
        except RunnerError as exc:
            self.journal.end(step.id, StepStatus.FAILED, exc.render())
            if step.undo_on_failure:
                raise self._roll_back_failed(step, exc) from exc
            raise
        self.journal.end(step.id, StepStatus.DONE, detail)

    def _apply_together(self, steps: list[Step]) -> None:
        """A batch ([run] nodes_at_once): every step through each phase before any goes on to the next
        (all out of rotation, all swapped, all gated, all back), so that their boots overlap.

        When one fails, it is rolled back as a lone step would be, and the others of the batch are
        put back too: a batch is one move, and a node left half-swapped would be out of rotation.
        """
        for step in steps:
            self.journal.begin(step.id)
            log.info("step %s: %s (batch of %d)", step.id, step.why, len(steps))
        phases = [step.phases() for step in steps]
        current = steps[0]
        try:
            for index in range(len(phases[0])):
                for step, its_phases in zip(steps, phases, strict=True):
                    current = step
                    its_phases[index](self.context)
        except RunnerError as exc:
            self.journal.end(current.id, StepStatus.FAILED, exc.render())
            # Every other node of the batch is put back, even when one of them cannot be.
            stuck = [
                f"{other.id}: {error.render()}"
                for other in reversed([s for s in steps if s is not current])
                if (error := self._roll_back_with(other, current, exc)) is not None
            ]
            failed = self._roll_back_failed(current, exc)
            if stuck:
                raise RollbackError(
                    f"step {current.id} failed, and putting back its batch failed too",
                    observed=f"the failure: {exc.render()}\nnot put back: " + "\n".join(stuck),
                    hint="the journal's intended entry for each step says what was being done; finish "
                    "them by hand (the old copies are kept), then run rollback or upgrade again",
                ) from exc
            raise failed from exc
        for step in steps:
            self.journal.end(step.id, StepStatus.DONE)

    def _roll_back_with(self, step: Step, failed: Step, failure: RunnerError) -> RunnerError | None:
        """Put back a step of a batch whose other step failed; the error when it cannot be."""
        try:
            step.undo(self.context)
        except RunnerError as exc:
            self.journal.end(step.id, StepStatus.FAILED, f"rollback after {failed.id} failed: {exc.render()}")
            return exc
        self.journal.event(step.id, Event.ROLLED_BACK, after=f"{failed.id}: {failure.what}")
        self.journal.end(step.id, StepStatus.FAILED, f"rolled back with {failed.id} (same batch)")
        return None

    def _roll_back_failed(self, step: Step, failure: RunnerError) -> RunnerError:
        """Undo a step whose apply failed; the error to stop with either way."""
        log.warning("step %s failed; rolling it back: %s", step.id, failure.what)
        try:
            step.undo(self.context)
        except RunnerError as exc:
            self.journal.end(
                step.id, StepStatus.FAILED, f"{failure.render()}\nrollback failed: {exc.render()}"
            )
            states = [s for s in (other.observe(self.context) for other in self.plan.steps) if s]
            return RollbackError(
                f"step {step.id} failed, and rolling it back failed too",
                observed=f"the failure: {failure.render()}\nthe rollback: {exc.render()}\nnow:\n  "
                + "\n  ".join(states),
                hint="the journal's intended entry for the step says what was being done; "
                "finish it by hand (the old copy is kept), then run rollback or upgrade again",
            )
        self.journal.event(step.id, Event.ROLLED_BACK, after=failure.what)
        self.journal.end(step.id, StepStatus.FAILED, failure.render())
        return step.after_rollback(failure)

    def _migration_may_run(self, step_id: str, *, forced: bool) -> bool:
        """The step's last db_sync was left running past its timeout, or cut short by a forced stop."""
        record = self.journal.step(step_id)
        marks = [e["event"] for e in record.events if e["event"] in (Event.DB_SYNC, Event.LEFT_RUNNING)]
        if marks and marks[-1] == Event.LEFT_RUNNING:
            return True
        return forced and record.intended is not None and record.intended["event"] == Event.DB_SYNC

    def _close_after_failure(self, *, forced: bool = False) -> None:
        cut_short = [s.id for s in self.plan.steps if self._migration_may_run(s.id, forced=forced)]
        if cut_short:
            # A migration left running may still need what a closing step would take back
            # (triggers need the trust setting): resume closes them once it has finished.
            log.warning(
                "%s may still be migrating: steps that close others wait for resume", ", ".join(cut_short)
            )
            return
        for step in self.plan.steps:
            if step.closes is None or self.journal.step(step.id).status not in (
                StepStatus.PENDING,
                StepStatus.FAILED,
            ):
                continue
            if self.journal.step(step.closes).status is not StepStatus.DONE:
                continue
            try:
                self._apply(step, CLOSED_AFTER_FAILURE)
            except RunnerError as exc:
                log.error("could not run %s after the failure: %s", step.id, exc.render())

    def _started(self) -> list[Step]:
        return [
            s
            for s in self.plan.steps
            if self.journal.step(s.id).status in (StepStatus.RUNNING, StepStatus.DONE, StepStatus.FAILED)
            and not self.journal.rolled_back(s.id)
        ]

    def window_closed_by(self) -> list[Step]:
        """The steps that ended the undo window once they started (contract, a loaded backup)."""
        return [
            s for s in self._started() if s.undo_rule is Undo.ENDS_WINDOW and s.closed_window(self.context)
        ]

    def undo(self) -> list[str]:
        """Undo what this run did, newest first; the ids undone. RollbackError when it cannot.

        Expand and migrate are kept: the old release serves on the expanded
        schema, as Keystone promises between expand and contract.
        """
        started = self._started()
        closing = self.window_closed_by()
        if closing:
            dumps = [e["dump"] for s in self.plan.steps for e in self.journal.events_of(s.id, Event.DUMPED)]
            backup = f" ({', '.join(dumps)})" if dumps else ""
            raise RollbackError(
                "the run cannot be rolled back: " + "; ".join(s.closes_window_because for s in closing),
                observed=f"{', '.join(s.id for s in closing)} started; nothing was changed now",
                hint=f"the verified backup this run took{backup} holds the database as it was before; "
                "the nodes keep the target release until it is restored (keystone-upgrade restore -i INVENTORY)",
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

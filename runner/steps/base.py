"""What every step is: frozen data that carries its parameters, with ``apply`` and, where it means
something, ``undo``; and the context a step acts through.

A step never looks anything up in the inventory: the plan put everything it
acts on into its fields, so the printed plan is exactly what runs, and the
journal's copy of the plan (``to_dict``/``step_from_dict``) is exactly what a
resumed run would run.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from runner.drivers.containers import PURPOSE_LABEL, RUN_ID_LABEL
from runner.drivers.ports import Drivers
from runner.errors import RollbackError, RunnerError
from runner.interrupts import StopRequests
from runner.journal import Journal
from runner.model import BindMount, NodeConfig, TargetConfig, environment_names, environment_unfilled


class StepKind(StrEnum):
    """The kinds of step, in the order a run takes them."""

    BACKUP = "backup"
    TRUST_FUNCTION_CREATORS = "trust-function-creators"
    RESTORE_TRUST = "restore-trust"
    EXPAND = "expand"
    MIGRATE = "migrate"
    KEYS = "keys"
    NODE = "node"
    CONTRACT = "contract"
    FLUSH_CACHE = "flush-cache"
    CLEANUP = "cleanup"
    # The offline procedures (--cold, restore): every node out, the database changed, every node in.
    NODE_OUT = "node-out"
    OFFLINE_MIGRATION = "offline-migration"
    LOAD_BACKUP = "load-backup"
    NODE_IN = "node-in"


class Undo(StrEnum):
    """What undoing a step means (the executor's rollback walks the steps backwards)."""

    NOTHING = "nothing"  # it changed nothing a rollback must put back (a backup, a cleanup)
    REVERSIBLE = "reversible"  # ``undo`` puts it back (a swapped node, the trust setting)
    KEPT = "kept"  # cannot be undone, and need not be: the old release serves on it (expand, migrate)
    ENDS_WINDOW = "ends-window"  # once it has run the old release cannot come back (contract)


def run_labels(run_id: str, purpose: str) -> dict[str, str]:
    """The labels of a throwaway container run ``run_id`` starts for ``purpose`` (also before its journal)."""
    return {RUN_ID_LABEL: run_id, PURPOSE_LABEL: purpose}


@dataclass(frozen=True)
class RunContext:
    """What a step acts through: the drivers, the journal, and where this run keeps its files."""

    drivers: Drivers
    journal: Journal
    log_dir: Path
    # Set by a first SIGINT/SIGTERM: the executor stops before the next step.
    stop: StopRequests = field(default_factory=StopRequests)

    @property
    def run_id(self) -> str:
        """The run's id, also a label on every container it creates."""
        return self.journal.run_id

    def labels(self, purpose: str) -> dict[str, str]:
        """The labels of a throwaway container this run starts."""
        return run_labels(self.run_id, purpose)


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step of the plan. Subclasses add the parameters they act on as fields."""

    kind: ClassVar[StepKind]
    undo_rule: ClassVar[Undo] = Undo.NOTHING
    # When apply fails, the executor undoes the step before it stops the run.
    undo_on_failure: ClassVar[bool] = False
    # For ENDS_WINDOW steps: why nothing before them can be undone once they have started.
    closes_window_because: ClassVar[str] = ""

    id: str
    why: str
    skip_reason: str | None = None
    # The id of an earlier step whose effect this one ends; it runs even when the run
    # fails, once that step has been done (putting the trust setting back).
    closes: str | None = None

    @property
    def skipped(self) -> bool:
        """True when facts show the step is already done, or the operator chose to keep it out."""
        return self.skip_reason is not None

    @property
    def node_name(self) -> str | None:
        """The node this step acts on, if it acts on one."""
        return None

    def apply(self, context: RunContext) -> None:
        """Do the step; raise a RunnerError that says what failed."""
        raise NotImplementedError

    def undo(self, context: RunContext) -> None:
        """Put back what ``apply`` changed (only for ``Undo.REVERSIBLE`` steps)."""
        raise RollbackError(f"step {self.id} ({self.kind}) cannot be undone")

    def closed_window(self, context: RunContext) -> bool:
        """For ENDS_WINDOW steps: True once their effect may have begun (journalled, done or intended)."""
        return False

    def phases(self) -> tuple[Callable[[RunContext], None], ...]:
        """``apply`` in parts, for steps that run as a batch (each part on every step of the batch
        before the next part); one part by default."""
        return (self.apply,)

    def after_rollback(self, failure: RunnerError) -> RunnerError:
        """The error to stop the run with once ``undo`` put back what a failed ``apply`` did."""
        return failure

    def observe(self, context: RunContext) -> str | None:
        """What the step's subject looks like now, for a message when a rollback fails."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: kind, id, why, skip reason, node, and every parameter."""
        common = {"id", "why", "skip_reason", "closes"}
        return {
            "id": self.id,
            "kind": self.kind.value,
            "why": self.why,
            "skip_reason": self.skip_reason,
            "closes": self.closes,
            "node": self.node_name,
            "params": {
                f.name: environment_names(getattr(self, f.name))
                if f.name in ENVIRONMENT_FIELDS
                else _encode(getattr(self, f.name))
                for f in fields(self)
                if f.name not in common
            },
        }


# Step parameters that hold an environment: only their names are written down (values may be secrets).
ENVIRONMENT_FIELDS = frozenset({"environment"})


def _encode(value: Any) -> Any:
    if isinstance(value, NodeConfig):
        return value.to_dict()
    if isinstance(value, BindMount):
        return str(value)
    if isinstance(value, TargetConfig):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value


# Parameter types kept in the journal in their own JSON form, and how each is read back.
_DECODERS: dict[Any, Any] = {
    NodeConfig: NodeConfig.from_dict,
    BindMount: BindMount.parse,
    TargetConfig: TargetConfig.from_dict,
}


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if hint in _DECODERS:
        return _DECODERS[hint](value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple(_decode(typing.get_args(hint)[0], item) for item in value)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _decode(inner[0], value)
    return value


def decode_step(cls: type[Step], data: dict[str, Any]) -> Step:
    """A step of class ``cls`` from its ``to_dict`` form."""
    hints = typing.get_type_hints(cls)
    params = {
        name: environment_unfilled(value) if name in ENVIRONMENT_FIELDS else _decode(hints[name], value)
        for name, value in data.get("params", {}).items()
    }
    return cls(
        id=data["id"],
        why=data["why"],
        skip_reason=data.get("skip_reason"),
        closes=data.get("closes"),
        **params,
    )

"""The steps an upgrade is made of: frozen data with ``apply`` and ``undo``, one small module per concern."""

from __future__ import annotations

from typing import Any

from runner.steps.base import RunContext, Step, StepKind, Undo, decode_step
from runner.steps.cache import FlushCache
from runner.steps.cleanup import Cleanup
from runner.steps.database import Backup, RestoreTrust, TrustFunctionCreators
from runner.steps.keys import KeysAgree
from runner.steps.migration import Contract, Expand, Migrate, Throwaway
from runner.steps.node import NodeStep, NodeUpgrade
from runner.steps.offline import LoadBackup, NodeIn, NodeOut, OfflineMigration

STEP_TYPES: dict[StepKind, type[Step]] = {
    cls.kind: cls
    for cls in (
        Backup,
        TrustFunctionCreators,
        RestoreTrust,
        Expand,
        Migrate,
        KeysAgree,
        NodeUpgrade,
        Contract,
        FlushCache,
        Cleanup,
        NodeOut,
        OfflineMigration,
        LoadBackup,
        NodeIn,
    )
}


def step_from_dict(data: dict[str, Any]) -> Step:
    """The step a ``Step.to_dict`` wrote."""
    return decode_step(STEP_TYPES[StepKind(data["kind"])], data)


__all__ = [
    "Backup",
    "Cleanup",
    "Contract",
    "Expand",
    "FlushCache",
    "KeysAgree",
    "LoadBackup",
    "Migrate",
    "NodeIn",
    "NodeOut",
    "NodeStep",
    "NodeUpgrade",
    "OfflineMigration",
    "RestoreTrust",
    "RunContext",
    "Step",
    "StepKind",
    "Throwaway",
    "TrustFunctionCreators",
    "Undo",
    "step_from_dict",
]

"""The shape of a journal document read back: checked before any reader (status, resume, rollback) sees it.

Only validation of an already loaded document lives here: no file is written,
and nothing of the ``Journal`` class is needed. The journal's vocabulary (the
schema version, the step statuses, the payload each event carries) belongs to
``runner.journal`` and is passed in, so this module imports nothing of it and
``runner.journal`` can import this one without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import ConfigError

# The fields each event name must carry beyond "event" and "at", by event name.
Payloads = Mapping[str, tuple[tuple[str, type], ...]]


def no_constant(name: str) -> float:
    """``json.loads``'s parse_constant: NaN and Infinity are no number a journal holds."""
    raise ValueError(f"{name} is not a number a journal holds")


def damaged_journal(path: Path, problems: list[str]) -> ConfigError:
    """The one error every reader gives for a journal it cannot use."""
    return ConfigError(
        f"the journal {path} is damaged; nothing was changed",
        observed="\n    " + "\n    ".join(problems[:20]) + ("\n    ..." if len(problems) > 20 else ""),
        hint="it is written atomically, so it was changed by hand or by another tool: restore it from a "
        "copy, or move it aside to start afresh (status, resume, rollback and upgrade read it)",
    )


def has_type(value: Any, kind: type | tuple[type, ...]) -> bool:
    """isinstance, where a bool is not a number and a number is finite (json gives no NaN here)."""
    if isinstance(value, bool) and kind is not bool:
        return False
    return isinstance(value, kind)


NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))
OPTIONAL_TEXT = (str, type(None))


def _fields(where: str, data: dict[str, Any], fields: dict[str, Any], problems: list[str]) -> None:
    """Each field present with its type; a missing optional one (None allowed) is fine."""
    for name, kind in fields.items():
        if name not in data:
            if not (isinstance(kind, tuple) and type(None) in kind):
                problems.append(f"{where}: '{name}' is missing")
        elif not has_type(data[name], kind):
            problems.append(f"{where}: '{name}' is {type(data[name]).__name__}, not {_names(kind)}")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def _event_problems(where: str, event: Any, problems: list[str], payloads: Payloads) -> None:
    if not isinstance(event, dict):
        problems.append(f"{where}: is {type(event).__name__}, not an object")
        return
    _fields(where, event, {"event": str, "at": NUMBER}, problems)
    for name, kind in payloads.get(str(event.get("event")), ()):
        _fields(where, event, {name: kind}, problems)


def _step_problems(
    where: str, step: Any, problems: list[str], statuses: tuple[str, ...], payloads: Payloads
) -> None:
    if not isinstance(step, dict):
        problems.append(f"{where}: is {type(step).__name__}, not an object")
        return
    _fields(
        where,
        step,
        {
            "id": str,
            "kind": str,
            "node": OPTIONAL_TEXT,
            "status": str,
            "started_at": OPTIONAL_NUMBER,
            "finished_at": OPTIONAL_NUMBER,
            "detail": OPTIONAL_TEXT,
            "events": (list, type(None)),
            "intended": (dict, type(None)),
        },
        problems,
    )
    if isinstance(step.get("status"), str) and step["status"] not in statuses:
        problems.append(f"{where}: status {step['status']!r} is none of {', '.join(statuses)}")
    for index, event in enumerate(_list(step.get("events")), start=1):
        _event_problems(f"{where} event #{index}", event, problems, payloads)
    if isinstance(step.get("intended"), dict):
        _event_problems(f"{where} intended", step["intended"], problems, payloads)


def _plan_problems(plan: Any, problems: list[str]) -> list[tuple[str, str]]:
    """What the plan's copy holds wrong; the (id, kind) of its steps when they can be read."""
    if not isinstance(plan, dict):
        problems.append(f"plan: is {type(plan).__name__}, not an object")
        return []
    _fields(
        "plan",
        plan,
        {
            "run_id": str,
            "target_image": str,
            "target_version": OPTIONAL_TEXT,
            "source_versions": list,
            "steps": list,
        },
        problems,
    )
    if isinstance(plan.get("source_versions"), list) and not all(
        isinstance(v, str) for v in plan["source_versions"]
    ):
        problems.append("plan: 'source_versions' must hold only strings")
    steps = _list(plan.get("steps"))
    ids = []
    for index, step in enumerate(steps, start=1):
        if isinstance(step, dict) and has_type(step.get("id"), str) and has_type(step.get("kind"), str):
            ids.append((step["id"], step["kind"]))
        else:
            problems.append(f"plan step #{index}: needs a string 'id' and 'kind'")
    return ids


def document_problems(
    document: Any, *, schema: int, statuses: tuple[str, ...], payloads: Payloads
) -> list[str]:
    """Everything wrong with a journal document as read back (empty: every reader can use it).

    ``schema`` is the version this release writes, ``statuses`` every status a
    step can have, ``payloads`` the fields each event name must carry: the
    journal's vocabulary, which ``runner.journal`` owns and passes in.
    """
    if not isinstance(document, dict):
        return [f"it is a JSON {type(document).__name__}, not an object"]
    found = document.get("schema")
    if not has_type(found, int) or found != schema:
        return [
            f"schema {found!r}: this version of keystone-upgrade reads schema {schema} "
            "(a journal of another version: finish or roll back its run with that version)"
        ]
    problems: list[str] = []
    _fields(
        "journal",
        document,
        {
            "run_id": str,
            "inventory": str,
            "started_at": NUMBER,
            "finished_at": OPTIONAL_NUMBER,
            "status": str,
            "plan": dict,
            "steps": list,
            "resumed_at": (list, type(None)),
        },
        problems,
    )
    if isinstance(document.get("resumed_at"), list) and not all(
        has_type(t, NUMBER) for t in document["resumed_at"]
    ):
        problems.append("journal: 'resumed_at' must hold only numbers")
    planned = _plan_problems(document.get("plan"), problems)
    if isinstance(document.get("plan"), dict) and document["plan"].get("run_id") != document.get("run_id"):
        problems.append("plan: its run_id is not the journal's")
    steps = _list(document.get("steps"))
    for index, step in enumerate(steps, start=1):
        _step_problems(f"step #{index}", step, problems, statuses, payloads)
    recorded = [(s.get("id"), s.get("kind")) for s in steps if isinstance(s, dict)]
    if not problems and recorded != planned:
        problems.append("steps: the recorded steps are not the plan's steps, in its order")
    if not problems and len({step_id for step_id, _ in planned}) != len(planned):
        problems.append("plan: a step id appears twice")
    if not problems and not planned:
        problems.append("plan: it has no steps")
    return problems

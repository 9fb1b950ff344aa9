"""Reading the inventory's TOML tables: typed reads that record a problem instead of raising.

Every problem found is collected (``Problems``), each with where it is, what
is wrong, what was found and what to do, so the operator sees them all in one
run. A value found is shown short, and a table by its keys only, never their
values. This is the machinery every section of the inventory is read with,
kept apart from what those sections hold (``inventory.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from runner.config.values import CONTROL

# The inventory's top-level tables (a key of that name below another table's header is a slip).
SECTIONS = ("database", "target", "haproxy", "nodes", "run", "probe", "cache")


class Problems:
    """Collects every problem so the operator sees them all in one run."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str, *, found: Any = None, fix: str | None = None) -> None:
        """Record what is wrong where; with what was found and what to do, when known."""
        text = f"{where}: {what}"
        if found is not None:
            text += f"; found {_shown(found)}"
        if fix:
            text += f"; {fix}"
        self.items.append(text)


_KINDS = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (dict, "table"),
    (list, "array"),
)


def _kind(value: Any) -> str:
    """The TOML name of a value's type (bool before int: True is an int to Python)."""
    return next((name for kind, name in _KINDS if isinstance(value, kind)), "date/time")


def _shown(value: Any, depth: int = 0) -> str:
    """A short rendering of a value for a message: a table shows its keys only, never their values."""
    if isinstance(value, dict):
        keys = ", ".join(repr(k)[:30] for k in list(value)[:6])
        return f"table {{{keys}{', ...' if len(value) > 6 else ''}}}"
    if isinstance(value, list):
        if depth > 1:
            return "array [...]"
        items = ", ".join(_shown(item, depth + 1) for item in value[:3])
        return f"array [{items}{', ...' if len(value) > 3 else ''}]"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
        return (
            "integer of " + ("more than 30" if abs(value) > 10**30 else str(len(str(abs(value))))) + " digits"
        )
    text = repr(value)
    return f"{_kind(value)} {text if len(text) <= 60 else text[:57] + '...'}"


class Table:
    """One table of the inventory: typed reads that record a problem instead of raising."""

    def __init__(
        self, raw: Mapping[str, Any], where: str, problems: Problems, known: Iterable[str], base: Path
    ) -> None:
        self.raw, self.where, self.problems, self.base = raw, where, problems, base
        known = set(known)
        for key in sorted(set(raw) - known):
            fix = f"remove it, or use one of: {', '.join(sorted(known))}"
            if key in SECTIONS and where != "inventory":
                # A key written below a table header belongs to that table.
                fix = f"'{key}' is a table of its own: write it as [{key}] (or [[{key}]]), not as a key"
            problems.add(where, f"unknown key {key!r}", fix=fix)

    def add(self, what: str, *, found: Any = None, fix: str | None = None) -> None:
        """Record a problem with this table."""
        self.problems.add(self.where, what, found=found, fix=fix)

    def _present(self, key: str, required: bool, fix: str | None) -> bool:
        if key in self.raw:
            return True
        if required:
            self.add(f"'{key}' is required", fix=fix)
        return False

    def text(
        self,
        key: str,
        *,
        required: bool = True,
        fix: str | None = None,
        check: Callable[[str], str | None] | None = None,
    ) -> str | None:
        """A non-empty string without control characters, that ``check`` finds nothing wrong with."""
        if not self._present(key, required, fix):
            return None
        value = self.raw[key]
        if not isinstance(value, str):
            self.add(f"'{key}' must be a string", found=value, fix=fix)
            return None
        if not value.strip():
            self.add(f"'{key}' must not be empty", fix=fix)
            return None
        if CONTROL.search(value):
            self.add(f"'{key}' must not hold control characters", found=value)
            return None
        wrong = check(value) if check is not None else None
        if wrong is not None:
            self.add(f"'{key}' {wrong}", found=value, fix=fix)
            return None
        return value

    def integer(self, key: str, *, low: int, high: int, default: int | None = None) -> int | None:
        """A whole number in [low, high]; ``default`` when the key is absent (None: required)."""
        if not self._present(key, default is None, None):
            return default
        value = self.raw[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.add(f"'{key}' must be a whole number from {low} to {high}", found=value)
            return None
        return value

    def seconds(self, key: str, *, default: float, high: float, what: str = "seconds") -> float | None:
        """A positive, finite number no greater than ``high``; ``default`` when the key is absent."""
        if key not in self.raw:
            return default
        value = self.raw[key]
        within = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (isinstance(value, int) or math.isfinite(value))
            and 0 < value <= high
        )
        if not within:
            self.add(
                f"'{key}' must be a positive number of {what}, at most {high:g}",
                found=value,
                fix=f"give {what}, or leave it out for the default {default:g}",
            )
            return None
        return float(value)

    def boolean(self, key: str, default: bool) -> bool | None:
        """true or false; ``default`` when the key is absent."""
        if key not in self.raw:
            return default
        value = self.raw[key]
        if not isinstance(value, bool):
            self.add(f"'{key}' must be true or false", found=value)
            return None
        return value

    def path(self, key: str, *, default: Path | None = None, fix: str | None = None) -> Path | None:
        """A path, relative ones taken from the inventory's directory."""
        if key not in self.raw and default is not None:
            return default
        text = self.text(key, fix=fix)
        return self.base / text if text is not None else None

    def sub(self, key: str, known: Iterable[str]) -> Table | None:
        """The optional table under ``key`` (None when absent, or when it is not a table)."""
        where = f"[{self.where.strip('[]')}.{key}]"
        if key not in self.raw:
            return None
        value = self.raw[key]
        if not isinstance(value, dict):
            self.problems.add(where, "must be a table", found=value, fix=f"write it as {where}")
            return None
        return Table(value, where, self.problems, known, self.base)


def top_table(
    raw: Any, where: str, problems: Problems, known: Iterable[str], base: Path, *, required: bool
) -> Table | None:
    """A top-level table: None (with a problem when required) when it is absent or not a table."""
    if raw is None:
        if required:
            problems.add(where, "the table is required", fix="add it (see the README's Inventory section)")
        return None
    if not isinstance(raw, dict):
        problems.add(where, "must be a table", found=raw, fix=f"write it as {where}")
        return None
    return Table(raw, where, problems, known, base)


def array_of_tables(
    raw: Any, name: str, problems: Problems, known: Iterable[str], base: Path, *, example: str
) -> list[Table]:
    """The entries of [[name]]; every entry that is not a table is a problem, never skipped."""
    where = f"[[{name}]]"
    if raw is None or (isinstance(raw, list) and not raw):
        problems.add(where, "at least one is required", fix=example)
        return []
    if isinstance(raw, dict):
        problems.add(where, "must be an array of tables", found=raw, fix=f"write [[{name}]], not [{name}]")
        return []
    if not isinstance(raw, list):
        problems.add(where, "must be an array of tables", found=raw, fix=example)
        return []
    tables = []
    for index, entry in enumerate(raw, start=1):
        if isinstance(entry, dict):
            tables.append(Table(entry, f"{where} #{index}", problems, known, base))
        else:
            problems.add(f"{where} #{index}", "must be a table", found=entry, fix=example)
    return tables


def strings(table: Table, key: str, fix: str) -> list[str] | None:
    """An array of non-empty strings (None when absent or wrong)."""
    raw = table.raw.get(key)
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        table.add(f"'{key}' must be a non-empty array of strings", found=raw, fix=fix)
        return None
    if not all(isinstance(item, str) and item.strip() and not CONTROL.search(item) for item in raw):
        bad = next(i for i in raw if not isinstance(i, str) or not i.strip() or CONTROL.search(i))
        table.add(f"'{key}' must hold only non-empty strings", found=bad, fix=fix)
        return None
    return list(raw)


def unique(values: list[str], where: str, what: str, problems: Problems) -> None:
    """Record a problem for each value given more than once."""
    seen = set()
    for value in values:
        if value in seen:
            problems.add(where, f"{what} {value} appears twice", fix="give each once")
        seen.add(value)

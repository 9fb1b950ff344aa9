"""A database schema as values, and every difference between the one expected and the one found.

The runner reads the live schema from information_schema (``MysqlDatabase.schema``)
and compares it with a reference built by the same release's migrations. Each
difference has a key an operator can type to accept it (``table:<t>``,
``column:<t>.<c>``, ``index:<t>.<name>``, ``foreign-key:<t>.<name>``), so keys
must name the same thing in every run. ``alembic_version`` is a table like any
other here: its rows are data, not schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

MISSING = "missing"
EXTRA = "extra"
DIFFERENT = "different"

# InnoDB names a foreign key declared without a name <table>_ibfk_<n>, numbered in the order the
# table got them (a table renamed since keeps its old prefix on older servers).
GENERATED_FOREIGN_KEY = re.compile(r".+_ibfk_\d+")


@dataclass(frozen=True)
class Column:
    """One column as information_schema reports it; ``default`` is COLUMN_DEFAULT as the server spells it."""

    name: str
    type: str  # COLUMN_TYPE: varchar(64), int(11), tinyint(1), enum('a','b')
    nullable: bool
    default: str | None  # None: no default

    def __str__(self) -> str:
        default = "" if self.default is None else f" DEFAULT {self.default}"
        return f"{self.type} {_nullability(self.nullable)}{default}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"name": self.name, "type": self.type, "nullable": self.nullable, "default": self.default}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Column:
        """The inverse of ``to_dict``."""
        return cls(name=data["name"], type=data["type"], nullable=data["nullable"], default=data["default"])


@dataclass(frozen=True)
class Index:
    """An index (PRIMARY and unique constraints included): whether it is unique, its columns in order."""

    name: str
    unique: bool
    columns: tuple[str, ...]

    def __str__(self) -> str:
        return f"{'UNIQUE ' if self.unique else ''}({', '.join(self.columns)})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"name": self.name, "unique": self.unique, "columns": list(self.columns)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Index:
        """The inverse of ``to_dict``."""
        return cls(name=data["name"], unique=data["unique"], columns=tuple(data["columns"]))


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key: its columns, what they reference, and the ON UPDATE / ON DELETE rules."""

    name: str
    columns: tuple[str, ...]
    referenced_table: str
    referenced_columns: tuple[str, ...]
    on_update: str  # RESTRICT, CASCADE, SET NULL, NO ACTION
    on_delete: str

    @property
    def references(self) -> str:
        """``project(id)``."""
        return f"{self.referenced_table}({', '.join(self.referenced_columns)})"

    def __str__(self) -> str:
        return f"({', '.join(self.columns)}) -> {self.references} ON UPDATE {self.on_update} ON DELETE {self.on_delete}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "columns": list(self.columns),
            "referenced_table": self.referenced_table,
            "referenced_columns": list(self.referenced_columns),
            "on_update": self.on_update,
            "on_delete": self.on_delete,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForeignKey:
        """The inverse of ``to_dict``."""
        return cls(
            name=data["name"],
            columns=tuple(data["columns"]),
            referenced_table=data["referenced_table"],
            referenced_columns=tuple(data["referenced_columns"]),
            on_update=data["on_update"],
            on_delete=data["on_delete"],
        )


@dataclass(frozen=True)
class Table:
    """A base table: columns in their order, indexes and foreign keys sorted by name."""

    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "columns": [c.to_dict() for c in self.columns],
            "indexes": [i.to_dict() for i in self.indexes],
            "foreign_keys": [f.to_dict() for f in self.foreign_keys],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Table:
        """The inverse of ``to_dict``."""
        return cls(
            name=data["name"],
            columns=tuple(Column.from_dict(c) for c in data["columns"]),
            indexes=tuple(Index.from_dict(i) for i in data["indexes"]),
            foreign_keys=tuple(ForeignKey.from_dict(f) for f in data["foreign_keys"]),
        )


@dataclass(frozen=True)
class Schema:
    """Every base table of one database, keyed by name."""

    tables: Mapping[str, Table]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the tables as a list sorted by name."""
        return {"tables": [self.tables[name].to_dict() for name in sorted(self.tables)]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """The inverse of ``to_dict``."""
        tables = (Table.from_dict(t) for t in data["tables"])
        return cls(tables={t.name: t for t in tables})


@dataclass(frozen=True, order=True)
class Difference:
    """One way the live schema differs from the expected one; ``key`` is what an operator types to accept it."""

    key: str  # table:<t>, column:<t>.<c>, index:<t>.<name>, foreign-key:<t>.<name>
    kind: str  # missing (expected, not found), extra (found, not expected), different
    detail: str

    def describe(self) -> str:
        """One line: ``column trust.remaining_uses: missing (expected int(11) NULL)``."""
        what, _, name = self.key.partition(":")
        return f"{what.replace('-', ' ')} {name}: {self.kind} ({self.detail})"


def schema_from_information_schema(
    tables: Iterable[Any],
    columns: Iterable[Sequence[Any]],
    statistics: Iterable[Sequence[Any]],
    foreign_keys: Iterable[Sequence[Any]],
) -> Schema:
    """A schema from information_schema's rows; only ``tables`` (the base tables' names) become tables.

    ``columns``: (table, column, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT) in ordinal order;
    ``statistics``: (table, index, NON_UNIQUE, column) in SEQ_IN_INDEX order; ``foreign_keys``:
    (table, constraint, column, referenced table, referenced column, UPDATE_RULE, DELETE_RULE)
    in ORDINAL_POSITION order. Rows of other tables (views) are left out.
    """
    names = {str(t) for t in tables}
    table_columns: dict[str, list[Column]] = {name: [] for name in names}
    for table, name, type_, nullable, default in columns:
        if str(table) in names:
            column = Column(
                str(name), str(type_), str(nullable) == "YES", None if default is None else str(default)
            )
            table_columns[str(table)].append(column)
    index_columns: dict[tuple[str, str], list[str]] = {}
    unique: dict[tuple[str, str], bool] = {}
    for table, name, non_unique, column in statistics:
        if str(table) in names:
            index_columns.setdefault((str(table), str(name)), []).append(str(column))
            unique[str(table), str(name)] = not int(non_unique)
    key_rows: dict[tuple[str, str], list[Sequence[Any]]] = {}
    for row in foreign_keys:
        if str(row[0]) in names:
            key_rows.setdefault((str(row[0]), str(row[1])), []).append(row)

    def table_of(name: str) -> Table:
        indexes = sorted((index, cols) for (table, index), cols in index_columns.items() if table == name)
        keys = sorted(
            ((key, rows) for (table, key), rows in key_rows.items() if table == name), key=lambda k: k[0]
        )
        return Table(
            name=name,
            columns=tuple(table_columns[name]),
            indexes=tuple(Index(index, unique[name, index], tuple(cols)) for index, cols in indexes),
            foreign_keys=tuple(
                ForeignKey(
                    name=key,
                    columns=tuple(str(r[2]) for r in rows),
                    referenced_table=str(rows[0][3]),
                    referenced_columns=tuple(str(r[4]) for r in rows),
                    on_update=str(rows[0][5]),
                    on_delete=str(rows[0][6]),
                )
                for key, rows in keys
            ),
        )

    return Schema(tables={name: table_of(name) for name in sorted(names)})


def schema_differences(expected: Schema, live: Schema) -> tuple[Difference, ...]:
    """Every difference of ``live`` from ``expected``, sorted by key; a missing table's parts are not repeated."""
    found: list[Difference] = []
    for name in sorted(expected.tables.keys() - live.tables.keys()):
        found.append(
            Difference(
                f"table:{name}", MISSING, f"expected with {len(expected.tables[name].columns)} columns"
            )
        )
    for name in sorted(live.tables.keys() - expected.tables.keys()):
        found.append(
            Difference(f"table:{name}", EXTRA, f"found with {len(live.tables[name].columns)} columns")
        )
    for name in sorted(expected.tables.keys() & live.tables.keys()):
        found += table_differences(expected.tables[name], live.tables[name])
    return tuple(sorted(found))


def table_differences(expected: Table, live: Table) -> list[Difference]:
    """Every difference between two tables of the same name: columns, indexes, foreign keys."""
    table = expected.name
    found: list[Difference] = []

    live_columns = {c.name: c for c in live.columns}
    expected_columns = {c.name: c for c in expected.columns}
    for column in expected.columns:
        key = f"column:{table}.{column.name}"
        if (other := live_columns.get(column.name)) is None:
            found.append(Difference(key, MISSING, f"expected {column}"))
        elif details := _column_details(column, other):
            found.append(Difference(key, DIFFERENT, details))
    for column in live.columns:
        if column.name not in expected_columns:
            found.append(Difference(f"column:{table}.{column.name}", EXTRA, f"found {column}"))

    found += _compared(
        f"index:{table}",
        expected.indexes,
        live.indexes,
        meaning=lambda i: (i.unique, i.columns),
        generated=lambda i: _generated_index_name(table, i),
        details=_index_details,
    )
    found += _compared(
        f"foreign-key:{table}",
        expected.foreign_keys,
        live.foreign_keys,
        meaning=lambda f: (f.columns, f.referenced_table, f.referenced_columns, f.on_update, f.on_delete),
        generated=lambda f: GENERATED_FOREIGN_KEY.fullmatch(f.name) is not None,
        details=_foreign_key_details,
    )
    return found


def _generated_index_name(table: str, index: Index) -> bool:
    """Whether a server or a tool chose this index's name, not Keystone's migrations.

    Keystone declares some unique constraints and foreign keys without a name.
    MariaDB then names the index after its first column (``<column>_<n>`` when
    taken); sqlalchemy-migrate, which built databases older than Zed, named it
    ``<table>_<column>_key``; an index InnoDB adds for a foreign key may take the
    key's generated name. Keystone's own contract c88cdce8f248 finds such an
    index by its columns for this reason; so does this comparison.
    """
    first = index.columns[0] if index.columns else ""
    return (
        re.fullmatch(rf"{re.escape(first)}(_\d+)?", index.name) is not None
        or index.name == f"{table}_{first}_key"
        or GENERATED_FOREIGN_KEY.fullmatch(index.name) is not None
    )


_Part = TypeVar("_Part", Index, ForeignKey)


def _compared(
    prefix: str,
    expected: Sequence[_Part],
    live: Sequence[_Part],
    *,
    meaning: Callable[[_Part], Hashable],
    generated: Callable[[_Part], bool],
    details: Callable[[_Part, _Part], str],
) -> list[Difference]:
    """Indexes or foreign keys compared: by meaning where both names were generated, by name otherwise.

    A generated name says how a database got there (which tool, in which order),
    not what it enforces: a fresh build and a database migrated from an older
    release may call the same foreign key ``t_ibfk_1`` and ``t_ibfk_2``. So a
    generated name on each side with the same definition is the same thing.
    A name Keystone chose is compared as a name: a later migration drops or
    alters it by that name, and fails when it is not there.
    """
    expected_left = list(expected)
    live_left = list(live)
    for part in sorted((p for p in expected if generated(p)), key=lambda p: p.name):
        same = [p for p in live_left if generated(p) and meaning(p) == meaning(part)]
        if same:
            # The one with the same name first, so equal schemas pair up name for name.
            twin = min(same, key=lambda p: (p.name != part.name, p.name))
            expected_left.remove(part)
            live_left.remove(twin)

    found = []
    live_by_name = {p.name: p for p in live_left}
    expected_names = {p.name for p in expected_left}
    for part in expected_left:
        key = f"{prefix}.{part.name}"
        if (other := live_by_name.get(part.name)) is None:
            found.append(Difference(key, MISSING, f"expected {part}"))
        elif text := details(part, other):
            found.append(Difference(key, DIFFERENT, text))
    for part in live_left:
        if part.name not in expected_names:
            found.append(Difference(f"{prefix}.{part.name}", EXTRA, f"found {part}"))
    return found


def _column_details(expected: Column, live: Column) -> str:
    parts = []
    if expected.type != live.type:
        parts.append(f"type {expected.type} expected, {live.type} found")
    if expected.nullable != live.nullable:
        parts.append(
            f"nullability {_nullability(expected.nullable)} expected, {_nullability(live.nullable)} found"
        )
    if expected.default != live.default:
        parts.append(f"default {_default(expected.default)} expected, {_default(live.default)} found")
    return "; ".join(parts)


def _index_details(expected: Index, live: Index) -> str:
    parts = []
    if expected.unique != live.unique:
        parts.append(f"{_uniqueness(expected.unique)} expected, {_uniqueness(live.unique)} found")
    if expected.columns != live.columns:
        parts.append(f"columns ({', '.join(expected.columns)}) expected, ({', '.join(live.columns)}) found")
    return "; ".join(parts)


def _foreign_key_details(expected: ForeignKey, live: ForeignKey) -> str:
    parts = []
    if expected.columns != live.columns:
        parts.append(f"columns ({', '.join(expected.columns)}) expected, ({', '.join(live.columns)}) found")
    if expected.references != live.references:
        parts.append(f"references {expected.references} expected, {live.references} found")
    if expected.on_update != live.on_update:
        parts.append(f"ON UPDATE {expected.on_update} expected, {live.on_update} found")
    if expected.on_delete != live.on_delete:
        parts.append(f"ON DELETE {expected.on_delete} expected, {live.on_delete} found")
    return "; ".join(parts)


def _nullability(nullable: bool) -> str:
    return "NULL" if nullable else "NOT NULL"


def _uniqueness(unique: bool) -> str:
    return "unique" if unique else "non-unique"


def _default(default: str | None) -> str:
    return "none" if default is None else default

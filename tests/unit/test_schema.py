"""The schema comparison: every difference named once, and nothing a generated name alone would cause."""

from __future__ import annotations

import json
from dataclasses import replace

from runner.schema import (
    Column,
    Difference,
    ForeignKey,
    Index,
    Schema,
    Table,
    schema_differences,
    schema_from_information_schema,
)

TRUST = Table(
    name="trust",
    columns=(
        Column("id", "varchar(64)", nullable=False, default=None),
        Column("remaining_uses", "int(11)", nullable=True, default=None),
        Column("impersonation", "tinyint(1)", nullable=False, default="0"),
    ),
    indexes=(Index("PRIMARY", unique=True, columns=("id",)),),
)
PROJECT = Table(
    name="project",
    columns=(Column("id", "varchar(64)", nullable=False, default=None),),
    indexes=(Index("PRIMARY", unique=True, columns=("id",)),),
)
PROJECT_TAG = Table(
    name="project_tag",
    columns=(
        Column("project_id", "varchar(64)", nullable=False, default=None),
        Column("name", "varchar(255)", nullable=False, default=None),
    ),
    # Declared without names in Keystone's migrations: MariaDB chose these.
    indexes=(Index("project_id", unique=True, columns=("project_id", "name")),),
    foreign_keys=(
        ForeignKey("project_tag_ibfk_1", ("project_id",), "project", ("id",), "RESTRICT", "CASCADE"),
    ),
)
EXPECTED = Schema(tables={t.name: t for t in (TRUST, PROJECT, PROJECT_TAG)})


def _with(*tables: Table) -> Schema:
    return Schema(tables={**EXPECTED.tables, **{t.name: t for t in tables}})


def test_identical_schemas_have_no_difference() -> None:
    assert schema_differences(EXPECTED, _with(*EXPECTED.tables.values())) == ()


def test_a_dropped_column_is_missing_with_what_was_expected() -> None:
    live = _with(replace(TRUST, columns=TRUST.columns[:1] + TRUST.columns[2:]))
    (difference,) = schema_differences(EXPECTED, live)
    assert difference == Difference("column:trust.remaining_uses", "missing", "expected int(11) NULL")
    assert difference.describe() == "column trust.remaining_uses: missing (expected int(11) NULL)"


def test_a_changed_type_and_a_changed_default_are_each_named() -> None:
    id_, remaining_uses, impersonation = TRUST.columns
    live = _with(
        replace(
            TRUST,
            columns=(replace(id_, type="varchar(255)"), remaining_uses, replace(impersonation, default=None)),
        )
    )
    assert schema_differences(EXPECTED, live) == (
        Difference("column:trust.id", "different", "type varchar(64) expected, varchar(255) found"),
        Difference("column:trust.impersonation", "different", "default 0 expected, none found"),
    )


def test_an_extra_index_is_reported_with_its_definition() -> None:
    live = _with(replace(TRUST, indexes=(*TRUST.indexes, Index("ix_remaining", False, ("remaining_uses",)))))
    assert [d.describe() for d in schema_differences(EXPECTED, live)] == [
        "index trust.ix_remaining: extra (found (remaining_uses))"
    ]


def test_a_missing_table_is_one_difference_not_one_per_column() -> None:
    live = Schema(tables={"project": PROJECT, "project_tag": PROJECT_TAG})
    assert schema_differences(EXPECTED, live) == (
        Difference("table:trust", "missing", "expected with 3 columns"),
    )


def test_generated_names_alone_are_no_difference_but_what_they_enforce_is() -> None:
    # The same constraints as a database built by sqlalchemy-migrate and altered since names them.
    (key,) = PROJECT_TAG.foreign_keys
    renamed = replace(
        PROJECT_TAG,
        indexes=(Index("project_tag_project_id_key", True, ("project_id", "name")),),
        foreign_keys=(replace(key, name="project_tag_ibfk_2"),),
    )
    assert schema_differences(EXPECTED, _with(renamed)) == ()

    restricted = replace(renamed, foreign_keys=(replace(key, on_delete="RESTRICT"),))
    assert [d.describe() for d in schema_differences(EXPECTED, _with(restricted))] == [
        "foreign key project_tag.project_tag_ibfk_1: different (ON DELETE CASCADE expected, RESTRICT found)"
    ]


def test_a_name_keystone_chose_is_compared_as_a_name() -> None:
    expected = _with(
        replace(TRUST, indexes=(*TRUST.indexes, Index("duplicate_trust_constraint", True, ("id",))))
    )
    live = _with(replace(TRUST, indexes=(*TRUST.indexes, Index("other_name", True, ("id",)))))
    assert [(d.key, d.kind) for d in schema_differences(expected, live)] == [
        ("index:trust.duplicate_trust_constraint", "missing"),
        ("index:trust.other_name", "extra"),
    ]


def test_the_json_form_round_trips_exactly() -> None:
    assert Schema.from_dict(json.loads(json.dumps(EXPECTED.to_dict()))) == EXPECTED


def test_information_schema_rows_become_tables_without_views() -> None:
    schema = schema_from_information_schema(
        tables=["project_tag", "project"],
        columns=[
            ("project", "id", "varchar(64)", "NO", None),
            ("project_tag", "project_id", "varchar(64)", "NO", None),
            ("project_tag", "name", "varchar(255)", "NO", None),
            ("a_view", "id", "varchar(64)", "YES", "NULL"),
        ],
        statistics=[
            ("project", "PRIMARY", 0, "id"),
            ("project_tag", "project_id", 0, "project_id"),
            ("project_tag", "project_id", 0, "name"),
        ],
        foreign_keys=[
            ("project_tag", "project_tag_ibfk_1", "project_id", "project", "id", "RESTRICT", "CASCADE")
        ],
    )
    assert schema == Schema(tables={"project": PROJECT, "project_tag": PROJECT_TAG})

"""Fuzzing the inventory loader: whatever the file holds, it loads or it is one ConfigError, never a traceback.

Four kinds of input: a valid inventory mutated (values swapped for other types, keys dropped,
NaN, inf, huge, empty and negative values, strings where tables go); documents in the known
table shapes with random values; random TOML documents; and arbitrary text.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.config import SECTIONS, load_inventory
from runner.errors import ConfigError, ExitCode
from runner.model import Inventory
from tests.unit.test_inventory_malformed import GOOD

# No example database: a run leaves nothing in the working tree; a failure prints how to replay it.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
VALID = tomllib.loads(GOOD)

# -- writing TOML (the standard library only reads it) ----------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return _toml_scalar(value)


def _toml_scalar(value: bool | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def _toml_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def to_toml(document: dict[str, Any]) -> str:
    """A TOML document whose tables are inline: tomllib reads it back as ``document``."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in document.items())


def test_the_writer_round_trips() -> None:
    assert tomllib.loads(to_toml(VALID)) == VALID
    odd = {"a": [math.inf, -0.0, 10**30, "\x00\n\"'\\", {"b": []}], "é ü": {"": True}}
    assert tomllib.loads(to_toml(odd)) == odd


# -- values -------------------------------------------------------------------------------------------

KNOWN_KEYS = sorted(
    {key for table in VALID.values() if isinstance(table, dict) for key in table}
    | {key for table in VALID["nodes"] + VALID["haproxy"] for key in table}
    | {"admin", "tls", "ca_file", "verify", "user", "password_file", "password", "key_repositories", "docker"}
    | {"backend", "server", "backup_dir", "domain"}
)
INTERESTING: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    0,
    -1,
    0.0,
    -0.5,
    1e308,
    10**19,
    10**100,
    True,
    False,
    "",
    " ",
    "\x00",
    "\n",
    "relative/path",
    "/",
    "/run/haproxy/admin.sock",
    "tcp:127.0.0.1:0",
    "tcp:h:99999",
    "unix:",
    "http://[::1",
    "http://h:0/",
    "ssh://",
    "..",
    [],
    [""],
    ["/run/haproxy/admin.sock"],
    [{}],
    {},
    {"socket": "/x"},
    {"backend": "b", "server": "s"},
]
scalars = st.one_of(
    st.sampled_from(INTERESTING),
    st.text(max_size=20),
    st.integers(),
    st.floats(),
    st.booleans(),
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS + list(SECTIONS)), st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=6,
)


def _loads_or_config_error(text: str | bytes) -> None:
    """The property: an Inventory, or one ConfigError with exit code 3; and no file created."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "inventory.toml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        outcome: Inventory | ConfigError
        try:
            outcome = load_inventory(path)
        except ConfigError as exc:  # anything else fails the test, with its traceback
            outcome = exc
        assert isinstance(outcome, Inventory) or (outcome.exit_code is ExitCode.CONFIG and outcome.what)
        assert list(Path(directory).iterdir()) == [path]


# -- mutations of a valid inventory -------------------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document: dict keys and list indexes."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


def _mutate(document: Any, place: tuple[Any, ...], action: str, value: Any) -> Any:
    parent = document
    for step in place[:-1]:
        parent = parent[step]
    last = place[-1]
    if action == "drop":
        del parent[last]
    elif action == "stringify":
        parent[last] = str(parent[last])
    elif action == "listify":
        parent[last] = [parent[last]]
    elif action == "unlistify" and isinstance(parent[last], list):
        parent[last] = parent[last][0] if parent[last] else ""
    elif action == "strings-for-tables" and isinstance(parent[last], list):
        parent[last] = [str(item) for item in parent[last]]
    elif action == "add-key" and isinstance(parent[last], dict):
        parent[last][value if isinstance(value, str) else "extra"] = value
    else:
        parent[last] = value
    return document


ACTIONS = ["drop", "replace", "stringify", "listify", "unlistify", "strings-for-tables", "add-key"]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    document = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        places = _paths(document)
        if not places:
            break
        place = draw(st.sampled_from(places))
        # A copy: INTERESTING's lists and tables are shared objects the mutations would change for
        # every later example (hypothesis then sees its strategy draw differently and fails).
        document = _mutate(document, place, draw(st.sampled_from(ACTIONS)), copy.deepcopy(draw(values)))
    return to_toml(document)


@FUZZ
@given(mutated())
def test_a_mutated_inventory_loads_or_is_one_config_error(text: str) -> None:
    _loads_or_config_error(text)


# -- the known shapes, random values ------------------------------------------------------------------


def _table(known: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.one_of(st.sampled_from(known), keys), values, max_size=len(known) + 1)


shaped = st.fixed_dictionaries(
    {},
    optional={
        "database": _table(["host", "port", "user", "name", "password_env", "password_file", "admin", "tls"]),
        "target": _table(["image", "backup_image", "mounts", "key_repositories"]),
        "haproxy": st.one_of(st.lists(_table(["socket"]), max_size=3), values),
        "nodes": st.one_of(
            st.lists(_table(["name", "docker", "container", "health_url", "servers"]), max_size=3), values
        ),
        "run": _table(
            ["state_dir", "backup_dir", "drain_timeout_s", "health_timeout_s", "migration_timeout_s"]
        ),
        "probe": _table(
            ["url", "username", "project", "domain", "password_env", "rate_per_s", "concurrency"]
        ),
    },
)


@settings(FUZZ, max_examples=150)
@given(shaped)
def test_random_values_in_the_known_shapes_load_or_are_one_config_error(document: dict[str, Any]) -> None:
    _loads_or_config_error(to_toml(document))


@settings(FUZZ, max_examples=100)
@given(st.dictionaries(keys, values, max_size=6))
def test_a_random_toml_document_loads_or_is_one_config_error(document: dict[str, Any]) -> None:
    _loads_or_config_error(to_toml(document))


# -- text ----------------------------------------------------------------------------------------------


@settings(FUZZ, max_examples=150)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        st.builds(
            lambda at, cut, insert: GOOD[:at] + insert + GOOD[at + cut :],
            st.integers(min_value=0, max_value=len(GOOD)),
            st.integers(min_value=0, max_value=40),
            st.text(max_size=10),
        ),
    )
)
def test_arbitrary_text_loads_or_is_one_config_error(text: str | bytes) -> None:
    _loads_or_config_error(text)

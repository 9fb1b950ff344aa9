"""The house has one direction: a module imports only from its own layer or the layers below it.

Read from the source (every ``import`` and ``from ... import``, also inside
functions), so a type that lives in the wrong module shows up as an import
that runs back up, before anyone builds on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[2] / "runner"

# Bottom first. A module belongs to the first layer one of whose prefixes names it or its package.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # Values and the rules every layer shares; they import nothing of the project but each other.
    (
        "foundation",
        (
            "runner.model",
            "runner.errors",
            "runner.waits",
            "runner.interrupts",
            "runner.schema",
            "runner.background",
        ),
    ),
    # Everything with side effects: Docker, HAProxy, the database, HTTP, the machine itself.
    ("drivers", ("runner.drivers", "runner.host", "runner.engine", "runner.images")),
    # Reading the inventory and secrets, the journal, traffic and what it means, the lab.
    (
        "records",
        (
            "runner.config",
            "runner.credentials",
            "runner.journal",
            "runner.journal_shape",  # a prefix covers only its own dotted names
            "runner.migrations",
            "runner.release_path",
            "runner.keystone_conf",
            "runner.probe",
            "runner.watch",
            "runner.analysis",
            "runner.plot",
            "runner.report",
            "runner.lab",
        ),
    ),
    # What the cluster is (facts) and what can be done to it (steps).
    ("facts and steps", ("runner.facts", "runner.steps")),
    # Pure functions of inventory and facts.
    ("plan", ("runner.preflight", "runner.preflight_schema", "runner.plan", "runner.plan_offline")),
    ("executor", ("runner.executor",)),
    # The last run, read back from its journal and checked against the cluster.
    ("history", ("runner.history",)),
    # Wiring real drivers to the plan and the executor.
    (
        "commands",
        (
            "runner.upgrade",
            "runner.rollback",
            "runner.resume",
            "runner.traffic",
            "runner.rehearse",
            "runner.restore",
        ),
    ),
    (
        "cli",
        (
            "runner.cli",
            "runner.cli_options",
            "runner.cli_render",
            "runner.cli_copies",
            "runner.terminal",
            "runner.__main__",
        ),
    ),
]


def layer_of(module: str) -> int | None:
    """The index of the layer ``module`` belongs to (None: it belongs to none)."""
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def module_name(path: Path, root: Path) -> str:
    """``runner/drivers/haproxy.py`` -> ``runner.drivers.haproxy``."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str) -> set[str]:
    """Every ``runner`` module a source file imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "runner":
            found |= {f"runner.{a.name}" for a in node.names}  # from runner import plan
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "runner":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "runner"}
    return found


def violations(root: Path) -> list[str]:
    """Every import that runs up the house, and every module no layer names."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        if module == "runner":
            continue  # the package itself: empty
        own = layer_of(module)
        if own is None:
            problems.append(f"{module} is in no layer: add it to LAYERS")
            continue
        for target in sorted(imported(path.read_text())):
            if target == "runner":
                continue
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                problems.append(
                    f"{module} ({LAYERS[own][0]}) imports {target} ({LAYERS[theirs][0]}), a higher layer"
                )
    return problems


def test_every_import_in_runner_runs_down_the_house() -> None:
    assert violations(RUNNER) == []


def test_the_value_types_import_nothing_of_the_project() -> None:
    assert imported((RUNNER / "model.py").read_text()) == set()


def test_a_driver_that_imports_the_inventory_loader_is_caught(tmp_path: Path) -> None:
    # The import this layout replaced: drivers reaching up into config.
    root = tmp_path / "runner"
    (root / "drivers").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "model.py").write_text("")
    (root / "config.py").write_text("from runner.model import X\n")
    (root / "drivers" / "docker_engine.py").write_text(
        "from runner.model import X\n\ndef f():\n    from runner.config import LOCAL_ENGINE\n"
    )
    assert violations(root) == [
        "runner.drivers.docker_engine (drivers) imports runner.config (records), a higher layer"
    ]


def test_a_module_outside_every_layer_is_caught(tmp_path: Path) -> None:
    root = tmp_path / "runner"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "helpers.py").write_text("")
    assert violations(root) == ["runner.helpers is in no layer: add it to LAYERS"]

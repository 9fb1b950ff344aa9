"""Preflight's readings: the script the target's throwaway runs, against a stand-in Keystone package
(Keystone imported once, check and doctor each in a fork of it, each with its own output and exit
code); the nodes read at once, an engine's first before its others."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner.facts.gather import PREFLIGHT_THREADS, _read_nodes
from runner.facts.nodes import NodeFacts
from runner.facts.target import FACTS_SCRIPT, parse_facts_output
from runner.model import LOCAL_ENGINE, NodeConfig

# A stand-in keystone.cmd.manage that counts its imports in a file beside it.
MANAGE = """\
import pathlib, sys
imports = pathlib.Path(__file__).with_name('imports')
imports.write_text((imports.read_text() if imports.exists() else '') + 'x')

def main():
    command = sys.argv[1:]
    print('ran', *command)
    if command == ['db_sync', '--check']:
        sys.exit(2)
    if command == ['doctor']:
        print('Symptom: debug mode is enabled', file=sys.stderr)
        raise RuntimeError('doctor broke')
"""


def _keystone(root: Path, manage: str) -> Path:
    package = root / "keystone"
    versions = package / "common/sql/migrations/versions"
    versions.mkdir(parents=True)
    (versions / "EXPAND_HEAD").write_text("742c857f1dfb\n")
    (versions / "CONTRACT_HEAD").write_text("c88cdce8f248\n")
    (package / "__init__.py").write_text("")
    (package / "cmd").mkdir()
    (package / "cmd/__init__.py").write_text("")
    (package / "cmd/manage.py").write_text(manage)
    metadata = root / "keystone-29.1.0.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: keystone\nVersion: 29.1.0\n")
    return package


def _run(root: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", FACTS_SCRIPT, *args],
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_check_and_doctor_run_in_forks_of_one_import_each_with_its_output_and_exit_code(
    tmp_path: Path,
) -> None:
    package = _keystone(tmp_path, MANAGE)
    keys = tmp_path / "fernet-keys"
    keys.mkdir()
    (keys / "0").write_text("key")

    output = _run(tmp_path, "with-database", str(keys))

    assert (package / "cmd/imports").read_text() == "x"  # imported once, by the parent
    facts = parse_facts_output(output)
    assert (facts.release, facts.expand_head, facts.contract_head) == (
        "29.1.0",
        "742c857f1dfb",
        "c88cdce8f248",
    )
    assert facts.key_files == {str(keys): 1}
    assert facts.check is not None
    assert facts.check.exit_code == 2
    assert facts.check.output.strip() == "ran db_sync --check"
    assert facts.doctor is not None
    assert facts.doctor.exit_code == 1
    assert "ran doctor" in facts.doctor.output
    assert "Symptom: debug mode is enabled" in facts.doctor.output
    assert "RuntimeError: doctor broke" in facts.doctor.output
    # What the parent printed before forking is printed once, not again by each fork.
    assert output.count("EXPAND 742c857f1dfb") == 1


@pytest.mark.parametrize("manage", ["raise ImportError('no oslo.config here')\n", "def main():\n    pass\n"])
def test_an_import_that_fails_fails_both_and_a_main_that_returns_succeeds(
    tmp_path: Path, manage: str
) -> None:
    _keystone(tmp_path, manage)

    facts = parse_facts_output(_run(tmp_path, "with-database"))

    assert facts.check is not None
    assert facts.doctor is not None
    if manage.startswith("raise"):
        assert (facts.check.exit_code, facts.doctor.exit_code) == (1, 1)
        assert "no oslo.config here" in facts.check.output
    else:
        assert (facts.check.exit_code, facts.doctor.exit_code) == (0, 0)


def test_without_the_database_nothing_is_imported_or_forked(tmp_path: Path) -> None:
    package = _keystone(tmp_path, MANAGE)

    facts = parse_facts_output(_run(tmp_path, "without-database"))

    assert facts.expand_head == "742c857f1dfb"
    assert (facts.check, facts.doctor) == (None, None)
    assert not (package / "cmd/imports").exists()


def test_an_engines_other_nodes_are_read_only_after_its_first_and_other_engines_at_once() -> None:
    nodes = tuple(
        NodeConfig(name, engine, name, f"http://127.0.0.1:{port}/v3", ())
        for name, port, engine in (("a1", 1, "a"), ("a2", 2, "a"), ("a3", 3, "a"), ("b1", 4, "b"))
    )
    a1_done, b1_read = threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def facts_of(node: NodeConfig) -> NodeFacts:
        if node.name == "a1":
            # Held until b's first was read: that runs beside a's first, not after it.
            seen["b1 read meanwhile"] = b1_read.wait(timeout=10)
            a1_done.set()
        else:
            seen[node.name] = a1_done.is_set()
            if node.name == "b1":
                b1_read.set()
        return NodeFacts(node, None, None, None, None)

    with ThreadPoolExecutor(max_workers=PREFLIGHT_THREADS) as pool:
        read = _read_nodes(pool, nodes, facts_of)
        assert [read[n.name].result().config.name for n in nodes] == ["a1", "a2", "a3", "b1"]
    assert seen == {"b1 read meanwhile": True, "b1": False, "a2": True, "a3": True}


def test_the_runners_own_engines_nodes_are_read_at_once() -> None:
    # No image is copied onto the runner's own engine: nothing there waits for a first node.
    nodes = tuple(
        NodeConfig(name, LOCAL_ENGINE, name, f"http://127.0.0.1:{port}/v3", ())
        for name, port in (("l1", 1), ("l2", 2), ("l3", 3))
    )
    others_read = {name: threading.Event() for name in ("l2", "l3")}
    seen: dict[str, bool] = {}

    def facts_of(node: NodeConfig) -> NodeFacts:
        if node.name == "l1":
            seen["others read meanwhile"] = all(e.wait(timeout=10) for e in others_read.values())
        else:
            others_read[node.name].set()
        return NodeFacts(node, None, None, None, None)

    with ThreadPoolExecutor(max_workers=PREFLIGHT_THREADS) as pool:
        read = _read_nodes(pool, nodes, facts_of)
        assert [read[n.name].result().config.name for n in nodes] == ["l1", "l2", "l3"]
    assert seen == {"others read meanwhile": True}

"""The key digest script, run here on directories as it runs inside containers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from runner.drivers.containers import Engine, Finished
from runner.drivers.key_digests import (
    EMPTY,
    KEY_DIGEST_SCRIPT,
    MISSING,
    key_differences,
    parse_key_digests,
    read_release_and_key_digests,
)
from runner.facts.nodes import _release_and_keys
from runner.model import NodeConfig


def _digests(*repositories: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", KEY_DIGEST_SCRIPT, *map(str, repositories)],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_key_digests(done.stdout)


def _keys(path: Path, keys: dict[str, bytes]) -> Path:
    path.mkdir()
    for name, content in keys.items():
        (path / name).write_bytes(content)
    return path


def test_same_keys_in_other_places_have_one_digest_and_any_change_shows(tmp_path: Path) -> None:
    keys = {"0": b"staged-key=", "1": b"primary-key="}
    here = _keys(tmp_path / "here", keys)
    there = _keys(tmp_path / "there", keys)
    one_more = _keys(tmp_path / "one-more", {**keys, "2": b"new-primary="})
    changed = _keys(tmp_path / "changed", {**keys, "1": b"other-key="})
    renamed = _keys(tmp_path / "renamed", {"0": b"staged-key=", "2": b"primary-key="})
    digests = _digests(here, there, one_more, changed, renamed, tmp_path / "missing")
    assert digests[str(here)] == digests[str(there)]
    assert len({digests[str(p)] for p in (here, one_more, changed, renamed)}) == 4
    assert digests[str(tmp_path / "missing")] == MISSING
    assert all(b"key=" not in d.encode() for d in digests.values())  # no key content in the output


def test_differences_name_who_holds_which_keys() -> None:
    seen = {
        "node k1": {"/f": "a" * 64, "/c": "c" * 64},
        "node k2": {"/f": "b" * 64, "/c": "c" * 64},
        "the throwaway container": {"/f": "a" * 64},
    }
    assert key_differences(seen, ("/f", "/c")) == [
        "/f: aaaaaaaaaaaa on node k1, the throwaway container; bbbbbbbbbbbb on node k2",
        "/c: cccccccccccc on node k1, node k2; unread on the throwaway container",
    ]


def test_a_repository_missing_or_empty_everywhere_is_still_a_difference(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    digests = _digests(empty, tmp_path / "missing")
    assert digests == {str(empty): EMPTY, str(tmp_path / "missing"): MISSING}
    seen = {"node k1": {"/f": EMPTY}, "node k2": {"/f": EMPTY}}
    assert key_differences(seen, ("/f",)) == ["/f: empty on node k1, node k2"]


class _RunsHere:
    """An engine whose exec runs the command here, in this interpreter, as a container would; with
    ``release``, a keystone package of that version is importable there."""

    def __init__(self, tmp_path: Path, release: str | None = None, exit_code: int | None = None) -> None:
        self.commands: list[list[str]] = []
        self.exit_code = exit_code
        self.env = dict(os.environ)
        if release is not None:
            site = tmp_path / "site"
            (site / f"keystone-{release}.dist-info").mkdir(parents=True)
            (site / f"keystone-{release}.dist-info" / "METADATA").write_text(
                f"Metadata-Version: 2.1\nName: keystone\nVersion: {release}\n"
            )
            self.env["PYTHONPATH"] = str(site)

    def exec_output(self, container: str, command: list[str], *, user: str | None = None) -> Finished:
        self.commands.append(command)
        done = subprocess.run(
            [sys.executable, *command[1:]], check=False, capture_output=True, text=True, env=self.env
        )
        exit_code = done.returncode if self.exit_code is None else self.exit_code
        return Finished(exit_code, done.stdout + done.stderr)


def test_the_release_and_the_digests_come_from_one_process(tmp_path: Path) -> None:
    keys = _keys(tmp_path / "keys", {"0": b"staged-key="})
    engine = _RunsHere(tmp_path, release="28.1.0")
    readings = read_release_and_key_digests(
        cast(Engine, engine), "node", (str(keys), str(tmp_path / "missing"))
    )
    assert len(engine.commands) == 1
    assert (readings.release, readings.release_asked, readings.error) == ("28.1.0", True, None)
    assert readings.digests == {str(keys): _digests(keys)[str(keys)], str(tmp_path / "missing"): MISSING}


def test_digests_that_cannot_be_read_are_an_error_and_the_release_is_kept(tmp_path: Path) -> None:
    engine = _RunsHere(tmp_path, release="29.1.0", exit_code=1)
    readings = read_release_and_key_digests(cast(Engine, engine), "node", (str(tmp_path),))
    assert readings.digests is None
    assert readings.error is not None
    assert "cannot read the key repositories inside node" in readings.error.render()
    assert (readings.release, readings.release_asked) == ("29.1.0", True)


def test_a_process_that_never_got_to_the_release_says_so() -> None:
    class _NoPython:
        def exec_output(self, container: str, command: list[str], *, user: str | None = None) -> Finished:
            return Finished(127, "exec: python3: not found")

    readings = read_release_and_key_digests(cast(Engine, _NoPython()), "node", ("/etc/keystone/fernet-keys",))
    assert (readings.release, readings.release_asked, readings.digests) == (None, False, None)
    assert readings.error is not None


class _Scripted:
    """An engine whose first exec answers ``first`` and every later one (the release read on its
    own) a release."""

    def __init__(self, first: Finished) -> None:
        self.first = first
        self.commands: list[list[str]] = []

    def exec_output(self, container: str, command: list[str], *, user: str | None = None) -> Finished:
        self.commands.append(command)
        return self.first if len(self.commands) == 1 else Finished(0, "27.1.0\n")


def test_the_release_is_asked_on_its_own_only_when_the_one_process_never_asked_it() -> None:
    node = cast(NodeConfig, SimpleNamespace(name="keystone-1", container="ks-1"))
    repositories = ("/etc/keystone/fernet-keys",)
    answered = _Scripted(Finished(0, "RELEASE None\nKEYDIGEST /etc/keystone/fernet-keys 2 abc\n"))
    assert _release_and_keys(node, cast(Engine, answered), repositories) == (
        None,
        {"/etc/keystone/fernet-keys": "abc"},
        None,
    )
    assert len(answered.commands) == 1  # both ways were tried inside it: not asked again
    no_python = _Scripted(Finished(127, "exec: python3: not found"))
    release, digests, error = _release_and_keys(node, cast(Engine, no_python), repositories)
    assert (release, digests) == ("27.1.0", None)
    assert error is not None
    assert "cannot read the key repositories inside ks-1" in error
    assert len(no_python.commands) == 2

"""The key digest script, run here on directories as it runs inside containers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runner.drivers.key_digests import EMPTY, KEY_DIGEST_SCRIPT, MISSING, key_differences, parse_key_digests


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

"""Which constraints each Keystone release builds with."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import ImageError
from runner.images.catalog import CONSTRAINTS_BY_MAJOR, constraints_for, keystone_image

CONSTRAINTS_DIR = Path(__file__).resolve().parents[2] / "images" / "keystone" / "constraints"


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("23.0.2", "2023.1.txt"),
        ("24.1.0", "2023.2.txt"),
        ("28.1.0", "2025.2.txt"),
        ("29.1.0", "2026.1.txt"),
    ],
)
def test_each_release_gets_its_series_constraints(version: str, expected: str) -> None:
    assert constraints_for(version) == expected
    spec = keystone_image(version)
    assert spec.reference == f"keystone-upgrade/keystone:{version}"
    assert spec.buildargs == {"KEYSTONE_VERSION": version, "CONSTRAINTS": expected}


def test_every_mapped_constraints_file_is_in_the_tree() -> None:
    for name in CONSTRAINTS_BY_MAJOR.values():
        assert (CONSTRAINTS_DIR / name).is_file(), name


def test_a_release_without_constraints_says_which_are_known() -> None:
    with pytest.raises(ImageError) as raised:
        constraints_for("26.1.0")
    assert "23.x" in str(raised.value)


def test_a_version_that_is_not_one_is_refused() -> None:
    with pytest.raises(ImageError, match="not a Keystone release"):
        constraints_for("latest")

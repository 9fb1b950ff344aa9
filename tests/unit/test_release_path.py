"""Which release paths Keystone supports: one release at a time, or SLURP to the next SLURP."""

from __future__ import annotations

import re

import pytest

from runner.errors import ExitCode, PreflightError
from runner.images.catalog import CONSTRAINTS_BY_MAJOR, series_of, series_of_major
from runner.release_path import (
    ReleasePath,
    check_release_path,
    is_slurp,
    refuse_without_alembic,
    suggested_path,
)


def refusal(current: list[str], hops: list[str]) -> PreflightError:
    with pytest.raises(PreflightError) as raised:
        check_release_path(current, hops)
    assert raised.value.exit_code == ExitCode.PREFLIGHT
    assert "nothing was changed" in raised.value.what
    return raised.value


def test_series_follow_the_constraints_the_images_build_with() -> None:
    # The dated constraints files name their series: the arithmetic must agree with every one.
    dated = {m: name for m, name in CONSTRAINTS_BY_MAJOR.items() if re.fullmatch(r"\d{4}\.\d\.txt", name)}
    assert len(dated) >= 5
    for major, name in dated.items():
        assert series_of_major(major) == name.removesuffix(".txt")
    assert series_of("26.0.1") == "2024.2"
    assert series_of("30.0.0.0b1") == "2026.2"
    assert series_of("22.0.0") is None  # Zed: before the series were named by date
    assert series_of("latest") is None


def test_slurp_releases_are_the_dot_one_series_from_2023_1() -> None:
    assert [m for m in range(20, 32) if is_slurp(m)] == [23, 25, 27, 29, 31]


def test_one_release_at_a_time_is_supported() -> None:
    assert check_release_path(["28.1.0"], ["29.1.0"]) == ReleasePath(hops=("29.1.0",))
    assert check_release_path(["23.0.2"], ["24.1.0"]).hops == ("24.1.0",)


def test_a_bugfix_release_of_the_same_series_is_supported() -> None:
    assert check_release_path(["29.1.0"], ["29.1.2"]) == ReleasePath(hops=("29.1.2",))


@pytest.mark.parametrize(
    ("start", "target", "skipped"),
    [("25.0.0", "27.1.0", "2024.2"), ("27.1.0", "29.1.0", "2025.2"), ("23.0.2", "25.1.0", "2023.2")],
)
def test_slurp_to_the_next_slurp_is_supported_and_named(start: str, target: str, skipped: str) -> None:
    path = check_release_path([start], [target])
    assert path.hops == (target,)
    assert path.skips == (f"{start} -> {target} skips {skipped} (SLURP)",)


def test_two_slurp_skips_in_a_row() -> None:
    path = check_release_path(["25.1.0"], ["27.1.0", "29.1.0"])
    assert path.hops == ("27.1.0", "29.1.0")
    assert path.skips == (
        "25.1.0 -> 27.1.0 skips 2024.2 (SLURP)",
        "27.1.0 -> 29.1.0 skips 2025.2 (SLURP)",
    )


def test_a_skip_from_a_non_slurp_release_is_refused_with_the_path_to_use() -> None:
    error = refusal(["28.1.0"], ["30.0.0"])
    assert "from 28.1.0 to 30.0.0" in error.what
    assert error.hint == (
        "upgrade through 28.x -> 29.x -> 30.x (2025.2 -> 2026.1 -> 2026.2): list each hop's image, oldest first, in [target] image"
    )


def test_a_skip_from_2023_2_is_refused_with_the_path_to_use() -> None:
    error = refusal(["24.1.0"], ["26.0.0"])
    assert "24.x -> 25.x -> 26.x (2023.2 -> 2024.1 -> 2024.2)" in (error.hint or "")


def test_skipping_two_releases_suggests_the_slurp_where_it_shortens_the_path() -> None:
    error = refusal(["25.1.0"], ["28.1.0"])
    assert "upgrade through 25.x -> 27.x -> 28.x " in (error.hint or "")


def test_a_skip_past_the_next_slurp_is_refused() -> None:
    error = refusal(["25.1.0"], ["29.1.0"])
    assert "25.x -> 27.x -> 29.x" in (error.hint or "")


def test_a_listed_hop_that_skips_too_far_is_named() -> None:
    error = refusal(["27.1.0"], ["28.1.0", "30.0.0"])
    assert "from 28.1.0 to 30.0.0" in error.what
    assert "27.x -> 29.x -> 30.x" in (error.hint or "")


@pytest.mark.parametrize(
    ("start", "end", "path"),
    [
        (28, 29, (28, 29)),
        (28, 30, (28, 29, 30)),
        (24, 26, (24, 25, 26)),
        (25, 28, (25, 27, 28)),
        (23, 29, (23, 25, 27, 29)),
        (21, 25, (21, 22, 23, 25)),
        (29, 29, (29,)),
    ],
)
def test_suggested_paths(start: int, end: int, path: tuple[int, ...]) -> None:
    assert suggested_path(start, end) == path


def test_no_suggested_path_goes_down() -> None:
    with pytest.raises(ValueError, match="goes down"):
        suggested_path(29, 28)


def test_a_downgrade_is_refused_and_points_to_rollback() -> None:
    error = refusal(["29.1.0"], ["28.1.0"])
    assert "downgrade" in error.what
    assert "rollback" in (error.hint or "")
    assert "backup" in (error.hint or "")


def test_a_target_below_a_node_of_a_partial_run_is_a_downgrade() -> None:
    error = refusal(["28.1.0", "29.1.0"], ["28.1.2"])
    assert "older than 29.1.0" in error.what


def test_hops_already_done_are_dropped() -> None:
    # The same command again after the first hop finished goes on with the second.
    path = check_release_path(["29.1.0"], ["28.1.0", "29.1.0", "30.0.0"])
    assert path == ReleasePath(hops=("30.0.0",), dropped=("28.1.0", "29.1.0"))


def test_every_hop_done_leaves_nothing_to_run() -> None:
    path = check_release_path(["29.1.0"], ["28.1.0", "29.1.0"])
    assert path == ReleasePath(hops=(), dropped=("28.1.0", "29.1.0"))


def test_descending_hops_are_refused() -> None:
    error = refusal(["28.1.0"], ["30.0.0", "29.1.0"])
    assert "29.1.0 comes after 30.0.0" in error.what
    assert "oldest first (29.1.0 -> 30.0.0)" in (error.hint or "")


def test_a_hop_given_twice_is_refused() -> None:
    error = refusal(["27.1.0"], ["28.1.0", "28.1.0"])
    assert "not newer" in error.what


def test_two_current_releases_start_from_the_lowest() -> None:
    path = check_release_path(["29.1.0", "28.1.0"], ["29.1.0", "30.0.0"])
    assert path == ReleasePath(hops=("29.1.0", "30.0.0"))
    error = refusal(["29.1.0", "28.1.0"], ["30.0.0"])
    assert "from 28.1.0 to 30.0.0" in error.what
    assert "28.1.0 and 29.1.0" in (error.observed or "")


def test_release_candidates_and_dev_builds_compare_by_their_release() -> None:
    path = check_release_path(["29.0.0.0rc1"], ["29.0.0", "30.0.0.0b2.dev12"])
    assert path == ReleasePath(hops=("30.0.0.0b2.dev12",), dropped=("29.0.0",))


def test_something_that_is_not_a_release_is_refused() -> None:
    error = refusal(["28.1.0"], ["latest"])
    assert "'latest'" in error.what


def test_a_path_needs_both_ends() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        check_release_path([], ["29.1.0"])


def test_a_database_still_under_sqlalchemy_migrate_is_refused_naming_the_release() -> None:
    with pytest.raises(PreflightError) as raised:
        refuse_without_alembic(["user", "project", "migrate_version"], "24.1.0")
    error = raised.value
    assert error.exit_code == ExitCode.PREFLIGHT
    assert "sqlalchemy-migrate" in error.what
    assert "migrate_version" in (error.observed or "")
    assert (error.hint or "").startswith("run keystone-manage db_sync with Keystone 23.x (2023.1) first")
    assert "23.x -> 24.x" in (error.hint or "")


@pytest.mark.parametrize(
    ("tables", "first_target"),
    [
        (["user", "alembic_version"], "29.1.0"),
        (["user", "migrate_version", "alembic_version"], "29.1.0"),  # handed over by 22.x or 23.x
        (["user", "migrate_version"], "23.0.2"),  # 23.x's own db_sync hands it over
        ([], "29.1.0"),
    ],
)
def test_databases_alembic_or_the_first_target_can_take(tables: list[str], first_target: str) -> None:
    refuse_without_alembic(tables, first_target)

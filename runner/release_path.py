"""Which releases an upgrade may go through, and in what order. Pure, no I/O.

Keystone supports its database and its mixed old/new nodes one release apart (N -> N+1), and,
since 2023.1, from one SLURP release (a .1 series) straight to the next one ("Skip Level
Upgrade Release Process": 2024.1 -> 2025.1 -> 2026.1, Keystone 25 -> 27 -> 29). Anything
longer is refused here, before anything changes, with the path that works spelled out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from runner.errors import PreflightError
from runner.images.catalog import series_of_major

_RELEASE = re.compile(r"^\d+(?:\.\d+)*")

GIVE_EACH_HOP = "list each hop's image, oldest first, in [target] image"
WAY_BACK = (
    "an upgrade only goes forward: to go back to an older release, `keystone-upgrade rollback` "
    "undoes the last run (until its contract step), and after contract restore the database "
    "backup that run took and start the old release's containers"
)

# Which releases speak sqlalchemy-migrate, read from Keystone's own tree (github.com/openstack/keystone):
# - releasenotes/notes/switch-to-alembic-1fa5248f0ce824ae.yaml, added by "sql: Integrate alembic"
#   (f174b4fa7, first tagged 22.0.0, Zed): "The database migration engine has changed from
#   sqlalchemy-migrate to alembic ... When the keystone-manage db_sync command is run without
#   options or with the --expand or --contract options, all remaining sqlalchemy-migrate-based
#   migrations will be automatically applied."
# - keystone/common/sql/upgrades.py at 23.0.0: _db_sync() calls _init_alembic_on_legacy_database()
#   when the database is under migrate control and not under alembic control; that applies the
#   legacy expand/data_migration/contract repositories and stamps alembic's initial revision
#   27e647c0fad4.
# - releasenotes/notes/remove-sqlalchemy-migrate-a4fa47685c7e28c6.yaml, added by "db: Remove
#   legacy migrations" (8c9462f6f, first tagged 24.0.0, 2023.2): "The legacy sqlalchemy-migrate
#   migrations, which have been deprecated since Zed, have been removed." From 24.0.0 on,
#   keystone/common/sql/legacy_migrations/ is gone and upgrades.py no longer looks at
#   migrate_version: its db_sync would run alembic's initial migration against tables that exist.
# So 23.x (2023.1) is the last release whose db_sync takes such a database over to alembic.
FIRST_ALEMBIC_MAJOR = 22
LAST_MAJOR_TAKING_SQLALCHEMY_MIGRATE = 23


# `db_sync --migrate` does nothing on every release this tool upgrades to. keystone/cmd/cli.py's
# DbSync calls upgrades.migrate_data(), and keystone/common/sql/upgrades.py has, the same at
# 23.0.0 and at 29.0.2:
#     def migrate_data(engine=None):
#         print('Data migrations are no longer supported with alembic. This is now a no-op.')
# (alembic has no data-migration branch: `_validate_upgrade_order` says "this is a no-op in
# alembic land"). So a target from 23.0.0 on skips the step instead of starting a container for it.
FIRST_MAJOR_MIGRATE_NOOP = 23
MIGRATE_IS_NOOP = (
    "db_sync --migrate is a no-op from Keystone 23.0.0 on (upgrades.migrate_data only prints "
    "'Data migrations are no longer supported with alembic')"
)


def migrate_is_noop(target_release: str | None) -> bool:
    """Whether ``db_sync --migrate`` of this release does nothing (unknown releases: run it)."""
    if target_release is None or _RELEASE.match(target_release) is None:
        return False
    return _major(target_release) >= FIRST_MAJOR_MIGRATE_NOOP


@dataclass(frozen=True)
class ReleasePath:
    """The hops still to run, oldest first; the ones already done; the SLURP skips among them."""

    hops: tuple[str, ...]
    dropped: tuple[str, ...] = ()
    skips: tuple[str, ...] = ()


def _release_key(version: str) -> tuple[int, ...]:
    """29.1.0 -> (29, 1, 0, 0): the numeric release, padded so 29.0.0 and 29.0.0.0rc1 compare equal."""
    match = _RELEASE.match(version)
    if match is None:
        raise PreflightError(
            f"not a Keystone release version: {version!r}; nothing was changed",
            observed="a release is a version number as the Keystone package reports it",
            hint="give a release as on PyPI, for example 29.1.0",
        )
    numbers = tuple(int(part) for part in match.group(0).split("."))
    return numbers + (0,) * (4 - len(numbers))


def _major(version: str) -> int:
    return _release_key(version)[0]


def is_slurp(major: int) -> bool:
    """Whether a Keystone major version is a SLURP release (a .1 series, from 2023.1 on)."""
    series = series_of_major(major)
    return series is not None and series.endswith(".1")


def supported_hop(from_major: int, to_major: int) -> bool:
    """Whether Keystone upgrades from one major version to another in one go."""
    distance = to_major - from_major
    return 0 <= distance <= 1 or (distance == 2 and is_slurp(from_major) and is_slurp(to_major))


def suggested_path(from_major: int, to_major: int) -> tuple[int, ...]:
    """The shortest supported path of major versions, both ends included (25, 28 -> 25, 27, 28).

    A SLURP skip wherever one fits, one release at a time elsewhere; SLURP releases are every
    other major, so taking each skip as soon as it fits is also the shortest path.
    """
    if to_major < from_major:
        raise ValueError(f"no upgrade path goes down, from {from_major} to {to_major}")
    path = [from_major]
    while path[-1] != to_major:
        here = path[-1]
        path.append(here + 2 if here + 2 <= to_major and supported_hop(here, here + 2) else here + 1)
    return tuple(path)


def render_path(majors: Sequence[int]) -> str:
    """'28.x -> 29.x -> 30.x (2025.2 -> 2026.1 -> 2026.2)'."""
    releases = " -> ".join(f"{major}.x" for major in majors)
    series = [series_of_major(major) for major in majors]
    if None in series:
        return releases
    return f"{releases} ({' -> '.join(str(s) for s in series)})"


def _skip_description(before: str, after: str) -> str:
    skipped = series_of_major(_major(before) + 1)
    return f"{before} -> {after} skips {skipped} (SLURP)"


def check_release_path(current: Sequence[str], hops: Sequence[str]) -> ReleasePath:
    """The hops still to run from the releases the nodes run now, or PreflightError.

    ``current``: every release the nodes run (two during a partial run: the path starts from the
    lowest). ``hops``: the target releases in the order the operator gave them, the final target
    last. Hops at or below the lowest current release are done and dropped, so the same command
    run again after a hop goes on with the rest. Refused: a final target below a release a node
    runs (a downgrade), hops that do not go up, a hop Keystone does not support.
    """
    if not current or not hops:
        raise ValueError("a release path needs the cluster's release and at least one target")
    keys = {version: _release_key(version) for version in (*current, *hops)}
    lowest = min(current, key=keys.__getitem__)
    highest = max(current, key=keys.__getitem__)
    final = hops[-1]
    cluster = " and ".join(sorted(set(current), key=keys.__getitem__))

    if keys[final] < keys[highest]:
        raise PreflightError(
            f"the target {final} is older than {highest}, which the cluster runs: that is a downgrade; "
            "nothing was changed",
            observed=f"the nodes run {cluster}; the targets given: {' -> '.join(hops)}",
            hint=WAY_BACK,
        )
    for before, after in pairwise(hops):
        if keys[after] <= keys[before]:
            in_order = sorted(set(hops), key=keys.__getitem__)
            raise PreflightError(
                f"the target {after} comes after {before} but is not newer: hops run in the order "
                "given, so this one would be a downgrade; nothing was changed",
                observed=f"the targets given: {' -> '.join(hops)}",
                hint=f"give the targets oldest first ({' -> '.join(in_order)}), each hop after the one it builds on",
            )

    dropped = tuple(hop for hop in hops if keys[hop] <= keys[lowest])
    remaining = tuple(hop for hop in hops if keys[hop] > keys[lowest])
    skips = []
    before = lowest
    for hop in remaining:
        if not supported_hop(_major(before), _major(hop)):
            path = suggested_path(_major(lowest), _major(final))
            raise PreflightError(
                f"Keystone does not upgrade from {before} to {hop} in one go; nothing was changed",
                observed=f"the nodes run {cluster}; the targets given: {' -> '.join(hops)}; Keystone "
                "supports one release at a time, or one SLURP release (2023.1, 2024.1, 2025.1, ...) "
                "to the next",
                hint=f"upgrade through {render_path(path)}: {GIVE_EACH_HOP}",
            )
        if _major(hop) - _major(before) == 2:
            skips.append(_skip_description(before, hop))
        before = hop
    return ReleasePath(hops=remaining, dropped=dropped, skips=tuple(skips))


def refuse_without_alembic(tables: Iterable[str], first_target: str) -> None:
    """PreflightError when the database was last migrated by sqlalchemy-migrate and the first
    target's db_sync cannot take it over to alembic (from 24.x on; see the evidence above).

    ``tables``: the database's table names; ``first_target``: the release whose db_sync runs first.
    """
    names = {table.lower() for table in tables}
    if "alembic_version" in names or "migrate_version" not in names:
        return
    if _major(first_target) <= LAST_MAJOR_TAKING_SQLALCHEMY_MIGRATE:
        return
    last = LAST_MAJOR_TAKING_SQLALCHEMY_MIGRATE
    raise PreflightError(
        f"the database was last migrated by sqlalchemy-migrate, which Keystone {first_target} "
        "no longer reads; nothing was changed",
        observed="the database has a migrate_version table and no alembic_version table "
        f"(Keystone moved to alembic in {FIRST_ALEMBIC_MAJOR}.0.0 and dropped its sqlalchemy-migrate "
        f"migrations in {last + 1}.0.0)",
        hint=f"run keystone-manage db_sync with Keystone {last}.x ({series_of_major(last)}) first: "
        "it applies the remaining sqlalchemy-migrate migrations and hands the schema to alembic; "
        f"then upgrade from there ({render_path(suggested_path(last, _major(first_target)))}: "
        f"{GIVE_EACH_HOP})",
    )

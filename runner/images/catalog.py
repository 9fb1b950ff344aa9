"""Which images the project builds, and for each Keystone release its constraints.

Pure data and lookups, no I/O: unit-tested without Docker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runner.errors import ImageError

REPOSITORY = "keystone-upgrade"
BASE_IMAGE = "debian:bookworm-slim"

# Keystone's major version -> the OpenStack series whose upper-constraints it
# was released with (images/keystone/constraints/<file>).
CONSTRAINTS_BY_MAJOR: dict[int, str] = {
    23: "2023.1.txt",
    24: "2023.2.txt",
    25: "2024.1.txt",
    27: "2025.1.txt",
    28: "2025.2.txt",
    29: "2026.1.txt",
    30: "master-2026-08.txt",
}

# The releases the tests and the demo use; `images build` builds these by default.
DEFAULT_KEYSTONE_VERSIONS: tuple[str, ...] = ("23.0.2", "24.1.0", "27.1.0", "28.1.0", "29.1.0")

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")

CONTEXT_DIGEST_LABEL = "io.keystone-upgrade.context-sha256"


@dataclass(frozen=True)
class ImageSpec:
    """One image to build: where its Dockerfile is, its tag and build arguments."""

    name: str
    directory: str  # below images/ (".." is the repository root)
    tag: str
    buildargs: dict[str, str] = field(default_factory=dict)
    # Whether the build context gets the host's CA bundle (pip runs in it).
    needs_ca_bundle: bool = False
    # Only these paths of ``directory`` go into the context and its digest (empty: all of it), so
    # that a change beside them (tests, docs, a virtualenv) is no reason to rebuild.
    include: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        """repository:tag as docker names it."""
        return f"{REPOSITORY}/{self.name}:{self.tag}"


def constraints_for(version: str) -> str:
    """The upper-constraints file for a Keystone release, or ImageError."""
    match = _VERSION.match(version)
    if match is None:
        raise ImageError(
            f"not a Keystone release version: {version!r}",
            hint="give a version as on PyPI, for example 29.1.0",
        )
    major = int(match.group(1))
    try:
        return CONSTRAINTS_BY_MAJOR[major]
    except KeyError:
        known = ", ".join(f"{m}.x" for m in sorted(CONSTRAINTS_BY_MAJOR))
        raise ImageError(
            f"no OpenStack upper-constraints known for Keystone {version}",
            observed=f"constraints are known for {known}",
            hint="add the release's upper-constraints file under images/keystone/constraints/ "
            "and map its major version in runner/images/catalog.py",
        ) from None


# Keystone's major version goes up by one with every OpenStack release, two a year; the series
# are named by date since 2023.1, which is Keystone 23 (the table above agrees: 23 -> 2023.1.txt).
FIRST_DATED_MAJOR = 23
_MAJOR = re.compile(r"^(\d+)\.\d")


def series_of_major(major: int) -> str | None:
    """The OpenStack series of a Keystone major version (29 -> "2026.1"); None before 2023.1."""
    if major < FIRST_DATED_MAJOR:
        return None
    years, half = divmod(major - FIRST_DATED_MAJOR, 2)
    return f"{2023 + years}.{half + 1}"


def series_of(version: str) -> str | None:
    """The OpenStack series a Keystone release belongs to ("29.1.0" -> "2026.1").

    None before 2023.1, and for anything that is not a version.
    """
    match = _MAJOR.match(version)
    return series_of_major(int(match.group(1))) if match else None


def keystone_image(version: str) -> ImageSpec:
    """The image spec of one Keystone release."""
    return ImageSpec(
        name="keystone",
        directory="keystone",
        tag=version,
        buildargs={"KEYSTONE_VERSION": version, "CONSTRAINTS": constraints_for(version)},
        needs_ca_bundle=True,
    )


def infrastructure_images() -> tuple[ImageSpec, ...]:
    """MariaDB, memcached and HAProxy: one tag each, from Debian bookworm's packages."""
    return (
        ImageSpec(name="mariadb", directory="mariadb", tag="10.11"),
        ImageSpec(name="memcached", directory="memcached", tag="1.6"),
        ImageSpec(name="haproxy", directory="haproxy", tag="2.6"),
    )


# The runner's own image is built from the repository root (images/..) with the top-level
# Dockerfile: the package, its metadata and the Dockerfile are all that goes in.
RUNNER_CONTEXT: tuple[str, ...] = ("Dockerfile", "pyproject.toml", "runner")


def runner_image(project_version: str | None) -> ImageSpec:
    """The runner's own image, tagged with the project's version ("latest" when it has none).

    Not among all_images(): a lab cluster does not need it; `images build --runner` and the
    test that runs the upgrade from it build it.
    """
    return ImageSpec(
        name="runner",
        directory="..",
        tag=project_version or "latest",
        needs_ca_bundle=True,
        include=RUNNER_CONTEXT,
    )


def all_images(
    keystone_versions: tuple[str, ...] = DEFAULT_KEYSTONE_VERSIONS,
) -> tuple[ImageSpec, ...]:
    """Everything a lab cluster of these releases needs."""
    return infrastructure_images() + tuple(keystone_image(v) for v in keystone_versions)

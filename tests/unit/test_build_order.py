"""build_images: up to N builds at once, each Dockerfile's first image before its siblings."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runner.errors import ImageError
from runner.images import build
from runner.images.build import BuildOutcome, build_images, in_build_order
from runner.images.catalog import ImageSpec, infrastructure_images, keystone_image, runner_image

# Bounds a test thread's wait for another: far above what a scheduling step takes.
WAIT_S = 10.0


class RecordingBuilds:
    """Stands in for build_image: records which builds overlapped, fails the ones it is told to."""

    def __init__(self, failing: set[str] | None = None, pair_within_s: float = WAIT_S) -> None:
        self.failing = failing or set()
        self.pair_within_s = pair_within_s
        self.changed = threading.Condition()
        self.running: set[str] = set()
        self.started: list[str] = []
        self.overlaps: set[frozenset[str]] = set()
        self.most_at_once = 0

    def __call__(self, client: object, spec: ImageSpec, images_dir: Path, *, force: bool) -> BuildOutcome:
        with self.changed:
            self.started.append(spec.reference)
            self.overlaps |= {frozenset((spec.reference, other)) for other in self.running}
            self.running.add(spec.reference)
            self.most_at_once = max(self.most_at_once, len(self.running))
            self.changed.notify_all()
            # Each build lasts until a second one runs beside it (or the bound passes), so that
            # every pair the scheduler allows shows in the overlaps.
            self.changed.wait_for(
                lambda: any(spec.reference in pair for pair in self.overlaps), timeout=self.pair_within_s
            )
        try:
            if spec.reference in self.failing:
                raise ImageError(f"building {spec.reference} failed", observed="pip said no")
            return BuildOutcome(spec.reference, "built", 0.0)
        finally:
            with self.changed:
                self.running.discard(spec.reference)
                self.changed.notify_all()


def _specs() -> list[ImageSpec]:
    return [*infrastructure_images(), *(keystone_image(v) for v in ("23.0.2", "24.1.0", "29.1.0"))]


def test_siblings_wait_for_their_dockerfile_s_first_image_and_two_build_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builds = RecordingBuilds()
    monkeypatch.setattr(build, "build_image", builds)
    reported: list[str] = []

    outcomes = build_images(
        object(),
        _specs(),
        Path("images"),
        on_outcome=lambda outcome: reported.append(outcome.reference),
    )

    assert [o.reference for o in outcomes] == [s.reference for s in _specs()]
    assert sorted(reported) == sorted(s.reference for s in _specs())
    seed = "keystone-upgrade/keystone:23.0.2"
    siblings = {"keystone-upgrade/keystone:24.1.0", "keystone-upgrade/keystone:29.1.0"}
    assert not any(frozenset((seed, s)) in builds.overlaps for s in siblings)
    assert builds.started.index(seed) < min(builds.started.index(s) for s in siblings)
    assert builds.most_at_once == 2


def test_one_at_a_time_never_overlaps(monkeypatch: pytest.MonkeyPatch) -> None:
    builds = RecordingBuilds(pair_within_s=0.0)
    monkeypatch.setattr(build, "build_image", builds)

    build_images(object(), _specs(), Path("images"), at_once=1)

    assert builds.most_at_once == 1
    assert len(builds.started) == len(_specs())


def test_a_failed_seed_fails_its_siblings_without_building_them(monkeypatch: pytest.MonkeyPatch) -> None:
    seed = "keystone-upgrade/keystone:23.0.2"
    builds = RecordingBuilds(failing={seed})
    monkeypatch.setattr(build, "build_image", builds)

    with pytest.raises(ImageError, match=r"23\.0\.2 failed"):
        build_images(object(), _specs(), Path("images"))

    assert "keystone-upgrade/keystone:24.1.0" not in builds.started
    assert "keystone-upgrade/keystone:29.1.0" not in builds.started


def test_each_dockerfile_s_first_image_is_queued_before_any_sibling() -> None:
    specs = [*_specs(), runner_image("0.1.0")]

    order = [spec.reference for spec in in_build_order(specs)]

    # The runner's image (its own Dockerfile) goes beside the first release, not after them all.
    assert order.index("keystone-upgrade/runner:0.1.0") < order.index("keystone-upgrade/keystone:24.1.0")
    assert order[:5] == [
        "keystone-upgrade/mariadb:10.11",
        "keystone-upgrade/memcached:1.6",
        "keystone-upgrade/haproxy:2.6",
        "keystone-upgrade/keystone:23.0.2",
        "keystone-upgrade/runner:0.1.0",
    ]


def test_after_a_failure_nothing_more_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    builds = RecordingBuilds(failing={"keystone-upgrade/memcached:1.6"}, pair_within_s=0.0)
    monkeypatch.setattr(build, "build_image", builds)

    with pytest.raises(ImageError, match=r"memcached:1\.6 failed"):
        build_images(object(), _specs(), Path("images"), at_once=1)

    assert builds.started == ["keystone-upgrade/mariadb:10.11", "keystone-upgrade/memcached:1.6"]


def test_a_build_that_ends_beside_a_failure_is_still_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    builds = RecordingBuilds(failing={"keystone-upgrade/mariadb:10.11"})
    monkeypatch.setattr(build, "build_image", builds)
    reported: list[str] = []

    with pytest.raises(ImageError, match=r"mariadb:10\.11 failed"):
        build_images(object(), _specs(), Path("images"), on_outcome=lambda o: reported.append(o.reference))

    # memcached built beside mariadb (each fake build waits for a partner): its outcome is not lost.
    assert frozenset(("keystone-upgrade/mariadb:10.11", "keystone-upgrade/memcached:1.6")) in builds.overlaps
    assert "keystone-upgrade/memcached:1.6" in reported


def test_a_release_never_builds_beside_the_first_release(monkeypatch: pytest.MonkeyPatch) -> None:
    # A free worker is there for 24.1.0 from the start: only the wait for 23.0.2 holds it back.
    builds = RecordingBuilds(pair_within_s=0.5)
    monkeypatch.setattr(build, "build_image", builds)
    releases = [keystone_image(v) for v in ("23.0.2", "24.1.0", "29.1.0")]

    build_images(object(), releases, Path("images"))

    assert builds.started[0] == "keystone-upgrade/keystone:23.0.2"
    assert builds.overlaps == {
        frozenset(("keystone-upgrade/keystone:24.1.0", "keystone-upgrade/keystone:29.1.0"))
    }

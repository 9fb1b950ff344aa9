"""Build the project's images, reusing any whose build context has not changed.

Each image carries the sha256 of what it was built from (its directory under
images/, or for the runner's own image the few paths of the repository it is
built from; its build arguments and the base image's id) as a label. An image
whose label matches is reused; anything else is built. The host's CA bundle
goes into the build context of images that run pip, never into an image.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import queue
import tarfile
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound

from runner.errors import ImageError
from runner.images.catalog import BASE_IMAGE, CONTEXT_DIGEST_LABEL, ImageSpec

log = logging.getLogger(__name__)

SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def default_images_dir() -> Path:
    """images/ of this checkout, or KU_IMAGES_DIR."""
    override = os.environ.get("KU_IMAGES_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "images"


def host_ca_bundle() -> Path | None:
    """The CA bundle this host trusts for pip: PIP_CERT, else the system bundle."""
    for candidate in (os.environ.get("PIP_CERT"), str(SYSTEM_CA_BUNDLE)):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class BuildOutcome:
    """What happened to one image."""

    reference: str
    action: str  # "reused" or "built"
    seconds: float


def _compiled(path: Path) -> bool:
    # Python's bytecode caches change whenever the checkout's code runs: never part of a context.
    return "__pycache__" in path.parts or path.suffix == ".pyc"


def _context_files(spec: ImageSpec, images_dir: Path) -> list[tuple[Path, str]]:
    """Each file of the build context, and its name in the context."""
    directory = images_dir / spec.directory
    roots = [directory / name for name in spec.include] or [directory]
    missing = [str(root) for root in roots if not root.exists()]
    if missing:
        raise ImageError(
            f"the build context of {spec.reference} is incomplete",
            observed="not found: " + ", ".join(missing),
            hint="build from a complete checkout of keystone-upgrade (or set KU_IMAGES_DIR to its images/)",
        )
    files = set()
    for root in roots:
        candidates = [root] if root.is_file() else root.rglob("*")
        files |= {p for p in candidates if p.is_file() and not _compiled(p.relative_to(directory))}
    return [(path, path.relative_to(directory).as_posix()) for path in sorted(files)]


def context_digest(spec: ImageSpec, images_dir: Path, base_image_id: str) -> str:
    """sha256 of everything the image is built from, the CA bundle excepted."""
    digest = hashlib.sha256()
    digest.update(base_image_id.encode())
    for key in sorted(spec.buildargs):
        digest.update(f"\0arg\0{key}={spec.buildargs[key]}".encode())
    for path, name in _context_files(spec, images_dir):
        digest.update(f"\0file\0{name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def project_version(images_dir: Path | None = None) -> str | None:
    """The version in the repository's pyproject.toml (beside images/), or None without one."""
    pyproject = (images_dir or default_images_dir()).parent / "pyproject.toml"
    try:
        version = tomllib.loads(pyproject.read_text())["project"]["version"]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) and version else None


def _context_tar(spec: ImageSpec, images_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, name in _context_files(spec, images_dir):
            tar.add(path, arcname=name)
        # COPY build-ca/ needs the directory even when there is no bundle.
        placeholder = tarfile.TarInfo("build-ca/.keep")
        tar.addfile(placeholder, io.BytesIO(b""))
        bundle = host_ca_bundle() if spec.needs_ca_bundle else None
        if bundle is not None:
            tar.add(bundle, arcname="build-ca/ca-bundle.crt")
    return buffer.getvalue()


def _image_digest_label(client: docker.DockerClient, reference: str) -> str | None:
    try:
        image = client.images.get(reference)
    except ImageNotFound:
        return None
    labels = image.labels or {}
    return labels.get(CONTEXT_DIGEST_LABEL)


def build_image(
    client: docker.DockerClient,
    spec: ImageSpec,
    images_dir: Path,
    *,
    force: bool = False,
    on_line: Callable[[str], None] | None = None,
) -> BuildOutcome:
    """Build one image unless an identical one exists."""
    started = time.monotonic()
    base_id = client.images.get(BASE_IMAGE).id
    digest = context_digest(spec, images_dir, base_id)
    if not force and _image_digest_label(client, spec.reference) == digest:
        return BuildOutcome(spec.reference, "reused", time.monotonic() - started)
    tail: deque[str] = deque(maxlen=40)
    try:
        stream = client.api.build(
            fileobj=io.BytesIO(_context_tar(spec, images_dir)),
            custom_context=True,
            tag=spec.reference,
            buildargs=spec.buildargs,
            labels={CONTEXT_DIGEST_LABEL: digest},
            network_mode="host",  # the only network that reaches the package mirrors here
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in stream:
            if "stream" in chunk:
                for line in str(chunk["stream"]).splitlines():
                    tail.append(line)
                    log.debug("%s | %s", spec.reference, line)
                    if on_line is not None:
                        on_line(line)
            if "error" in chunk:
                raise ImageError(
                    f"building {spec.reference} failed",
                    observed=f"{chunk['error']}\nlast build output:\n" + "\n".join(tail),
                    hint="fix the Dockerfile or the package that failed, then build again; "
                    "images already built are reused",
                )
    except APIError as exc:
        raise ImageError(
            f"building {spec.reference} failed",
            observed=str(exc.explanation or exc),
            hint="check that the Docker engine is healthy and has disk space",
        ) from exc
    if _image_digest_label(client, spec.reference) != digest:
        raise ImageError(
            f"building {spec.reference} reported success but the image is not there",
            observed="\n".join(tail),
            hint="build again with --force",
        )
    return BuildOutcome(spec.reference, "built", time.monotonic() - started)


# Two builds at a time: a Keystone image's build mostly waits on PyPI. Measured on this
# project's 2-core host, the images scripts/test needs (5 releases, 3 others, the runner's) took
# 277 s at two at a time, with the releases sharing their apt layers, and 562 s before: one after
# the other, each release building those layers again.
BUILDS_AT_ONCE = 2


def _seed_of(specs: list[ImageSpec]) -> dict[str, str]:
    """Each Dockerfile's directory -> its first image's reference (the seed)."""
    return {spec.directory: spec.reference for spec in reversed(specs)}


def in_build_order(specs: Iterable[ImageSpec]) -> list[ImageSpec]:
    """Each Dockerfile's first image (its seed), then the others in the order given.

    A seed builds the layers its siblings share (the Keystone releases' apt installs come before
    the release's build arguments), so its siblings wait for it instead of building those layers
    again beside it. Seeds first keeps the other workers on images that wait for nothing.
    """
    ordered = list({spec.reference: spec for spec in specs}.values())
    seeds = _seed_of(ordered).values()
    return [s for s in ordered if s.reference in seeds] + [s for s in ordered if s.reference not in seeds]


@dataclass
class _Jobs:
    """What the build workers share: the queue, who waits for whom, and what came of each."""

    build: Callable[[ImageSpec], BuildOutcome]
    ordered: list[ImageSpec]
    pending: queue.SimpleQueue[ImageSpec] = field(default_factory=queue.SimpleQueue)
    # What each build came to, and None as each worker ends.
    finished: queue.SimpleQueue[tuple[str, BuildOutcome | BaseException] | None] = field(
        default_factory=queue.SimpleQueue
    )
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.seed_of = _seed_of(self.ordered)
        self.settled = {spec.reference: threading.Event() for spec in self.ordered}  # built or failed
        for spec in self.ordered:
            self.pending.put(spec)

    def work(self) -> None:
        """Build what is queued until nothing is, or a build failed; then say so."""
        try:
            while not self.stop.is_set():
                try:
                    spec = self.pending.get_nowait()
                except queue.Empty:
                    return
                seed = self.seed_of[spec.directory]
                if seed != spec.reference:
                    self.settled[seed].wait()  # seeds are queued first: it is building or done
                if self.stop.is_set():
                    return
                try:
                    self.finished.put((spec.reference, self.build(spec)))
                except BaseException as exc:
                    self.stop.set()
                    self.finished.put((spec.reference, exc))
                finally:
                    self.settled[spec.reference].set()
        finally:
            self.finished.put(None)


def build_images(
    client: docker.DockerClient,
    specs: Iterable[ImageSpec],
    images_dir: Path | None = None,
    *,
    force: bool = False,
    at_once: int = BUILDS_AT_ONCE,
    on_outcome: Callable[[BuildOutcome], None] | None = None,
) -> list[BuildOutcome]:
    """Build every image, up to ``at_once`` at a time; the base image must already exist.

    Each outcome is reported as its build ends; the list comes back in the order of ``specs``.
    After a failure no build starts: the ones running end and are reported, then the first
    failure is raised (any other is logged). The workers are daemon threads, so Ctrl-C ends the
    command at once, and the engine stops a build whose connection closed.
    """
    directory = images_dir or default_images_dir()
    given = list(specs)

    def build(spec: ImageSpec) -> BuildOutcome:
        log.info("image %s: checking", spec.reference)
        return build_image(client, spec, directory, force=force)

    jobs = _Jobs(build, in_build_order(given))
    workers = [
        threading.Thread(target=jobs.work, name=f"image-build-{n}", daemon=True)
        for n in range(max(1, at_once))
    ]
    outcomes: dict[str, BuildOutcome] = {}
    failures: list[BaseException] = []
    try:
        for worker in workers:
            worker.start()
        running = len(workers)
        while running:
            item = jobs.finished.get()
            if item is None:
                running -= 1
            elif isinstance(item[1], BaseException):
                if failures:
                    log.error("image %s: %s", item[0], item[1])
                failures.append(item[1])
            else:
                outcomes[item[0]] = item[1]
                if on_outcome is not None:
                    on_outcome(item[1])
    finally:
        jobs.stop.set()  # on Ctrl-C too: nothing more starts while the command exits
    if failures:
        raise failures[0]
    return [outcomes[spec.reference] for spec in given]

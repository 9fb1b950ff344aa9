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
import tarfile
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
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


# Two builds at a time: a Keystone image's build mostly waits on PyPI, so two of them at once
# took 79 s where one after the other took 219 s (24.1.0 and 27.1.0 on this project's 2-core host).
BUILDS_AT_ONCE = 2


def _layer_seeds(specs: list[ImageSpec]) -> dict[str, str]:
    """Each Dockerfile's first image, by directory: it builds the layers its siblings share (the
    apt installs before the release's build arguments), so they wait for it instead of building
    those layers again beside it."""
    seeds: dict[str, str] = {}
    for spec in specs:
        seeds.setdefault(spec.directory, spec.reference)
    return seeds


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

    The outcomes come back in the order of ``specs``. The first failure is raised once the
    builds already started have ended; the builds not yet started are not started.
    """
    directory = images_dir or default_images_dir()
    by_reference = {spec.reference: spec for spec in specs}
    seeds = _layer_seeds(list(by_reference.values()))
    # Seeds first: a worker waiting for a seed then always waits for one already building.
    queue = list(seeds.values()) + [ref for ref in by_reference if ref not in seeds.values()]
    futures: dict[str, Future[BuildOutcome]] = {}

    def build(reference: str) -> BuildOutcome:
        spec = by_reference[reference]
        seed = seeds[spec.directory]
        if seed != reference:
            futures[seed].result()  # its failure is this image's too: the same Dockerfile
        log.info("image %s: checking", reference)
        return build_image(client, spec, directory, force=force)

    with ThreadPoolExecutor(max_workers=max(1, at_once), thread_name_prefix="image-build") as pool:
        for reference in queue:
            futures[reference] = pool.submit(build, reference)
        try:
            for done in as_completed(futures.values()):
                outcome = done.result()
                if on_outcome is not None:
                    on_outcome(outcome)
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
    return [futures[reference].result() for reference in by_reference]

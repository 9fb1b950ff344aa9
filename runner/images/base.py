"""The base image every project image builds FROM: pulled where a registry answers,
made with debootstrap where none does.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound

from runner.errors import ImageError
from runner.host import apt_install
from runner.images.catalog import BASE_IMAGE

log = logging.getLogger(__name__)

DEBIAN_MIRROR = "http://deb.debian.org/debian"


def ensure_base_image(client: docker.DockerClient) -> str:
    """Make sure BASE_IMAGE exists locally; say how it came to be there."""
    try:
        client.images.get(BASE_IMAGE)
        return "present"
    except ImageNotFound:
        pass
    repository, tag = BASE_IMAGE.split(":")
    try:
        client.images.pull(repository, tag=tag)
        return "pulled"
    except APIError as exc:
        log.info("cannot pull %s (%s); creating it with debootstrap", BASE_IMAGE, exc.explanation)
    _debootstrap_import(client)
    return "debootstrapped"


def _debootstrap_import(client: docker.DockerClient) -> None:
    if os.geteuid() != 0:
        raise ImageError(
            f"{BASE_IMAGE} cannot be pulled and cannot be made here",
            observed="the registry refused the pull, and debootstrap needs root",
            hint=f"run as root, or load {BASE_IMAGE} into the engine by hand (docker load)",
        )
    if shutil.which("debootstrap") is None:
        apt_install("debootstrap", ImageError, hint="install debootstrap by hand")
    with tempfile.TemporaryDirectory(prefix="ku-rootfs-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ImageError(
                "debootstrap of Debian bookworm failed",
                observed=(result.stdout + result.stderr)[-1500:],
                hint=f"check that {DEBIAN_MIRROR} is reachable",
            )
        # Importing the tar stream keeps the root file system's owners and modes.
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            repository, tag = BASE_IMAGE.split(":")
            client.api.import_image_from_stream(tar.stdout, repository=repository, tag=tag)
        finally:
            tar.stdout.close()
            tar.wait()
    client.images.get(BASE_IMAGE)

"""The built Keystone images: the release they say they carry, their user, and no build leftovers."""

from __future__ import annotations

import docker
import pytest

from runner.images.catalog import DEFAULT_KEYSTONE_VERSIONS, REPOSITORY
from runner.model import KEYSTONE_VERSION_LABEL
from tests.integration.throwaway import run_once

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("version", DEFAULT_KEYSTONE_VERSIONS)
def test_keystone_image_carries_its_release_and_no_ca_bundle(
    docker_client: docker.DockerClient, version: str
) -> None:
    reference = f"{REPOSITORY}/keystone:{version}"
    image = docker_client.images.get(reference)
    assert image.labels[KEYSTONE_VERSION_LABEL] == version
    config = image.attrs["Config"]
    assert config["User"] == "keystone"
    assert not any(variable.startswith("PIP_CERT") for variable in config["Env"])

    script = 'keystone-manage --version; id -un; echo "$HOME"; test ! -e /build && echo no-build-dir'
    finished = run_once(reference, ["sh", "-c", script])
    assert finished.exit_code == 0, finished.output
    assert finished.output.split() == [version, "keystone", "/var/lib/keystone", "no-build-dir"]

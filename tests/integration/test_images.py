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


# config.json as Kolla documents it, exercised inside the image by its own kolla_set_configs.
KOLLA_SET_CONFIGS_SCRIPT = r"""
set -e
cd /var/lib/kolla/config_files 2>/dev/null || { mkdir -p /var/lib/kolla/config_files; cd /var/lib/kolla/config_files; }
mkdir -p conf.d /etc/keystone/domains /var/log/kolla/keystone
echo one > a.conf; echo two > b.conf; echo d1 > conf.d/x.conf
echo kept > /etc/keystone/domains/existing.conf; touch /var/log/kolla/keystone/k.log
cat > config.json <<EOF
{"command": "gunicorn --check-config",
 "config_files": [
  {"source": "/var/lib/kolla/config_files/a.conf", "dest": "/etc/keystone/keystone.conf",
   "owner": "keystone", "perm": "0600"},
  {"source": "/var/lib/kolla/config_files/*.conf", "dest": "/etc/keystone/many/",
   "owner": "keystone:keystone", "perm": "0640"},
  {"source": "/var/lib/kolla/config_files/conf.d", "dest": "/etc/keystone/domains", "merge": true},
  {"source": "/var/lib/kolla/config_files/absent.conf", "dest": "/etc/keystone/absent.conf", "optional": true}],
 "permissions": [{"path": "/var/log/kolla/keystone", "owner": "keystone:keystone", "recurse": true}]}
EOF
KOLLA_CONFIG_STRATEGY=COPY_ONCE kolla_set_configs 2>/dev/null
stat -c '%U:%a' /etc/keystone/keystone.conf
ls /etc/keystone/many | tr '\n' ,; echo
stat -c '%U:%G:%a' /etc/keystone/many/b.conf
ls /etc/keystone/domains | tr '\n' ,; echo
stat -c '%U' /var/log/kolla/keystone/k.log
cat /run_command
test ! -e /etc/keystone/absent.conf && echo optional-skipped
echo changed > a.conf
KOLLA_CONFIG_STRATEGY=COPY_ONCE kolla_set_configs 2>/dev/null; cat /etc/keystone/keystone.conf
KOLLA_CONFIG_STRATEGY=COPY_ALWAYS kolla_set_configs 2>/dev/null; cat /etc/keystone/keystone.conf
echo '{"command": "x", "config_files": [{"source": "/nowhere", "dest": "/x"}]}' > config.json
KOLLA_CONFIG_STRATEGY=COPY_ALWAYS kolla_set_configs 2>/dev/null || echo required-missing-refused
kolla_set_configs 2>/dev/null || echo no-strategy-refused
"""


def test_the_keystone_image_copies_configuration_the_kolla_way() -> None:
    finished = run_once(f"{REPOSITORY}/keystone:29.1.0", ["sh", "-c", KOLLA_SET_CONFIGS_SCRIPT], user="root")
    assert finished.exit_code == 0, finished.output
    assert finished.output.split("\n")[:-1] == [
        "keystone:600",
        "a.conf,b.conf,",
        "keystone:keystone:640",
        "existing.conf,x.conf,",
        "keystone",
        "gunicorn --check-config",
        "optional-skipped",
        "one",  # COPY_ONCE: the second start copies nothing
        "changed",  # COPY_ALWAYS: every start copies
        "required-missing-refused",
        "no-strategy-refused",
    ]

"""Deployments the project did not build: images without a release label, new configuration per release."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from runner.errors import ExitCode
from runner.images.catalog import REPOSITORY
from runner.lab.cluster import LabEndpoints
from runner.model import KEYSTONE_VERSION_LABEL
from tests.integration.conftest import ClusterFactory
from tests.integration.harness import SESSION_ID
from tests.integration.upgrade_helpers import journal, keystone_upgrade, traffic_around, write_inventory

pytestmark = pytest.mark.integration

# A plain Dockerfile: the filesystem of a Keystone image, none of its labels or health check.
PLAIN_DOCKERFILE = """\
FROM scratch
COPY --from={source} / /
ENV PATH=/opt/keystone/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONDONTWRITEBYTECODE=1 KEYSTONE_BIND=127.0.0.1:5000 KEYSTONE_WORKERS=2
USER keystone
WORKDIR /var/lib/keystone
CMD ["gunicorn"]
"""
# A setting 29.1.0's oslo.cache has and 28.1.0's does not; its default is 60.
NEW_SETTING = ("cache", "hashclient_dead_timeout", "61.0")
# What a node's Keystone reads of that setting from its keystone.conf ("absent": its release lacks it).
READ_SETTING = """
from oslo_cache import core
from oslo_config import cfg
conf = cfg.ConfigOpts()
core.configure(conf)
conf([], project="keystone", default_config_files=["/etc/keystone/keystone.conf"])
try:
    print(getattr(conf, "{0}").{1})
except cfg.NoSuchOptError:
    print("absent")
"""


@pytest.fixture
def plain_images(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    """28.1.0 and 29.1.0 built from a plain Dockerfile: no release label; removed afterwards."""
    built = {}
    try:
        for version in ("28.1.0", "29.1.0"):
            reference = f"ku-test-{SESSION_ID}/keystone-plain:{version}"
            context = io.BytesIO()
            with tarfile.open(fileobj=context, mode="w") as tar:
                data = PLAIN_DOCKERFILE.format(source=f"{REPOSITORY}/keystone:{version}").encode()
                info = tarfile.TarInfo("Dockerfile")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            context.seek(0)
            image, _ = docker_client.images.build(
                fileobj=context, custom_context=True, tag=reference, rm=True
            )
            assert KEYSTONE_VERSION_LABEL not in (image.labels or {})
            built[version] = reference
        yield built
    finally:
        for reference in built.values():
            docker_client.images.remove(reference, force=True)


def _setting_in(client: docker.DockerClient, container: str) -> str:
    section, name, _ = NEW_SETTING
    done = client.containers.get(container).exec_run(["python3", "-c", READ_SETTING.format(section, name)])
    assert done.exit_code == 0, done.output.decode()
    return done.output.decode().strip().splitlines()[-1]


def _new_keystone_conf(cluster: LabEndpoints) -> Path:
    """The lab's keystone.conf with the new setting: given only to the target."""
    section, name, value = NEW_SETTING
    text = (cluster.config_dir / "keystone.conf").read_text()
    assert f"[{section}]" in text
    path = cluster.config_dir / "keystone-29.conf"
    path.write_text(text.replace(f"[{section}]", f"[{section}]\n{name} = {value}", 1))
    return path


def test_unlabelled_images_and_a_new_keystone_conf_for_the_target_only(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient, plain_images: dict[str, str]
) -> None:
    cluster = cluster_factory("28.1.0", keystone_image=plain_images["28.1.0"])
    old_conf = cluster.config_dir / "keystone.conf"
    old_text = old_conf.read_text()
    new_conf = _new_keystone_conf(cluster)
    mount = f"{cluster.config_dir}/keystone.conf:/etc/keystone/keystone.conf:ro"
    inventory = write_inventory(
        cluster,
        "29.1.0",
        **{
            f"{REPOSITORY}/keystone:29.1.0": plain_images["29.1.0"],
            mount: f"{new_conf}:/etc/keystone/keystone.conf:ro",
        },
    )
    # And memcached flushed once every node runs the target (stale cache after a schema change).
    memcached = next(
        line.split("=", 1)[1].strip()
        for line in (cluster.config_dir / "keystone.conf").read_text().splitlines()
        if line.startswith("memcache_servers")
    )
    with inventory.open("a") as out:
        out.write(f'\n[cache]\nmemcached = ["{memcached}"]\nflush_after_upgrade = true\n')
    assert _setting_in(docker_client, cluster.node_containers["keystone-1"]) == "absent"

    # One node's own configuration ([nodes.target], the last node's) is checked with the target image too.
    broken = cluster.config_dir / "keystone-broken.conf"
    broken.write_text(
        re.sub(
            r"(?m)^connection = .*$", "connection = nosuchdialect://nowhere/keystone", new_conf.read_text()
        )
    )
    refusing = inventory.with_name("inventory-broken-node.toml")
    refusing.write_text(
        inventory.read_text() + f'\n[nodes.target]\nmounts = ["{broken}:/etc/keystone/keystone.conf:ro"]\n'
    )
    refused = keystone_upgrade("plan", "-i", refusing)
    assert refused.returncode == ExitCode.PREFLIGHT, refused.stdout + refused.stderr
    assert "[target-config] node keystone-3: the target image does not work" in refused.stderr
    assert "nosuchdialect" in refused.stderr

    planned = keystone_upgrade("plan", "-i", inventory, "--json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    plan = json.loads(planned.stdout)
    assert (plan["source_versions"], plan["target_version"]) == (["28.1.0"], "29.1.0")
    assert plan["findings"] == []

    with traffic_around(cluster):
        result = keystone_upgrade("upgrade", "-i", inventory, "--yes", "--keep-old")
    assert result.returncode == 0, result.stdout + result.stderr

    run = journal(cluster)
    assert run["status"] == "succeeded"
    for node, container in cluster.node_containers.items():
        # The new node runs the target image with the new keystone.conf, and reads the new setting.
        new = docker_client.containers.get(container)
        assert new.attrs["Config"]["Image"] == plain_images["29.1.0"], node
        assert _setting_in(docker_client, container) == "61.0", node
        # The old node, kept for rollback, still has its own configuration.
        old = docker_client.containers.get(f"{container}-ku-old-{run['run_id']}")
        assert f"{old_conf}:/etc/keystone/keystone.conf:ro" in old.attrs["HostConfig"]["Binds"], node
        step = next(s for s in run["steps"] if s["id"] == f"node:{node}")
        assert next(e for e in step["events"] if e["event"] == "version")  # the release gate held
    assert old_conf.read_text() == old_text
    flushed = next(s for s in run["steps"] if s["id"] == "flush-cache")
    assert flushed["status"] == "done"
    assert [e["server"] for e in flushed["events"] if e["event"] == "cache flushed"] == [memcached]

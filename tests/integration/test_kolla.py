"""A Kolla-style cluster: config.json copied at start, fernet keys and logs in named volumes, the
throwaway containers the Kolla image itself with KOLLA_UPGRADE / KOLLA_FINISH_UPGRADE; and
`inventory from-kolla` on the kolla-ansible inventory that describes it."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from runner.images.catalog import REPOSITORY
from runner.lab.cluster import LAB_LABEL, PROJECT_LABEL, LabEndpoints
from runner.waits import WaitPolicy, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.harness import SESSION_ID
from tests.integration.upgrade_helpers import (
    journal,
    keystone_upgrade,
    runtime,
    traffic_around,
    write_inventory,
)

pytestmark = pytest.mark.integration

KOLLA_CONFIG_DIR = "/var/lib/kolla/config_files"
NODE_UP = WaitPolicy("kolla-style node serving and UP in HAProxy", timeout_s=120, interval_s=0.5)
# As kolla-ansible renders it for keystone: the files kolla_set_configs copies into place.
CONFIG_JSON = {
    "command": "gunicorn",
    "config_files": [
        {
            "source": f"{KOLLA_CONFIG_DIR}/keystone.conf",
            "dest": "/etc/keystone/keystone.conf",
            "owner": "keystone",
            "perm": "0600",
        },
        {
            "source": f"{KOLLA_CONFIG_DIR}/credential-keys",
            "dest": "/etc/keystone/credential-keys",
            "owner": "keystone:keystone",
            "perm": "0700",
        },
        {"source": f"{KOLLA_CONFIG_DIR}/policy.yaml", "dest": "/etc/keystone/", "optional": True},
    ],
    "permissions": [{"path": "/var/log/kolla/keystone", "owner": "keystone:keystone", "recurse": True}],
}


@pytest.fixture
def kolla_volumes(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    """The named volumes Kolla uses, for this test only (asked for before the cluster, removed after it)."""
    suffix = f"{SESSION_ID}-{uuid.uuid4().hex[:4]}"
    names = {"fernet": f"ku-test-{suffix}-keystone_fernet_tokens", "logs": f"ku-test-{suffix}-kolla_logs"}
    for name in names.values():
        docker_client.volumes.create(name)
    yield names
    for name in names.values():
        docker_client.volumes.get(name).remove(force=True)


def _kolla_config(cluster: LabEndpoints, root: Path) -> Path:
    """/etc/kolla/keystone as kolla-ansible renders it: config.json, keystone.conf logging to
    /var/log/kolla, and the credential keys config.json copies."""
    root.mkdir()
    conf = (cluster.config_dir / "keystone.conf").read_text()
    conf = conf.replace("[DEFAULT]", "[DEFAULT]\nlog_file = /var/log/kolla/keystone/keystone.log", 1)
    (root / "keystone.conf").write_text(conf)
    (root / "config.json").write_text(json.dumps(CONFIG_JSON))
    shutil.copytree(cluster.state_dir / "credential-keys", root / "credential-keys")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # read by root in the container, as Kolla's are
    return root


def _fill_fernet_volume(client: docker.DockerClient, cluster: LabEndpoints, volume: str) -> None:
    client.containers.run(
        f"{REPOSITORY}/keystone:28.1.0",
        ["sh", "-ec", "cp -a /from/. /to/ && chown -R keystone:keystone /to && chmod 0700 /to"],
        user="root",
        volumes={
            str(cluster.state_dir / "fernet-keys"): {"bind": "/from", "mode": "ro"},
            volume: {"bind": "/to"},
        },
        network_mode="none",
        remove=True,
        labels={LAB_LABEL: "1", PROJECT_LABEL: cluster.project},
    )


def _make_kolla_style(
    client: docker.DockerClient, cluster: LabEndpoints, volumes: dict[str, str], config: Path
) -> None:
    """Replace each lab node by the same node run the Kolla way, one at a time, each back UP before the next."""
    stats = runtime(cluster)
    for server, name in cluster.node_containers.items():
        old = client.containers.get(name)
        env = [e for e in old.attrs["Config"]["Env"] if e.startswith("KEYSTONE_BIND=")]
        old.remove(force=True)
        client.containers.run(
            f"{REPOSITORY}/keystone:28.1.0",
            ["kolla_start"],
            name=name,
            user="root",
            detach=True,
            network_mode="host",
            environment=[*env, "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "KOLLA_SERVICE_NAME=keystone"],
            volumes={
                str(config): {"bind": KOLLA_CONFIG_DIR, "mode": "ro"},
                volumes["fernet"]: {"bind": "/etc/keystone/fernet-keys", "mode": "rw"},
                volumes["logs"]: {"bind": "/var/log/kolla", "mode": "rw"},
            },
            labels={LAB_LABEL: "1", PROJECT_LABEL: cluster.project},
            stop_signal="SIGTERM",
        )
        # Its own answer first: HAProxy still reports the removed container UP until its checks
        # fail, and a plan begun then found every node refusing connections (still booting).
        wait_until(
            NODE_UP,
            lambda server=server: requests.get(f"{cluster.node_urls[server]}/v3", timeout=5).status_code,
            lambda status: status == 200,
        )
        wait_until(
            NODE_UP,
            lambda server=server: [s.is_up for s in stats.show_stat() if s.server == server],
            lambda seen: len(seen) == len(cluster.backends) and all(seen),
        )


def _kolla_ansible_files(cluster: LabEndpoints, root: Path) -> tuple[Path, Path]:
    """The kolla-ansible inventory and globals.yml of this cluster (per-host overrides for one machine)."""
    hosts = "\n".join(
        f"{server} ansible_connection=local api_interface_address=127.0.0.1 "
        f"keystone_container_name={name} keystone_public_listen_port={cluster.node_urls[server].rsplit(':', 1)[1]}"
        for server, name in cluster.node_containers.items()
    )
    inventory = root / "multinode"
    inventory.write_text(
        f"[control]\n{hosts}\n\n[network]\nlocalhost ansible_connection=local\n\n"
        "[keystone:children]\ncontrol\n\n[loadbalancer:children]\nnetwork\n"
    )
    globals_yml = root / "globals.yml"
    globals_yml.write_text(
        "kolla_internal_vip_address: 127.0.0.1\nkolla_external_vip_address: 127.0.0.2\n"
        f"database_address: 127.0.0.1\ndatabase_port: {cluster.db_port}\n"
        "haproxy_socket_level_admin: true\n"
    )
    return inventory, globals_yml


def test_a_kolla_style_cluster_is_upgraded_the_kolla_way(
    kolla_volumes: dict[str, str],
    cluster_factory: ClusterFactory,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    cluster = cluster_factory("28.1.0")
    _fill_fernet_volume(docker_client, cluster, kolla_volumes["fernet"])
    config = _kolla_config(cluster, cluster.state_dir / "kolla-keystone")
    _make_kolla_style(docker_client, cluster, kolla_volumes, config)

    # What kolla-ansible's inventory says, turned into ours, plans cleanly against the cluster.
    kolla_inventory, globals_yml = _kolla_ansible_files(cluster, tmp_path)
    generated = cluster.state_dir / "from-kolla.toml"
    written = keystone_upgrade(
        "inventory", "from-kolla", "--inventory", kolla_inventory, "--globals", globals_yml,
        "--target-image", f"{REPOSITORY}/keystone:29.1.0",
        "--db-password-file", cluster.config_dir / "secrets" / "db-password",
        "--haproxy-socket", cluster.admin_socket, "--state-dir", cluster.state_dir / "from-kolla",
        "--output", generated,
    )  # fmt: skip
    assert written.returncode == 0, written.stdout + written.stderr
    planned = keystone_upgrade("plan", "-i", generated, "--json")
    assert planned.returncode == 0, planned.stdout + planned.stderr + generated.read_text()
    plan = json.loads(planned.stdout)
    assert plan["findings"] == []
    assert (plan["source_versions"], plan["target_version"]) == (["28.1.0"], "29.1.0")
    steps = {s["id"]: s for s in plan["steps"]}
    assert steps["expand"]["params"]["migrations"] == "kolla"
    assert "KOLLA_UPGRADE" in steps["migrate"]["skip_reason"]

    # The upgrade itself, under traffic, with the lab's inventory minus its mounts (the nodes' own apply).
    mounts_start = "mounts = [\n"
    lab_text = write_inventory(cluster, "29.1.0").read_text()
    block = lab_text[lab_text.index(mounts_start) : lab_text.index("]\n", lab_text.index(mounts_start)) + 2]
    inventory = write_inventory(cluster, "29.1.0", **{block: ""})
    with traffic_around(cluster):
        result = keystone_upgrade("upgrade", "-i", inventory, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr

    run = journal(cluster)
    assert run["status"] == "succeeded"
    for node, name in cluster.node_containers.items():
        container = docker_client.containers.get(name)
        assert container.attrs["Config"]["Image"] == f"{REPOSITORY}/keystone:29.1.0", node
        # Run the Kolla way still: its command, its user, its config.json and both named volumes.
        assert (container.attrs["Config"]["Cmd"], container.attrs["Config"]["User"]) == (
            ["kolla_start"],
            "root",
        )
        volumes = {m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"}
        assert volumes == set(kolla_volumes.values()), node
        # The runner's checks ran as root but logged to their own output: every file in the
        # kolla_logs volume is still Keystone's to append to.
        owners = container.exec_run(["sh", "-c", "stat -c %U /var/log/kolla/keystone/*"])
        assert set(owners.output.decode().split()) == {"keystone"}, owners.output.decode()
        done = container.exec_run(["keystone-manage", "--version"])
        assert done.output.decode().strip() == "29.1.0", node
    # The throwaways were the Kolla image's own start: KOLLA_UPGRADE ran expand then migrate,
    # KOLLA_FINISH_UPGRADE contract; keystone-manage logged into the kolla_logs volume.
    logs = cluster.state_dir / "upgrade" / "runs" / run["run_id"]
    expand_log = (logs / "expand.log").read_text()
    assert "db_sync --expand" in expand_log
    assert "db_sync --migrate" in expand_log
    assert "db_sync --contract" in (logs / "contract.log").read_text()
    steps_run = {s["id"]: s for s in run["steps"]}
    assert steps_run["migrate"]["status"] == "skipped"

"""plan changes nothing; preflight refuses with its exit code and a clear message, and changes nothing."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from runner.config import load_inventory
from runner.drivers.containers import PURPOSE_LABEL
from runner.drivers.docker_blueprint import ContainerBlueprint, derive_blueprint
from runner.drivers.docker_engine import DockerEngine
from runner.drivers.warm_keystone import ManageSetup
from runner.errors import ExitCode, KeysError
from runner.facts.gather import gather_facts
from runner.facts.target import inventory_setup, manage_setup
from runner.images.catalog import REPOSITORY
from runner.journal import Event, Journal
from runner.lab.cluster import LabEndpoints
from runner.steps import RunContext
from runner.steps.keys import THROWAWAY, KeysAgree
from runner.upgrade import LOCK_NAME, _warm_beside_preflight, connect
from runner.waits import HAPROXY_SERVERS_UP, WaitPolicy, wait_until
from tests.integration.harness import lab_cluster
from tests.integration.upgrade_helpers import database, keystone_upgrade, runtime, snapshot, write_inventory

pytestmark = pytest.mark.integration

NODE_ANSWERS = WaitPolicy("a recreated node answers /v3 itself", timeout_s=120, interval_s=0.25)


@pytest.fixture(scope="module")
def cluster(docker_client: docker.DockerClient) -> Iterator[LabEndpoints]:
    """One 28.1.0 cluster for every refusal: none of them may change it."""
    with lab_cluster(docker_client, "28.1.0") as endpoints:
        yield endpoints


def _refused(
    client: docker.DockerClient, cluster: LabEndpoints, inventory: Path, code: ExitCode, expected: str
) -> str:
    before = snapshot(client, cluster)
    result = keystone_upgrade("upgrade", "-i", inventory, "--yes")
    assert result.returncode == code, result.stdout + result.stderr
    assert expected in result.stderr, result.stderr
    assert "observed:" in result.stderr
    assert "what to do:" in result.stderr
    assert snapshot(client, cluster) == before
    assert not (cluster.state_dir / "upgrade" / "journal.json").exists()
    # The dump begun beside preflight (it only reads) is removed with the directories it made.
    backups = cluster.state_dir / "upgrade" / "backups"
    assert not backups.exists() or not any(backups.iterdir()), list(backups.rglob("*"))
    return result.stderr


def test_plan_changes_nothing(docker_client: docker.DockerClient, cluster: LabEndpoints) -> None:
    inventory = write_inventory(cluster, "29.1.0")
    before = snapshot(docker_client, cluster)
    shown = keystone_upgrade("plan", "-i", inventory)
    as_json = keystone_upgrade("plan", "-i", inventory, "--json")
    assert snapshot(docker_client, cluster) == before
    assert shown.returncode == 0, shown.stderr
    assert "node:keystone-1" in shown.stdout
    assert as_json.returncode == 0, as_json.stderr
    plan = json.loads(as_json.stdout)
    assert plan["source_versions"] == ["28.1.0"]
    assert plan["target_version"] == "29.1.0"
    assert plan["check_exit_code"] == 2
    assert isinstance(plan["doctor_findings"], str)  # doctor ran in the target image; what it said is shown
    assert "keystone-manage doctor (target image):" in shown.stdout
    assert [s["id"] for s in plan["steps"]] == [
        "backup", "expand", "migrate", "keys-before", "node:keystone-1", "node:keystone-2", "node:keystone-3",
        "keys-after", "contract", "flush-cache", "cleanup",
    ]  # fmt: skip
    # The lab's keystone.conf caches in memcached and its inventory asks for no flush: said, not refused.
    assert plan["steps"][-2]["skip_reason"].startswith("not asked for")
    assert any("flush_after_upgrade = true" in notice for notice in plan["notices"]), plan["notices"]
    assert not (cluster.state_dir / "upgrade" / "journal.json").exists()


def test_a_server_already_in_maint_is_refused(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    admin = runtime(cluster)
    backend = cluster.backends[0]
    admin.set_server_state(backend, "keystone-2", "maint")
    try:
        stderr = _refused(
            docker_client, cluster, write_inventory(cluster, "29.1.0"), ExitCode.PREFLIGHT, "not UP and READY"
        )
        assert f"{backend}/keystone-2" in stderr
        assert "admin state MAINT" in stderr
    finally:
        admin.set_server_state(backend, "keystone-2", "ready")
        wait_until(HAPROXY_SERVERS_UP, admin.show_stat, lambda stats: all(s.is_up for s in stats))


def test_a_socket_at_operator_level_is_refused(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    inventory = write_inventory(
        cluster, "29.1.0", **{str(cluster.admin_socket): str(cluster.operator_socket)}
    )
    stderr = _refused(docker_client, cluster, inventory, ExitCode.PREFLIGHT, "is not at admin level")
    assert "show cli level: operator" in stderr


def test_a_missing_target_image_is_refused(docker_client: docker.DockerClient, cluster: LabEndpoints) -> None:
    inventory = write_inventory(cluster, "29.9.9")
    stderr = _refused(docker_client, cluster, inventory, ExitCode.PREFLIGHT, "is not on the engine")
    assert f"{REPOSITORY}/keystone:29.9.9" in stderr


def test_a_wrong_database_password_is_refused(
    docker_client: docker.DockerClient, cluster: LabEndpoints, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password")
    password_file = f"{cluster.config_dir}/secrets/db-password"
    inventory = write_inventory(cluster, "29.1.0", **{password_file: str(wrong)})
    stderr = _refused(
        docker_client, cluster, inventory, ExitCode.PREFLIGHT, "does not answer with the configured user"
    )
    assert "Access denied" in stderr
    assert "not-the-password" not in stderr


def test_a_second_upgrade_is_refused_while_the_lock_is_held(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    with database(cluster).advisory_lock(LOCK_NAME) as acquired:
        assert acquired
        _refused(
            docker_client,
            cluster,
            write_inventory(cluster, "29.1.0"),
            ExitCode.LOCKED,
            "holds the database lock",
        )


def test_an_invalid_inventory_lists_every_problem(cluster: LabEndpoints, tmp_path: Path) -> None:
    inventory = tmp_path / "bad.toml"
    inventory.write_text('[database]\nhost = "127.0.0.1"\nport = "x"\npassword = "secret"\n')
    result = keystone_upgrade("plan", "-i", inventory)
    assert result.returncode == ExitCode.CONFIG
    for problem in (
        "'port' must be a whole number from 1 to 65535; found string 'x'",
        "'password' is not accepted",
        "[target]",
        "[[nodes]]",
        "[[haproxy]]",
    ):
        assert problem in result.stderr
    assert "secret" not in result.stderr


def test_a_node_whose_docker_engine_does_not_answer_is_refused(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    container = f'container = "{cluster.node_containers["keystone-2"]}"'
    inventory = write_inventory(
        cluster, "29.1.0", **{container: f'{container}\ndocker = "tcp://127.0.0.1:1"'}
    )
    stderr = _refused(
        docker_client, cluster, inventory, ExitCode.PREFLIGHT, "its Docker engine does not answer"
    )
    assert "node keystone-2" in stderr
    assert "tcp://127.0.0.1:1" in stderr


def test_an_empty_key_repository_and_keys_other_than_the_nodes_are_refused(
    docker_client: docker.DockerClient, cluster: LabEndpoints, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-fernet-keys"
    empty.mkdir()
    fernet = f"{cluster.state_dir}/fernet-keys:/etc/keystone/fernet-keys"
    inventory = write_inventory(cluster, "29.1.0", **{fernet: f"{empty}:/etc/keystone/fernet-keys"})
    stderr = _refused(
        docker_client,
        cluster,
        inventory,
        ExitCode.PREFLIGHT,
        "the key repository /etc/keystone/fernet-keys is empty",
    )
    assert "the throwaway containers would see other keys than the nodes" in stderr


def _blueprint_of(engine: DockerEngine, name: str, image: str | None = None) -> ContainerBlueprint:
    """The container ``name`` as it is, on ``image`` (its own image when None)."""
    old = engine.container(name)
    assert old is not None
    old_image = engine.image(old.image_id)
    assert old_image is not None
    return derive_blueprint(old.inspect, old_image.inspect, image or old.image_reference)


def _recreate(engine: DockerEngine, name: str, blueprint: ContainerBlueprint, cluster: LabEndpoints) -> None:
    engine.remove(name)
    engine.create_and_start(blueprint)
    # The new container's own answer first: HAProxy still reports the removed one UP until its
    # checks fail, so waiting for UP alone could pass at once and the checks trip DOWN later,
    # in the middle of the refusal the test then snapshots around.
    server = next(s for s, container in cluster.node_containers.items() if container == name)
    wait_until(
        NODE_ANSWERS,
        lambda: requests.get(f"{cluster.node_urls[server]}/v3", timeout=5).status_code,
        lambda status: status == 200,
    )
    wait_until(
        HAPROXY_SERVERS_UP,
        runtime(cluster).show_stat,
        lambda stats: len(stats) == 6 and all(s.is_up for s in stats),
    )


def test_keys_that_differ_on_one_node_are_refused(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    """keystone-3 gets its own copy of the fernet keys with one more (a new primary) in it."""
    engine = DockerEngine()
    name = cluster.node_containers["keystone-3"]
    original = _blueprint_of(engine, name)
    fernet = cluster.state_dir / "fernet-keys"
    other = cluster.state_dir / "fernet-keys-keystone-3"
    shutil.copytree(fernet, other)
    (other / "9").write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
    owner = fernet.stat()
    for path in (other, *other.iterdir()):
        os.chown(path, owner.st_uid, owner.st_gid)
    (other / "9").chmod(0o600)
    host_config = dict(original.host_config)
    host_config["Binds"] = [b.replace(f"{fernet}:", f"{other}:") for b in host_config.get("Binds") or []]
    host_config["Mounts"] = [
        {**m, "Source": str(other)} if m.get("Source") == str(fernet) else m
        for m in host_config.get("Mounts") or []
    ]
    assert host_config["Binds"] != original.host_config.get("Binds") or host_config["Mounts"] != (
        original.host_config.get("Mounts")
    )
    try:
        _recreate(engine, name, dataclasses.replace(original, host_config=host_config), cluster)
        stderr = _refused(
            docker_client,
            cluster,
            write_inventory(cluster, "29.1.0"),
            ExitCode.PREFLIGHT,
            "the key repositories do not hold the same keys everywhere",
        )
        assert "/etc/keystone/fernet-keys:" in stderr
        assert "on node keystone-3" in stderr
        assert (
            "/etc/keystone/credential-keys" not in stderr.split("keys everywhere")[1].split("what to do")[0]
        )
    finally:
        _recreate(engine, name, original, cluster)
        shutil.rmtree(other)


def test_one_node_on_another_release_is_refused(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    """Last in this module: it leaves keystone-3 on 29.1.0."""
    engine = DockerEngine()
    name = cluster.node_containers["keystone-3"]
    _recreate(engine, name, _blueprint_of(engine, name, f"{REPOSITORY}/keystone:29.1.0"), cluster)
    stderr = _refused(
        docker_client,
        cluster,
        write_inventory(cluster, "29.1.0"),
        ExitCode.PREFLIGHT,
        "do not all run the same release",
    )
    assert "keystone-3=29.1.0" in stderr
    assert "keystone-1=28.1.0" in stderr


def _keys_step(inventory_path: Path, tmp_path: Path) -> tuple[KeysAgree, RunContext, ManageSetup]:
    """keys-before as the plan makes it for ``inventory_path``, the run's real drivers, and the
    setup the run's warm keystone-manage container gets."""
    inventory = load_inventory(inventory_path)
    setup = inventory_setup(inventory)
    step = KeysAgree(
        id="keys-before",
        why="every node and the throwaway container hold the same keys, before the first node",
        nodes=inventory.nodes,
        repositories=inventory.key_repositories,
        image=inventory.target_image,
        mounts=setup.mounts,
        environment=setup.environment,
    )
    journal = Journal.start(
        tmp_path, {"run_id": "keys-test", "steps": [{"id": step.id, "kind": "keys"}]}, str(inventory_path)
    )
    manage = manage_setup(inventory, setup)
    assert manage is not None
    return step, RunContext(connect(inventory), journal, tmp_path / "runs"), manage


@pytest.mark.parametrize("other_keys", [False, True])
def test_the_keys_steps_read_the_throwaways_keys_in_the_warm_container(
    docker_client: docker.DockerClient, cluster: LabEndpoints, tmp_path: Path, other_keys: bool
) -> None:
    """Read-only: the nodes' keys by exec, the throwaway's by an exec in the warm container (no
    container of its own), and keys the warm container sees differently stop the step."""
    replace = {}
    if other_keys:
        copied = tmp_path / "fernet-keys"
        shutil.copytree(cluster.state_dir / "fernet-keys", copied)
        (copied / "0").write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
        fernet = f"{cluster.state_dir}/fernet-keys:/etc/keystone/fernet-keys"
        replace = {fernet: f"{copied}:/etc/keystone/fernet-keys"}
    step, context, manage = _keys_step(write_inventory(cluster, "29.1.0", **replace), tmp_path)
    warm = context.drivers.keystone_manage
    assert warm is not None
    before = {c.id for c in docker_client.containers.list(all=True)}
    warm.begin(manage, {"purpose": "keystone-manage"})
    try:
        if other_keys:
            with pytest.raises(KeysError, match="do not hold the same keys on every node") as raised:
                step.apply(context)
            assert "on the throwaway container" in str(raised.value)
        else:
            step.apply(context)
        (compared,) = context.journal.events_of(step.id, Event.KEYS_COMPARED)
        assert compared["throwaway_read_in"] == "the warm keystone-manage container"
        assert set(compared["digests"]) == {
            "node keystone-1",
            "node keystone-2",
            "node keystone-3",
            THROWAWAY,
        }
        started = {c.id for c in docker_client.containers.list(all=True)} - before
        assert len(started) == 1, "the warm container only: no container of its own for the keys"
    finally:
        warm.close()


def test_an_upgrades_preflight_reads_the_target_in_its_warm_container(
    docker_client: docker.DockerClient, cluster: LabEndpoints
) -> None:
    """Read-only: the target's heads, release and keys are read by a process in the run's warm
    keystone-manage container, beside its `db_sync --check` and `doctor`; preflight creates no
    throwaway of the target for them, and execs in the serving nodes only once that container
    has started."""
    inventory = load_inventory(write_inventory(cluster, "29.1.0"))
    drivers = connect(inventory)
    assert drivers.keystone_manage is not None
    began = time.time()
    try:
        facts = gather_facts(
            inventory, drivers, begin_warm=_warm_beside_preflight(inventory, drivers, "warm-facts-test")
        )
    finally:
        drivers.keystone_manage.close()
    nodes = {node.config.container for node in facts.nodes}
    # The runner's own execs in a node (at the lowest priority), not the image's health checks.
    seen = [
        (
            "runner_exec" if "os.nice(19)" in event["Action"] else event["Action"].split(":")[0],
            event["Actor"]["Attributes"],
        )
        for event in docker_client.events(
            since=int(began),
            until=int(time.time()) + 1,
            filters={"type": "container", "event": ["create", "start", "exec_create"]},
            decode=True,
        )
        if event["timeNano"] / 1e9 >= began
    ]
    created = [attributes.get(PURPOSE_LABEL) for action, attributes in seen if action == "create"]
    assert created == ["keystone-manage"], created
    order = [
        "node" if attributes["name"] in nodes else attributes.get(PURPOSE_LABEL)
        for action, attributes in seen
        if (action, attributes.get(PURPOSE_LABEL)) == ("start", "keystone-manage")
        or (action == "runner_exec" and attributes["name"] in nodes)
    ]
    assert order == ["keystone-manage", "node", "node", "node"], order
    target = facts.target
    assert (target.error, target.release) == (None, "29.1.0")
    assert None not in (target.expand_head, target.contract_head, target.check, target.doctor), target
    digests = {node.config.name: node.key_digests for node in facts.nodes}
    assert set(digests) == {"keystone-1", "keystone-2", "keystone-3"}
    assert all(read == target.key_digests for read in digests.values()), (digests, target.key_digests)
    assert set(target.key_files) == set(inventory.key_repositories)

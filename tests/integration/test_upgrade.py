"""The rolling upgrade against real clusters, under bounded traffic through HAProxy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import docker
import pytest

from runner.drivers.docker_node import BOOT_CPU_SHARES, DOCKER_DEFAULT_CPU_SHARES
from runner.drivers.keystone import Credentials
from runner.images.catalog import REPOSITORY
from runner.lab.cluster import LabEndpoints
from runner.model import KEYSTONE_VERSION_LABEL
from runner.probe import Probe, ProbeSettings, Sample, summarize
from runner.steps.tokens import WARM_UP_ROUNDS, WARM_UP_THREADS
from runner.waits import WaitPolicy, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.throwaway import migration_head_pair, migration_heads, run_once
from tests.integration.upgrade_helpers import database, keystone_upgrade, runtime, write_inventory

pytestmark = pytest.mark.integration

TRAFFIC = ProbeSettings(rate_per_s=30, concurrency=6, max_requests=30000, max_seconds=900)
# Traffic is observed before the upgrade starts and after it ends, not only during.
STEADY_TRAFFIC = WaitPolicy("probe traffic flowing", timeout_s=60, interval_s=0.2)
NODE_EVENTS = [
    "drain",
    "drained",
    "maint",
    "stopped",
    "renamed",
    "started",
    "healthy",
    "version",
    "tokens accepted both ways",
    "warmed up",
    "full cpu weight",
    "ready",
    "up",
]


def _upgrade_under_traffic(
    cluster: LabEndpoints, target: str, *options: str
) -> tuple[Any, list[Sample], dict[str, Any]]:
    inventory = write_inventory(cluster, target)
    credentials = Credentials(cluster.admin_username, cluster.admin_password, cluster.admin_project)
    probe = Probe(cluster.lb_url, credentials, TRAFFIC).start()
    try:
        wait_until(STEADY_TRAFFIC, lambda: len(probe.samples), lambda n: n >= 60)
        result = keystone_upgrade("upgrade", "-i", inventory, "--yes", *options)
        after = len(probe.samples)
        wait_until(STEADY_TRAFFIC, lambda: len(probe.samples), lambda n: n >= after + 60)
    finally:
        samples = probe.stop()
    journal = json.loads((cluster.state_dir / "upgrade" / "journal.json").read_text())
    return result, samples, journal


def _assert_upgraded(
    client: docker.DockerClient, cluster: LabEndpoints, target: str, journal: dict[str, Any]
) -> None:
    target_image = f"{REPOSITORY}/keystone:{target}"
    for node, container_name in cluster.node_containers.items():
        container = client.containers.get(container_name)
        assert container.image.labels[KEYSTONE_VERSION_LABEL] == target, node
        exit_code, output = container.exec_run(["keystone-manage", "--version"])
        assert (exit_code, output.decode().strip()) == (0, target), node

    # Nothing left to migrate: the heads are the target's and its own check says 0.
    assert database(cluster).alembic_heads() == migration_heads(target_image)
    assert run_once(target_image, ["keystone-manage", "db_sync", "--check"], cluster).exit_code == 0

    # Every server READY and UP in both backends, on the admin socket.
    states = runtime(cluster).show_servers_state()
    assert {(s.backend, s.server) for s in states} == {
        (b, n) for b in cluster.backends for n in cluster.node_urls
    }
    assert all(s.ready for s in states), states
    assert all(s.is_up for s in runtime(cluster).show_stat())

    # The backup and its manifest exist and agree.
    dumped = next(e for e in journal["steps"][0]["events"] if e["event"] == "dumped")
    dump = Path(dumped["dump"])
    manifest = json.loads(Path(f"{dump}.manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert manifest["tables"]["user"] >= 1
    # Begun beside preflight (a dump only reads) and adopted by the backup step: it started before
    # the step did, and it is the only dump of the run.
    assert dumped["started_at"] < journal["steps"][0]["started_at"], (dumped, journal["steps"][0])
    assert sorted(p.name for p in dump.parent.iterdir()) == sorted([dump.name, f"{dump.name}.manifest.json"])

    # Each node went through every gate in order, drained and re-enabled in both backends.
    for node in cluster.node_urls:
        step = next(s for s in journal["steps"] if s["id"] == f"node:{node}")
        assert step["status"] == "done"
        assert [e["event"] for e in step["events"]] == NODE_EVENTS
        drained = step["events"][0]["servers"]
        assert sorted(drained) == sorted(f"{b}/{node}" for b in cluster.backends)
        # Booted at a low CPU weight, gated and warmed up by the runner's own requests at it, then
        # given the old container's weight (Docker's default) before going back into rotation.
        # (On cgroup v2 a container without a weight of its own keeps none: nothing to give back.)
        v1 = str(client.info().get("CgroupVersion") or "1") == "1"
        event = {e["event"]: e for e in step["events"]}
        assert event["started"]["cpu_shares"] == (BOOT_CPU_SHARES if v1 else None)
        assert event["full cpu weight"]["cpu_shares"] == (DOCKER_DEFAULT_CPU_SHARES if v1 else None)
        assert (event["warmed up"]["failed_rounds"], event["warmed up"]["failed_logins"]) == (0, 0)
        # A login per warm-up thread (every worker's first), then the validations: all answered.
        assert event["warmed up"]["requests"] == WARM_UP_THREADS * (1 + WARM_UP_ROUNDS)
        container = client.containers.get(cluster.node_containers[node])
        assert container.attrs["HostConfig"]["CpuShares"] == (DOCKER_DEFAULT_CPU_SHARES if v1 else 0)

    # db_sync --migrate is a no-op on every alembic release: skipped, and said why.
    migrate = next(s for s in journal["steps"] if s["id"] == "migrate")
    assert migrate["status"] == "skipped", migrate
    assert "no-op" in migrate["detail"], migrate


def _assert_no_failed_request(samples: list[Sample], cluster: LabEndpoints) -> None:
    summary = summarize(samples)
    reasons = "\n".join(f"{s.operation} via {s.served_by}: {s.error}" for s in summary.failures[:20])
    assert summary.failed == 0, f"{summary.failed} of {summary.requests} requests failed:\n{reasons}"
    assert summary.rate_per_s >= 25, summary
    assert set(summary.served_by) == set(cluster.node_urls), summary.served_by


def test_28_to_29_rolling_upgrade_fails_no_request(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    result, samples, journal = _upgrade_under_traffic(cluster, "29.1.0")
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_no_failed_request(samples, cluster)
    _assert_upgraded(docker_client, cluster, "29.1.0", journal)
    assert journal["status"] == "succeeded"
    assert not [c.name for c in docker_client.containers.list(all=True) if "-ku-old-" in c.name], (
        "old containers remain"
    )


def test_23_to_24_contracts_only_after_the_last_node_is_up(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("23.0.2")
    source_expand, source_contract = migration_head_pair(f"{REPOSITORY}/keystone:23.0.2")
    target_expand, target_contract = migration_head_pair(f"{REPOSITORY}/keystone:24.1.0")
    result, samples, journal = _upgrade_under_traffic(cluster, "24.1.0", "--keep-old")
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_no_failed_request(samples, cluster)
    _assert_upgraded(docker_client, cluster, "24.1.0", journal)
    # --keep-old: every old node is still there, stopped, on the old release, for rollback.
    for container_name in cluster.node_containers.values():
        old = docker_client.containers.get(f"{container_name}-ku-old-{journal['run_id']}")
        assert old.status == "exited"
        assert old.image.labels[KEYSTONE_VERSION_LABEL] == "23.0.2"

    steps = {s["id"]: s for s in journal["steps"]}
    last_up = max(
        e["at"] for s in steps.values() if s["kind"] == "node" for e in s["events"] if e["event"] == "up"
    )
    assert steps["contract"]["started_at"] > last_up

    def heads(step: str) -> tuple[set[str], set[str]]:
        sync = next(e for e in steps[step]["events"] if e["event"] == "db_sync")
        return set(sync["heads_before"]), set(sync["heads_after"])

    # Expand moved only the expand branch; 23.0.2's contract head stayed while the nodes
    # were swapped, and only contract moved it to 24.1.0's.
    assert heads("expand") == ({source_expand, source_contract}, {target_expand, source_contract})
    assert heads("contract") == ({target_expand, source_contract}, {target_expand, target_contract})

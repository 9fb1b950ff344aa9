"""[run] nodes_at_once against a real cluster: a batch swapped together under traffic with no
failed request, and a batch put back whole when one of its nodes fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import pytest

from runner.drivers.keystone import Credentials
from runner.lab.cluster import LabEndpoints
from runner.probe import Probe, ProbeSettings, summarize
from runner.waits import WaitPolicy, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import keystone_upgrade, runtime, write_inventory

pytestmark = pytest.mark.integration

TRAFFIC = ProbeSettings(rate_per_s=30, concurrency=6, max_requests=30000, max_seconds=900)
STEADY_TRAFFIC = WaitPolicy("probe traffic flowing", timeout_s=60, interval_s=0.2)
BATCH = "[run]\nnodes_at_once = 2\nhealth_timeout_s = 20\n"
# keystone-2's replacement cannot bind its port (below 1024, not root): it never becomes healthy.
BROKEN_NODE_2 = (
    '[nodes.target]\nenvironment = { KEYSTONE_BIND = "127.0.0.1:1" }\n\n[[nodes]]\nname = "keystone-3"'
)


def _journal(cluster: LabEndpoints) -> dict[str, Any]:
    return json.loads((cluster.state_dir / "upgrade" / "journal.json").read_text())


def _events(journal: dict[str, Any], node: str) -> dict[str, float]:
    step = next(s for s in journal["steps"] if s["id"] == f"node:{node}")
    return {e["event"]: e["at"] for e in step["events"]}


def _release(client: docker.DockerClient, cluster: LabEndpoints, node: str) -> str:
    exit_code, output = client.containers.get(cluster.node_containers[node]).exec_run(
        ["python3", "-c", "import importlib.metadata as m; print(m.version('keystone'))"]
    )
    assert exit_code == 0, output
    return output.decode().strip()


def test_a_batch_is_put_back_whole_then_swapped_together_without_a_failed_request(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    broken: Path = write_inventory(
        cluster, "29.1.0", **{"[run]\n": BATCH, '[[nodes]]\nname = "keystone-3"': BROKEN_NODE_2}
    )
    credentials = Credentials(cluster.admin_username, cluster.admin_password, cluster.admin_project)
    probe = Probe(cluster.lb_url, credentials, TRAFFIC).start()
    try:
        wait_until(STEADY_TRAFFIC, lambda: len(probe.samples), lambda n: n >= 60)
        failed = keystone_upgrade("upgrade", "-i", broken, "--yes")
        # The failed batch: keystone-2 never answered, so keystone-1 (swapped with it) went back too.
        assert failed.returncode == 7, failed.stdout + failed.stderr
        assert "node keystone-2 failed" in failed.stderr
        journal = _journal(cluster)
        for node in ("keystone-1", "keystone-2"):
            assert _release(docker_client, cluster, node) == "28.1.0", node
            assert "rolled back" in _events(journal, node), node
        assert next(s for s in journal["steps"] if s["id"] == "node:keystone-1")["detail"] == (
            "rolled back with node:keystone-2 (same batch)"
        )
        assert not _events(journal, "keystone-3")  # the next batch was never started
        assert all(s.is_up for s in runtime(cluster).show_stat())

        assert keystone_upgrade("rollback", "-i", broken, "--yes").returncode == 0
        fixed = write_inventory(cluster, "29.1.0", **{"[run]\n": BATCH})
        done = keystone_upgrade("upgrade", "-i", fixed, "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        after = len(probe.samples)
        wait_until(STEADY_TRAFFIC, lambda: len(probe.samples), lambda n: n >= after + 60)
    finally:
        samples = probe.stop()
    summary = summarize(samples)
    assert summary.failed == 0, [f"{s.operation} via {s.served_by}: {s.error}" for s in summary.failures[:10]]
    journal = _journal(cluster)
    one, two, three = (_events(journal, n) for n in ("keystone-1", "keystone-2", "keystone-3"))
    # Together: both out of rotation before either stopped, both started before either was healthy,
    # keystone-3 drained only once both were UP again.
    assert max(one["maint"], two["maint"]) < min(one["stopped"], two["stopped"])
    assert max(one["started"], two["started"]) < min(one["healthy"], two["healthy"])
    assert three["drain"] > max(one["up"], two["up"])
    for node in cluster.node_containers:
        assert _release(docker_client, cluster, node) == "29.1.0", node

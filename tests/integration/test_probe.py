"""The probe: it must see real failures when there are some, and report none when there are none."""

from __future__ import annotations

import json
import time
from pathlib import Path

import docker
import pytest

from runner.drivers.keystone import Credentials
from runner.probe import Probe, ProbeSettings
from runner.waits import HAPROXY_SERVERS_UP, WaitPolicy, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import keystone_upgrade, runtime, write_inventory

pytestmark = pytest.mark.integration

TRAFFIC_FLOWING = WaitPolicy("probe traffic flowing", timeout_s=60, interval_s=0.2)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_probe_catches_a_node_killed_in_rotation(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    credentials = Credentials(cluster.admin_username, cluster.admin_password, cluster.admin_project)
    probe = Probe(cluster.lb_url, credentials, ProbeSettings(rate_per_s=40, concurrency=8, max_seconds=300))
    admin = runtime(cluster)
    victim = "keystone-2"
    with probe:
        wait_until(TRAFFIC_FLOWING, lambda: len(probe.samples), lambda n: n >= 120)
        # No drain, no maint: the node dies with requests in flight, as in a careless restart.
        killed_at = time.time()
        docker_client.containers.get(cluster.node_containers[victim]).kill()
        wait_until(
            HAPROXY_SERVERS_UP,
            admin.show_stat,
            lambda stats: all(s.status.startswith("DOWN") for s in stats if s.server == victim),
        )
        seen = len(probe.samples)
        wait_until(TRAFFIC_FLOWING, lambda: len(probe.samples), lambda n: n >= seen + 80)
    samples = probe.stop()
    failures = [s for s in samples if not s.ok]
    assert failures, f"{len(samples)} requests and not one failure although {victim} was killed in rotation"
    assert all(f.error for f in failures)
    # Every failure is the kill's: none before it, and each names the killed node, or no
    # node at all when HAProxy closed the connection without an answer to name one.
    assert min(f.at + f.latency_s for f in failures) >= killed_at, failures
    assert {f.served_by for f in failures} <= {victim, None}, failures
    check = probe.verify_writes()
    assert check.acknowledged_creates > 0
    assert check.ok, check.lost


def test_upgrade_with_probe_reports_zero_failures_per_phase_and_a_timeline(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = cluster_factory("28.1.0")
    result = keystone_upgrade("upgrade", "-i", write_inventory(cluster, "29.1.0"), "--yes", "--probe")
    assert result.returncode == 0, result.stdout + result.stderr
    report_path = Path(result.stdout.split("report: ")[-1].strip())
    probe = json.loads(report_path.read_text())["probe"]
    assert probe["requests"] > 300
    assert probe["failed"] == 0, probe["failures"]
    assert probe["longest_outage_s"] == 0
    phases = {p["phase"]: p for p in probe["phases"]}
    for name in ("preflight", "backup", "expand", "migrate", "node:keystone-1", "node:keystone-2", "node:keystone-3",
                 "contract"):  # fmt: skip
        assert phases[name]["requests"] > 0, name
        assert phases[name]["failed"] == 0, name
    assert probe["overall"]["p99_ms"] is not None
    assert probe["writes"]["acknowledged_creates"] > 0
    assert probe["writes"]["lost"] == []
    png = Path(probe["timeline_png"])
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "timeline:" in result.stdout
    assert set(probe["served_by"]) == set(cluster.node_urls)

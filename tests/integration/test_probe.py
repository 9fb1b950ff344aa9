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
FAILURES_SEEN = WaitPolicy("the probe records a failure", timeout_s=60, interval_s=0.2)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_probe_catches_a_node_stopped_in_rotation(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    credentials = Credentials(cluster.admin_username, cluster.admin_password, cluster.admin_project)
    settings = ProbeSettings(rate_per_s=30, concurrency=8, max_seconds=300, timeout_s=30)
    probe = Probe(cluster.lb_url, credentials, settings)
    admin = runtime(cluster)
    victim = docker_client.containers.get(cluster.node_containers["keystone-2"])
    with probe:
        wait_until(TRAFFIC_FLOWING, lambda: len(probe.samples), lambda n: n >= 90)
        # No drain, no maint: the node stops (SIGSTOP) with HAProxy still sending it requests.
        stopped_at = time.time()
        victim.pause()
        wait_until(
            HAPROXY_SERVERS_UP,
            admin.show_stat,
            lambda stats: all(s.status.startswith("DOWN") for s in stats if s.server == "keystone-2"),
        )
        # The requests it held come back as HAProxy's 504 after its server timeout.
        wait_until(
            FAILURES_SEEN, lambda: [s for s in probe.samples if not s.ok], lambda failed: len(failed) > 0
        )
        seen = len(probe.samples)
        wait_until(TRAFFIC_FLOWING, lambda: len(probe.samples), lambda n: n >= seen + 60)
    samples = probe.stop()
    failures = [s for s in samples if not s.ok]
    assert failures, (
        f"{len(samples)} requests and not one failure although keystone-2 was stopped in rotation"
    )
    assert all(f.error for f in failures)
    assert {f.served_by for f in failures} == {"keystone-2"}, [(f.served_by, f.error) for f in failures]
    assert all(f.status == 504 for f in failures), [f.error for f in failures]
    assert min(f.at for f in failures) >= stopped_at - 1  # sent around or after the stop, none before
    # Traffic went on through the other nodes meanwhile.
    assert {s.served_by for s in samples if s.ok and s.at > stopped_at} >= {"keystone-1", "keystone-3"}
    victim.unpause()
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
    # 30 requests/s through the whole run (preflight too, before the journal starts): as many as
    # the run is long, not a fixed count (the run got shorter).
    written = json.loads((cluster.state_dir / "upgrade" / "journal.json").read_text())
    ran_s = written["finished_at"] - written["started_at"]
    assert probe["requests"] >= 30 * ran_s * 0.9, (probe["requests"], ran_s)
    assert probe["failed"] == 0, probe["failures"]
    assert probe["longest_outage_s"] == 0
    phases = {p["phase"]: p for p in probe["phases"]}
    for name in ("preflight", "expand", "node:keystone-1", "node:keystone-2", "node:keystone-3",
                 "contract"):  # fmt: skip
        assert phases[name]["requests"] > 0, name
        assert phases[name]["failed"] == 0, name
    # The backup step adopts the dump begun beside preflight, so it is often over before a request is
    # sent in it: its traffic is preflight's. It is still a phase of its own, and nothing failed in it.
    assert phases["backup"]["failed"] == 0
    assert phases["migrate"]["requests"] == 0  # skipped: a no-op on every alembic release
    assert probe["overall"]["p99_ms"] is not None
    assert probe["writes"]["acknowledged_creates"] > 0
    assert probe["writes"]["lost"] == []
    png = Path(probe["timeline_png"])
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "timeline:" in result.stdout
    assert set(probe["served_by"]) == set(cluster.node_urls)

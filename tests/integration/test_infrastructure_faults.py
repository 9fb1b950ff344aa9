"""The cluster's own parts fail under a run, one per node, on one cluster under traffic: HAProxy reloaded
without saved states, HAProxy restarted, the database restarted. The run completes; the only requests that
fail are the ones sent while HAProxy's port or the database was down, which no runner can answer."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import docker
import pytest
from docker.models.containers import Container

from runner.drivers.keystone import Credentials
from runner.errors import HaproxyError, RunnerError
from runner.lab.cluster import SERVICE_LABEL, LabEndpoints
from runner.probe import Probe, summarize
from runner.waits import WaitPolicy, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import (
    COMMAND_TIMEOUT_S,
    STEADY_TRAFFIC,
    TRAFFIC,
    database,
    journal,
    runtime,
    step,
    step_has,
    write_inventory,
)

pytestmark = pytest.mark.integration

NODE_EVENT = WaitPolicy("the journal shows the node's event", timeout_s=300, interval_s=0.05)
# The socket may refuse a connection while the new worker takes it over.
HAPROXY_RELOADED = WaitPolicy(
    "another HAProxy worker answers the socket",
    timeout_s=60,
    interval_s=0.1,
    transient=(OSError, HaproxyError),
)
PART_BACK = WaitPolicy("the restarted part answers again", timeout_s=120, interval_s=0.2)
# A request sent just before a restart ended may still meet the old process closing, and Keystone's
# connection pools find their connections dead on first use after the database is back.
GRACE_S = 3.0


@dataclass
class Outage:
    """When a part of the cluster was down, as the test caused it."""

    what: str
    began: float
    ended: float

    def covers(self, at: float) -> bool:
        return self.began - 1 <= at <= self.ended + GRACE_S


def _service(client: docker.DockerClient, cluster: LabEndpoints, service: str) -> Container:
    labels = [f"com.docker.compose.project={cluster.project}", f"{SERVICE_LABEL}={service}"]
    (container,) = client.containers.list(filters={"label": labels})
    return container


def _when(cluster: LabEndpoints, step_id: str, event: str) -> None:
    wait_until(NODE_EVENT, lambda: step(cluster, step_id), step_has(event))


def _restart(container: Container, what: str, back: Callable[[], bool] = lambda: True) -> Outage:
    """Restart ``container``; the outage lasts until it is back (``back``, bounded)."""
    began = time.time()
    container.restart(timeout=10)
    wait_until(PART_BACK, back, lambda ok: ok)
    return Outage(what, began, time.time())


def test_reload_restart_and_database_restart_during_the_node_loop(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    haproxy = _service(docker_client, cluster, "haproxy")
    mariadb = _service(docker_client, cluster, "mariadb")
    # No saved states, as with a configuration without server-state-file (Kolla's): a reload forgets.
    (cluster.state_dir / "haproxy-state" / "server-state").unlink(missing_ok=True)
    inventory = write_inventory(cluster, "29.1.0")
    credentials = Credentials(cluster.admin_username, cluster.admin_password, cluster.admin_project)
    outages: list[Outage] = []
    with Probe(cluster.lb_url, credentials, TRAFFIC) as probe:
        wait_until(STEADY_TRAFFIC, lambda: len(probe.samples), lambda n: n >= 60)
        runner = subprocess.Popen(
            [sys.executable, "-m", "runner", "upgrade", "-i", str(inventory), "--yes"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # keystone-1 stopped, out of rotation: the master reloads; the new worker has every
            # server READY, keystone-1 too, while its replacement boots.
            _when(cluster, "node:keystone-1", "stopped")
            before = runtime(cluster).show_info().pid
            haproxy.kill(signal="SIGUSR2")  # to the master, PID 1: reload
            wait_until(HAPROXY_RELOADED, lambda: runtime(cluster).show_info().pid, lambda pid: pid != before)

            # keystone-2 stopped: HAProxy restarts (its port refuses connections meanwhile).
            _when(cluster, "node:keystone-2", "stopped")
            outages.append(_restart(haproxy, "HAProxy"))

            # keystone-3 stopped: the database restarts.
            _when(cluster, "node:keystone-3", "stopped")
            outages.append(_restart(mariadb, "the database", lambda: _heads_or_none(cluster) is not None))
            stdout, stderr = runner.communicate(timeout=COMMAND_TIMEOUT_S)
        finally:
            runner.kill()
        after = len(probe.samples)
        wait_until(STEADY_TRAFFIC, lambda: len(probe.samples), lambda n: n >= after + 60)

    assert runner.returncode == 0, stdout + stderr
    steps = {s["id"]: s for s in journal(cluster)["steps"]}
    assert all(s["status"] in ("done", "skipped") for s in steps.values()), steps
    # The reload was seen and MAINT (or DRAIN) set again on keystone-1, and after the restart on keystone-2.
    for node in ("keystone-1", "keystone-2"):
        reapplied = [e for e in steps[f"node:{node}"]["events"] if e["event"] == "state set again"]
        assert any("reloaded or restarted" in note for e in reapplied for note in e["where"]), (node, steps)
    assert all(s.ready for s in runtime(cluster).show_servers_state())
    assert all(s.is_up for s in runtime(cluster).show_stat())
    summary = summarize(probe.samples)
    unexplained = [f for f in summary.failures if not any(o.covers(f.at) for o in outages)]
    timeline = [
        (round(e["at"], 2), step_id, e["event"])
        for step_id, st in steps.items()
        for e in st["events"]
        if step_id.startswith("node:")
    ]
    assert unexplained == [], "\n".join(
        [f"{o.what}: {o.began:.2f}-{o.ended:.2f}" for o in outages]
        + [f"{f.at:.2f} {f.operation} via {f.served_by}: {f.status} {f.error}" for f in unexplained[:10]]
        + [str(t) for t in sorted(timeline)]
    )
    assert probe.verify_writes().lost == []
    print(
        "outages: "
        + ", ".join(f"{o.what} {o.ended - o.began:.1f}s" for o in outages)
        + f"; {summary.failed} of {summary.requests} requests failed, all inside them"
    )


def _heads_or_none(cluster: LabEndpoints) -> frozenset[str] | None:
    try:
        return database(cluster).alembic_heads()
    except RunnerError:  # the database refuses or does not answer yet
        return None

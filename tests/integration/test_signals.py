"""SIGINT and SIGTERM on a real run under traffic: the step in progress finishes, the run stops cleanly,
``resume`` completes; no password is left anywhere the run wrote."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from runner.drivers.containers import RUNNER_LABEL
from runner.errors import ExitCode
from runner.lab.cluster import LabEndpoints
from runner.waits import WaitPolicy, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import (
    journal,
    keystone_upgrade,
    runtime,
    step,
    traffic_around,
    write_inventory,
)

pytestmark = pytest.mark.integration

STEP_RUNNING = WaitPolicy("the journal shows the step running", timeout_s=300, interval_s=0.05)
RUNNER_EXITS_S = 300


def _signal_during(
    cluster: LabEndpoints, inventory: Path, command: str, step_id: str, signum: signal.Signals
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; once ``step_id`` has started an effect, send ``signum`` once; wait for the exit."""
    runner = subprocess.Popen(
        [sys.executable, "-m", "runner", command, "-i", str(inventory), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            STEP_RUNNING,
            lambda: step(cluster, step_id),
            lambda s: s.get("status") == "running" and s.get("intended") is not None,
        )
        runner.send_signal(signum)
        stdout, stderr = runner.communicate(timeout=RUNNER_EXITS_S)
    finally:
        runner.kill()
    return subprocess.CompletedProcess(runner.args, runner.returncode, stdout, stderr)


def test_signals_finish_the_step_in_progress_and_resume_completes(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    inventory = write_inventory(cluster, "29.1.0")
    with traffic_around(cluster):
        # Ctrl-C while expand's db_sync runs: the migration completes, then the run stops.
        stopped = _signal_during(cluster, inventory, "upgrade", "expand", signal.SIGINT)
        assert stopped.returncode == ExitCode.INTERRUPTED, stopped.stdout + stopped.stderr
        assert "stopped on SIGINT before step migrate" in stopped.stderr, stopped.stderr
        steps = {s["id"]: s for s in journal(cluster)["steps"]}
        assert journal(cluster)["status"] == "interrupted"
        assert steps["expand"]["status"] == "done"
        assert [e["exit_code"] for e in steps["expand"]["events"] if e["event"] == "db_sync"] == [0]
        assert steps["migrate"]["status"] == "pending"
        assert not docker_client.containers.list(all=True, filters={"label": RUNNER_LABEL})

        # SIGTERM while keystone-2 is being swapped: keystone-2 finishes on 29.1.0, back in rotation.
        stopped = _signal_during(cluster, inventory, "resume", "node:keystone-2", signal.SIGTERM)
        assert stopped.returncode == ExitCode.INTERRUPTED, stopped.stdout + stopped.stderr
        assert "stopped on SIGTERM before step node:keystone-3" in stopped.stderr, stopped.stderr
        steps = {s["id"]: s for s in journal(cluster)["steps"]}
        assert steps["node:keystone-2"]["status"] == "done"
        assert steps["node:keystone-3"]["status"] == "pending"
        assert all(s.ready for s in runtime(cluster).show_servers_state())

        finished = keystone_upgrade("resume", "-i", inventory, "--yes")
        assert finished.returncode == 0, finished.stdout + finished.stderr
    for node, name in cluster.node_containers.items():
        exit_code, output = docker_client.containers.get(name).exec_run(["keystone-manage", "--version"])
        assert (exit_code, output.decode().strip()) == (0, "29.1.0"), node
    assert journal(cluster)["status"] == "succeeded"

    # No file the runs wrote holds a password (journal, reports, logs, the backup directory).
    secrets = {
        (cluster.config_dir / "secrets" / name).read_text().strip()
        for name in ("db-password", "db-root-password", "admin-password")
    }
    written = [
        p for p in (cluster.state_dir / "upgrade").rglob("*") if p.is_file() and not p.name.endswith(".gz")
    ]
    assert written
    for path in written:
        content = path.read_bytes()
        assert not any(secret.encode() in content for secret in secrets), path

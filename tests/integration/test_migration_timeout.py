"""A migration longer than run.migration_timeout_s: reported and left to finish, never killed; resume
refuses while it runs and completes the upgrade once it has exited."""

from __future__ import annotations

import threading

import docker
import pytest
from docker.models.containers import Container

from runner.drivers.containers import PURPOSE_LABEL, RUN_ID_LABEL, RUNNER_LABEL
from runner.errors import ExitCode
from runner.waits import WaitPolicy, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import journal, keystone_upgrade, write_inventory

pytestmark = pytest.mark.integration

EXITS_S = 300
MIGRATION_STARTS = WaitPolicy("the expand container runs", timeout_s=120, interval_s=0.05)


def _pause_when_it_starts(client: docker.DockerClient, purpose: str) -> threading.Thread:
    """Pause the runner's ``purpose`` container as soon as it runs: a migration that cannot finish in time."""

    def pause() -> None:
        def running() -> list[Container]:
            return client.containers.list(
                filters={"label": f"{PURPOSE_LABEL}={purpose}", "status": "running"}
            )

        (container,) = wait_until(MIGRATION_STARTS, running, lambda found: len(found) == 1)
        container.pause()

    watcher = threading.Thread(target=pause, name=f"pause-{purpose}", daemon=True)
    watcher.start()
    return watcher


def test_a_migration_past_its_timeout_is_left_running_and_resume_waits_for_it(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    short = write_inventory(cluster, "29.1.0", **{"[run]\n": "[run]\nmigration_timeout_s = 2\n"})
    watcher = _pause_when_it_starts(docker_client, "expand")
    result = keystone_upgrade("upgrade", "-i", short, "--yes")
    watcher.join(timeout=MIGRATION_STARTS.timeout_s)
    assert result.returncode == ExitCode.MIGRATION, result.stdout + result.stderr
    assert "db_sync --expand did not finish within run.migration_timeout_s (2s)" in result.stderr
    assert "it was left running to finish" in result.stderr
    run = [RUNNER_LABEL, f"{RUN_ID_LABEL}={journal(cluster)['run_id']}"]
    (left,) = docker_client.containers.list(all=True, filters={"label": run})
    try:
        assert left.status == "paused"  # reported, not killed
        assert left.labels[PURPOSE_LABEL] == "expand"
        assert left.id[:12] in result.stderr
        steps = {s["id"]: s for s in journal(cluster)["steps"]}
        assert steps["expand"]["status"] == "failed"
        assert steps["node:keystone-1"]["status"] == "pending"

        # While it is alive, nothing goes on: resume names it.
        inventory = write_inventory(cluster, "29.1.0")
        refused = keystone_upgrade("resume", "-i", inventory, "--yes")
        assert refused.returncode == ExitCode.PREFLIGHT, refused.stdout + refused.stderr
        assert f"a throwaway container is still running: {left.id[:12]} (expand" in refused.stderr

        # The migration finishes on its own, with its own exit code.
        left.unpause()
        assert left.wait(timeout=EXITS_S)["StatusCode"] == 0
    finally:
        left.remove(force=True)
    resumed = keystone_upgrade("resume", "-i", inventory, "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert journal(cluster)["status"] == "succeeded"

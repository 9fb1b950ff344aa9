"""A migration longer than run.migration_timeout_s: reported and left to finish, never killed; resume
refuses while it runs and completes the upgrade once it has exited. Both where it runs: forked in
the warm keystone-manage container (its fork stopped), and in a container of its own (paused),
which is where it runs when the warm one cannot take it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import docker
import pytest
from docker.models.containers import Container

from runner.drivers.containers import PURPOSE_LABEL, RUN_ID_LABEL, RUNNER_LABEL
from runner.errors import ExitCode
from runner.lab.cluster import LabEndpoints
from runner.waits import WaitPolicy, wait_until
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import COMMAND_TIMEOUT_S, journal, keystone_upgrade, write_inventory

pytestmark = pytest.mark.integration

EXITS_S = 300
MIGRATION_STARTS = WaitPolicy("the expand container runs", timeout_s=120, interval_s=0.05)
WARM_RUNS = WaitPolicy("the warm keystone-manage container runs", timeout_s=120, interval_s=0.05)
ASKED = WaitPolicy("the upgrade asks whether to execute its plan", timeout_s=300, interval_s=0.1)
# Polled fast: the fork lives a few hundred milliseconds unless it is stopped.
FORK_STARTS = WaitPolicy("the warm container forks the expand", timeout_s=180, interval_s=0.002)
EXITED = WaitPolicy("the warm container exits", timeout_s=EXITS_S, interval_s=0.2)


def _exited(container: Container) -> None:
    def status() -> str:
        container.reload()
        return str(container.status)

    wait_until(EXITED, status, lambda s: s in ("exited", "dead"))


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


def _warm(client: docker.DockerClient) -> Container:
    (container,) = wait_until(
        WARM_RUNS,
        lambda: client.containers.list(
            filters={"label": f"{PURPOSE_LABEL}=keystone-manage", "status": "running"}
        ),
        lambda found: len(found) == 1,
    )
    return container


def _upgrade_after_the_checks(
    client: docker.DockerClient, inventory: Path, meanwhile: Callable[[Container], None]
) -> subprocess.CompletedProcess[str]:
    """The upgrade, its question answered once it is asked (preflight's checks, forked in the warm
    container, are over and their execs gone) and ``meanwhile`` has been done to the warm
    container: the next command it is asked is the expand."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "upgrade", "-i", str(inventory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    stdout: list[str] = []
    stderr: list[str] = []
    readers = [
        threading.Thread(target=_drain, args=(process.stdout, stdout), daemon=True),
        threading.Thread(target=_drain, args=(process.stderr, stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        # The question has no newline after it: what was read so far is searched, not lines.
        wait_until(ASKED, lambda: "".join(stdout), lambda shown: "execute this plan?" in shown)
        warm = _warm(client)
        assert "keystone-manage doctor exited" in warm.logs().decode(), "preflight's checks ran in it"
        meanwhile(warm)
        process.stdin.write(b"y\n")
        process.stdin.close()
        process.wait(timeout=COMMAND_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for reader in readers:
            reader.join(timeout=10)
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(stdout), "".join(stderr))


def _drain(stream: IO[bytes] | None, into: list[str]) -> None:
    assert stream is not None
    while chunk := os.read(stream.fileno(), 65536):
        into.append(chunk.decode(errors="replace"))


def _stop_its_next_fork(warm: Container, stopped: list[int]) -> threading.Thread:
    """Stop (SIGSTOP, from this host) the warm container's next fork, the expand's, as soon as it
    exists: the expand cannot finish in time, and is neither killed nor lost."""

    def stop() -> None:
        server = int(warm.attrs["State"]["Pid"])
        children = Path(f"/proc/{server}/task/{server}/children")
        (fork,) = wait_until(FORK_STARTS, lambda: children.read_text().split(), lambda pids: len(pids) == 1)
        os.kill(int(fork), signal.SIGSTOP)
        stopped.append(int(fork))

    watcher = threading.Thread(target=stop, name="stop-warm-fork", daemon=True)
    watcher.start()
    return watcher


def _left_running_and_resume_refused(
    cluster: LabEndpoints,
    client: docker.DockerClient,
    result: subprocess.CompletedProcess[str],
    status: str,
    purpose: str,
) -> tuple[Container, list[str]]:
    """The upgrade reported the expand left running in the ``purpose`` container, which is
    ``status``, not killed; while it is alive, nothing goes on: resume names it. It, and the run's labels."""
    assert result.returncode == ExitCode.MIGRATION, result.stdout + result.stderr
    assert "db_sync --expand did not finish within run.migration_timeout_s (2s)" in result.stderr
    assert "it was left running to finish" in result.stderr
    run = [RUNNER_LABEL, f"{RUN_ID_LABEL}={journal(cluster)['run_id']}"]
    (left,) = client.containers.list(all=True, filters={"label": run})
    try:
        assert left.status == status
        assert left.labels[PURPOSE_LABEL] == purpose
        # Throwaways never run the image's health check (a process in them every few seconds).
        assert left.attrs["Config"]["Healthcheck"]["Test"] == ["NONE"], left.attrs["Config"].get(
            "Healthcheck"
        )
        # Kept to the host's last CPU: the nodes keep the others.
        cpus = client.info()["NCPU"]
        assert left.attrs["HostConfig"]["CpusetCpus"] == (str(cpus - 1) if cpus > 1 else "")
        assert left.id[:12] in result.stderr
        steps = {s["id"]: s for s in journal(cluster)["steps"]}
        assert steps["expand"]["status"] == "failed"
        assert steps["node:keystone-1"]["status"] == "pending"
        refused = keystone_upgrade("resume", "-i", write_inventory(cluster, "29.1.0"), "--yes")
        assert refused.returncode == ExitCode.PREFLIGHT, refused.stdout + refused.stderr
        assert f"a throwaway container is still running: {left.id[:12]} ({purpose}" in refused.stderr
    except BaseException:
        left.remove(force=True)
        raise
    return left, run


def test_a_migration_forked_in_the_warm_container_past_its_timeout_is_left_running_and_resume_waits_for_it(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    short = write_inventory(cluster, "29.1.0", **{"[run]\n": "[run]\nmigration_timeout_s = 2\n"})
    stopped: list[int] = []
    watchers: list[threading.Thread] = []
    result = _upgrade_after_the_checks(
        docker_client, short, lambda warm: watchers.append(_stop_its_next_fork(warm, stopped))
    )
    for watcher in watchers:
        watcher.join(timeout=FORK_STARTS.timeout_s)
    assert stopped, "the expand was never forked in the warm container"
    # Reported, not killed: its fork still holds the expand.
    left, run = _left_running_and_resume_refused(cluster, docker_client, result, "running", "keystone-manage")
    inventory = write_inventory(cluster, "29.1.0")
    try:
        # The expand finishes on its own; the container, its input ended, exits after it and keeps
        # what the expand wrote (nobody was left to hand it to).
        os.kill(stopped[0], signal.SIGCONT)
        _exited(left)
        assert "keystone-manage db_sync --expand exited 0" in left.logs().decode()
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": run}):
            container.remove(force=True)
    resumed = keystone_upgrade("resume", "-i", inventory, "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert journal(cluster)["status"] == "succeeded"


def test_a_migration_in_a_container_of_its_own_past_its_timeout_is_left_running_and_resume_waits_for_it(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient
) -> None:
    cluster = cluster_factory("28.1.0")
    short = write_inventory(cluster, "29.1.0", **{"[run]\n": "[run]\nmigration_timeout_s = 2\n"})
    paused: list[Container] = []

    def pause(warm: Container) -> None:
        warm.pause()  # it can take no command (no exec in it): the expand included
        paused.append(warm)

    watcher = _pause_when_it_starts(docker_client, "expand")
    result = _upgrade_after_the_checks(docker_client, short, pause)
    watcher.join(timeout=MIGRATION_STARTS.timeout_s)
    # The warm container, paused, could not take the expand: the runner ended its input and went on.
    (warm,) = paused
    warm.unpause()
    _exited(warm)
    warm.remove()
    left, _ = _left_running_and_resume_refused(cluster, docker_client, result, "paused", "expand")
    inventory = write_inventory(cluster, "29.1.0")
    try:
        # The migration finishes on its own, with its own exit code.
        left.unpause()
        assert left.wait(timeout=EXITS_S)["StatusCode"] == 0
    finally:
        left.remove(force=True)
    resumed = keystone_upgrade("resume", "-i", inventory, "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert journal(cluster)["status"] == "succeeded"

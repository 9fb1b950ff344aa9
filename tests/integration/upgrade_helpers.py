"""Running the real command against a lab cluster, and observing the cluster around it."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import docker

from runner.drivers.containers import RUN_ID_LABEL, RUNNER_LABEL
from runner.drivers.database import MysqlDatabase
from runner.drivers.haproxy import OperationalState, RuntimeSocket
from runner.drivers.keystone import Credentials
from runner.lab.cluster import LabEndpoints
from runner.lab.inventory import inventory_toml
from runner.model import DatabaseTarget, SocketAddress
from runner.probe import Probe, ProbeSettings, summarize
from runner.waits import WaitPolicy, WaitTimeout, wait_until

COMMAND_TIMEOUT_S = 900


def write_inventory(cluster: LabEndpoints, target_version: str, **replace: str) -> Path:
    """The lab's inventory, optionally with lines replaced (old text -> new text)."""
    text = inventory_toml(cluster, target_version, cluster.state_dir / "upgrade")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    if "backup_restore_check" not in text:
        # The restore check of every backup costs a scratch database (seconds); test_rehearse proves it.
        text = text.replace("[run]\n", "[run]\nbackup_restore_check = false\n", 1)
    path = cluster.state_dir / f"inventory-{target_version}.toml"
    path.write_text(text)
    return path


def keystone_upgrade(
    *args: str | Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it: a separate process, its exit code and output.

    ``env``: the process's whole environment (default: the test's own).
    """
    return subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
        env=dict(env) if env is not None else None,
    )


def database(cluster: LabEndpoints) -> MysqlDatabase:
    """The cluster's database as the runner reaches it."""
    return MysqlDatabase(
        DatabaseTarget(
            cluster.db_host, cluster.db_port, cluster.db_user, cluster.db_name, cluster.db_password
        )
    )


def runtime(cluster: LabEndpoints) -> RuntimeSocket:
    """The cluster's admin runtime socket."""
    return RuntimeSocket(SocketAddress(unix_path=str(cluster.admin_socket)))


@dataclass(frozen=True)
class Snapshot:
    """What must not change when the runner refuses or only plans."""

    containers: dict[str, tuple[str, str, str]]  # name -> (container id, image id, status)
    haproxy: dict[tuple[str, str], tuple[int, str]]  # (backend, server) -> (admin flags, op state)
    heads: frozenset[str]
    images: frozenset[str]


def _serving(state: OperationalState) -> OperationalState:
    """STARTING is a server UP within its slowstart ramp (the lab's have one): it serves, as RUNNING."""
    return OperationalState.RUNNING if state is OperationalState.STARTING else state


def snapshot(client: docker.DockerClient, cluster: LabEndpoints) -> Snapshot:
    """Observe the cluster now."""
    containers = {}
    for container in client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={cluster.project}"}
    ):
        containers[container.name] = (container.id, container.image.id, container.status)
    haproxy = {
        (s.backend, s.server): (s.admin_flags, _serving(s.operational).name)
        for s in runtime(cluster).show_servers_state()
    }
    images = frozenset(image.id for image in client.images.list())
    return Snapshot(containers, haproxy, database(cluster).alembic_heads(), images)


HELD = WaitPolicy("a request held open on one node", timeout_s=30, interval_s=0.2)
# HAProxy's `timeout server` (15 s in the lab) ends a held request, and a run may take longer than
# that to reach its first drain: the hold is renewed this often until the node leaves rotation,
# so the request left holding it is never older than this when the drain starts.
HOLD_RENEWAL_S = 4.0
HOLD_AT_MOST_S = 600.0


def _server_of(cluster: LabEndpoints, held: socket.socket) -> str | None:
    """The server HAProxy gave the session of ``held`` (found by its source port in ``show sess``)."""
    port = held.getsockname()[1]
    for line in runtime(cluster).command("show sess").splitlines():
        found = re.search(r"src=[^ ]*:(\d+) .*\bsrv=(\S+)", line)
        if found and int(found.group(1)) == port:
            return None if found.group(2) == "<NONE>" else found.group(2)  # not given a server yet
    return None


def _hold_one(cluster: LabEndpoints, server: str) -> socket.socket:
    """A request whose body never finishes, sitting on ``server``; misses are closed at once.

    Which server took it is read from HAProxy's own session list by the connection's source
    port: counting sessions would mistake anyone else's request (the runner's own) for ours.
    """
    port = int(cluster.lb_url.rsplit(":", 1)[1])
    for _ in range(12):
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(
            b"POST /v3/auth/tokens HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        try:
            landed = wait_until(
                HELD.with_timeout(2), partial(_server_of, cluster, held), lambda srv: srv is not None
            )
        except WaitTimeout:
            landed = None
        if landed == server:
            return held
        held.close()
    raise AssertionError(f"no held request landed on {server}")


@contextmanager
def holding_a_request_on(cluster: LabEndpoints, server: str) -> Iterator[None]:
    """Keep a request that never completes on ``server`` until HAProxy starts draining it.

    A newer request replaces the older one every HOLD_RENEWAL_S while the server is in rotation;
    once it is drained or in maintenance the newest stays, and everything closes on exit.
    """
    admin = runtime(cluster)
    held = [_hold_one(cluster, server)]
    stop = threading.Event()

    def out_of_rotation() -> bool:
        return any(s.server == server and not s.ready for s in admin.show_servers_state())

    def renew() -> None:
        deadline = time.monotonic() + HOLD_AT_MOST_S
        while not stop.wait(HOLD_RENEWAL_S) and time.monotonic() < deadline:
            if out_of_rotation():
                return
            try:
                newer = _hold_one(cluster, server)
            except AssertionError:
                continue  # the node left rotation meanwhile: the older request still holds it
            held.append(newer)
            held.pop(0).close()

    renewer = threading.Thread(target=renew, name=f"hold-{server}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join(timeout=30)
        for connection in held:
            connection.close()


def journal(cluster: LabEndpoints) -> dict[str, Any]:
    """The last run's journal as the runner wrote it."""
    return dict(json.loads((cluster.state_dir / "upgrade" / "journal.json").read_text()))


def step(cluster: LabEndpoints, step_id: str) -> dict[str, Any]:
    """One step's record in the last run's journal (empty before the journal or the step exists)."""
    if not (cluster.state_dir / "upgrade" / "journal.json").exists():
        return {}
    return next((s for s in journal(cluster)["steps"] if s["id"] == step_id), {})


def step_done(step: dict[str, Any]) -> bool:
    """The journal says the step is done."""
    return step.get("status") == "done"


def step_has(event: str, more_than: int = 0) -> Callable[[dict[str, Any]], bool]:
    """The journal shows ``event`` among the step's events (more than ``more_than`` times)."""
    return lambda step: [e["event"] for e in step.get("events", [])].count(event) > more_than


def event_count(cluster: LabEndpoints, step_id: str, event: str) -> int:
    """How often the journal shows ``event`` in the step so far."""
    return [e["event"] for e in step(cluster, step_id).get("events", [])].count(event)


STEP_REACHED = WaitPolicy("the journal shows the step where the kill goes", timeout_s=300, interval_s=0.05)


def kill_runner_after(
    cluster: LabEndpoints,
    inventory: Path,
    step_id: str,
    reached: Callable[[dict[str, Any]], bool] = step_done,
    command: str = "upgrade",
) -> None:
    """Start ``command``, SIGKILL it as soon as the journal's ``step_id`` has ``reached`` (default: done).

    No chance to clean up: the run stops wherever the next step is (a drain, a
    swap half-way), as when a machine or a terminal dies.
    """
    runner = subprocess.Popen(
        [sys.executable, "-m", "runner", command, "-i", str(inventory), "--yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(STEP_REACHED, lambda: step(cluster, step_id), reached)
    finally:
        runner.kill()
        runner.wait(timeout=30)
    assert runner.returncode == -signal.SIGKILL
    assert journal(cluster)["status"] == "running"
    remove_orphans(cluster)


ORPHANS_EXIT_S = 300


def remove_orphans(cluster: LabEndpoints) -> None:
    """What a killed runner had started (a migration, a key check): wait until it exits, remove it.

    As an operator would after a kill: resume refuses while one of them runs.
    """
    client = docker.from_env()
    try:
        labels = [RUNNER_LABEL, f"{RUN_ID_LABEL}={journal(cluster)['run_id']}"]
        # The low-level list: the high-level one inspects each container it lists, and one whose
        # removal the killed runner had already asked for may be gone by then.
        for listed in client.api.containers(all=True, filters={"label": labels}):
            try:
                container = client.containers.get(listed["Id"])
                if container.status in ("running", "paused", "restarting"):
                    container.wait(timeout=ORPHANS_EXIT_S)
                container.remove(force=True)
            except docker.errors.NotFound:
                continue  # removed meanwhile: nothing left to wait for
    finally:
        client.close()


TRAFFIC = ProbeSettings(rate_per_s=30, concurrency=6, max_requests=30000, max_seconds=900)
STEADY_TRAFFIC = WaitPolicy("probe traffic flowing", timeout_s=60, interval_s=0.2)


@contextmanager
def traffic_around(cluster: LabEndpoints) -> Iterator[Probe]:
    """Bounded traffic through HAProxy, flowing before the block and for a while after it.

    Afterwards no request may have failed and every acknowledged write must read back.
    """
    credentials = Credentials(cluster.admin_username, cluster.admin_password, cluster.admin_project)
    with Probe(cluster.lb_url, credentials, TRAFFIC) as probe:
        wait_until(STEADY_TRAFFIC, lambda: len(probe.samples), lambda n: n >= 60)
        yield probe
        after = len(probe.samples)
        wait_until(STEADY_TRAFFIC, lambda: len(probe.samples), lambda n: n >= after + 60)
    summary = summarize(probe.samples)
    reasons = "\n".join(f"{s.operation} via {s.served_by}: {s.error}" for s in summary.failures[:20])
    assert summary.failed == 0, f"{summary.failed} of {summary.requests} requests failed:\n{reasons}"
    assert probe.verify_writes().lost == []

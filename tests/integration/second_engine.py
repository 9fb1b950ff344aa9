"""A second Docker engine on this machine, for a node that lives on another engine than the runner's.

It is a second ``dockerd`` with everything of its own under one temp directory
named with the session's prefix (so the leftovers check catches it if it
stayed): socket, data root, exec root, pid file, config file, log. It starts
its own containerd (no ``--containerd``), and its containerd namespaces are
its own as well, so that it would not see the first engine's containers even
if it were pointed at a shared containerd. Containers on it use host
networking only: no bridge, no iptables rules, nothing on the host's network
changes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from runner.waits import WaitPolicy, WaitTimeout, wait_until
from tests.integration.harness import SESSION_ID, TEMP_PREFIX

# A dockerd starting on a busy 2-core machine: its containerd first, then its own.
SECOND_ENGINE_ANSWERS = WaitPolicy("the second dockerd answers on its socket", timeout_s=90, interval_s=0.25)
# SIGTERM: dockerd stops its containers (none are left by then) and its containerd, then exits.
SECOND_ENGINE_EXITS = WaitPolicy("the second dockerd exits after SIGTERM", timeout_s=60, interval_s=0.2)
KILLED_EXITS_S = 30


@dataclass(frozen=True)
class SecondEngine:
    """The second engine: its endpoint as an inventory names it, and a client of it."""

    endpoint: str  # unix:///...docker.sock
    client: docker.DockerClient
    root: Path


class _Exited(Exception):
    """dockerd ended before it answered (not transient: the wait stops at once)."""


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(deque(log.read_text(errors="replace").splitlines(), maxlen=lines))
    except OSError as exc:
        return f"(no log: {exc})"


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first (``/proc/self/mountinfo`` escapes spaces)."""
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(root) or point.startswith(f"{root}/"):
                found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def _unmount_everything_under(root: Path) -> list[str]:
    """Unmount what dockerd left mounted (overlay layers, netns, shm); what could not be, named."""
    problems = []
    for point in _mounts_under(root):
        done = subprocess.run(["umount", point], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            # Busy: detach it now, it goes once its last user does.
            lazy = subprocess.run(["umount", "-l", point], capture_output=True, text=True, check=False)
            if lazy.returncode != 0:
                problems.append(f"cannot unmount {point}: {done.stderr.strip()}; {lazy.stderr.strip()}")
    return problems


def _stop_own_containerd(exec_root: Path) -> list[str]:
    """The containerd this dockerd started, when dockerd could not stop it (it was killed)."""
    pidfile = exec_root / "containerd" / "containerd.pid"
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return []  # gone with its dockerd
    if str(exec_root) not in cmdline:
        return []  # the pid was reused by another process: not ours to end
    os.kill(pid, signal.SIGKILL)
    return [f"its containerd (pid {pid}) had to be killed"]


def _remove_containers(client: docker.DockerClient) -> list[str]:
    problems = []
    try:
        for container in client.containers.list(all=True):
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                continue
            except docker.errors.DockerException as exc:
                problems.append(f"cannot remove container {container.name}: {exc}")
    except docker.errors.DockerException as exc:
        problems.append(f"cannot list its containers: {exc}")
    return problems


def _stop(process: subprocess.Popen[bytes]) -> list[str]:
    """SIGTERM, a bounded wait; SIGKILL only when it does not exit in time."""
    if process.poll() is not None:
        return [f"dockerd had already exited with {process.returncode}"]
    process.send_signal(signal.SIGTERM)
    try:
        wait_until(SECOND_ENGINE_EXITS, process.poll, lambda code: code is not None)
        return []
    except WaitTimeout:
        process.kill()
        process.wait(timeout=KILLED_EXITS_S)
        return [f"dockerd did not exit within {SECOND_ENGINE_EXITS.timeout_s:.0f}s of SIGTERM: killed"]


@contextmanager
def second_dockerd() -> Iterator[SecondEngine]:
    """Start a second dockerd under a temp directory; on exit remove everything it holds and it.

    Teardown raises (after doing all it can) when anything had to be forced or
    could not be removed: a fixture that leaves things behind must not pass quietly.
    """
    root = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}dockerd-"))
    socket_path, exec_root, log = root / "docker.sock", root / "exec", root / "dockerd.log"
    config = root / "daemon.json"
    # Its own (empty) config file: /etc/docker/daemon.json, if there is one, is the first engine's.
    config.write_text(json.dumps({}))
    namespace = f"ku-second-{SESSION_ID}"
    command = [
        "dockerd",
        f"--host=unix://{socket_path}",
        f"--data-root={root / 'data'}",
        f"--exec-root={exec_root}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"--config-file={config}",
        f"--containerd-namespace={namespace}",
        f"--containerd-plugins-namespace={namespace}-plugins",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
    ]
    process: subprocess.Popen[bytes] | None = None
    client: docker.DockerClient | None = None
    try:
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        endpoint = f"unix://{socket_path}"

        def answers() -> docker.DockerClient:
            if process is not None and process.poll() is not None:
                raise _Exited(f"dockerd exited with {process.returncode}; its log ends:\n{_log_tail(log)}")
            try:
                # The client asks the engine for its API version as it is made: it answers, or not yet.
                return docker.DockerClient(base_url=endpoint, timeout=120)
            except docker.errors.DockerException as exc:
                raise OSError(str(exc)) from exc  # not listening yet: transient

        try:
            client = wait_until(SECOND_ENGINE_ANSWERS, answers, lambda made: bool(made.ping()))
        except WaitTimeout as exc:
            raise AssertionError(f"{exc}\nits log ends:\n{_log_tail(log)}") from exc
        yield SecondEngine(endpoint, client, root)
    finally:
        problems: list[str] = []
        if client is not None:
            problems += _remove_containers(client)
            client.close()
        if process is not None:
            problems += _stop(process)
            problems += _stop_own_containerd(exec_root)
        problems += _unmount_everything_under(root)
        last_lines = _log_tail(log)
        shutil.rmtree(root, ignore_errors=True)
        if root.exists():
            problems.append(f"cannot remove {root}")
        if problems:
            raise AssertionError(
                "the second dockerd was not cleanly removed:\n  "
                + "\n  ".join(problems)
                + f"\nits log ended:\n{last_lines}"
            )


@pytest.fixture
def second_engine() -> Iterator[SecondEngine]:
    """A second Docker engine on this machine; its containers, process and directories removed after."""
    with second_dockerd() as engine:
        yield engine

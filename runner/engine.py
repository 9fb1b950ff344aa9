"""Make sure a Docker engine answers, provisioning one where we may.

A fresh machine of ours has the docker client but no engine. As root on
Debian we install Debian's ``docker.io`` and start ``dockerd``; anywhere else
we stop and say what to install, because installing a container engine on an
operator's machine is not ours to decide.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import docker
from docker.errors import DockerException

from runner.errors import EngineError
from runner.host import apt_install
from runner.waits import ENGINE_ANSWERS, WaitTimeout, wait_until

log = logging.getLogger(__name__)

DOCKERD_LOG = Path("/var/log/keystone-upgrade-dockerd.log")
DOCKERD_PIDFILE = Path("/var/run/docker.pid")


def engine_answers() -> bool:
    """True when the engine named by the environment (DOCKER_HOST or the socket) answers."""
    try:
        client = docker.from_env(timeout=10)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except DockerException:
        return False


def _may_provision() -> str | None:
    """None when we may install and start an engine here, else why not."""
    if os.environ.get("DOCKER_HOST"):
        return f"DOCKER_HOST is set ({os.environ['DOCKER_HOST']}); that engine is not ours to start"
    if os.geteuid() != 0:
        return "not running as root"
    if not Path("/etc/debian_version").exists():
        return "not a Debian system"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_dockerd() -> None:
    # A dockerd killed with its machine leaves its pid file behind, and a new
    # dockerd refuses to start while it is there.
    if DOCKERD_PIDFILE.exists():
        try:
            stale = not _pid_alive(int(DOCKERD_PIDFILE.read_text().strip() or "0"))
        except ValueError:
            stale = True
        if stale:
            DOCKERD_PIDFILE.unlink()
    log.info("starting dockerd (log: %s)", DOCKERD_LOG)
    with DOCKERD_LOG.open("ab") as out:
        subprocess.Popen(
            ["dockerd"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this process, like a service
        )


def ensure_engine() -> None:
    """Return once a Docker engine answers; provision one when allowed, else raise EngineError."""
    if engine_answers():
        return
    refusal = _may_provision()
    if refusal is not None:
        raise EngineError(
            "no Docker engine answers",
            observed=f"the docker client could not reach an engine; not provisioning one: {refusal}",
            hint="install and start Docker (on Debian as root: apt-get install docker.io; dockerd), "
            "or point DOCKER_HOST at a running engine",
        )
    if shutil.which("dockerd") is None:
        log.info("installing Debian's docker.io")
        apt_install(
            "docker.io",
            EngineError,
            hint="install a Docker engine by hand and start it, then run this again",
        )
    _start_dockerd()
    try:
        wait_until(ENGINE_ANSWERS, engine_answers, bool)
    except WaitTimeout as exc:
        tail = DOCKERD_LOG.read_text(errors="replace")[-1500:] if DOCKERD_LOG.exists() else ""
        raise EngineError(
            "dockerd was started but does not answer",
            observed=f"{exc}; dockerd log ends with:\n{tail}",
            hint=f"read {DOCKERD_LOG}; on a machine without cgroups or overlayfs dockerd may need "
            "other storage or cgroup settings",
        ) from exc

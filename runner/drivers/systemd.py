"""Node containers that a systemd unit runs (kolla-ansible): found on the runner's host, swapped through the unit.

kolla-ansible runs each container through ``kolla-<container>-container.service``
(``ExecStart=/usr/bin/docker start -a <container>``, ``ExecStop=/usr/bin/docker
stop <container> -t <timeout>``, ``Restart=always``). A container stopped
through the Docker API ends the unit's ``docker start -a``; systemd then starts
the old container again behind the runner's back, and fights the replacement
for its name. Such a container is stopped and started through its unit:
``ServiceManager`` is that port, ``Systemctl`` the implementation on the
``systemctl`` command, and ``ContainerUnit`` the moves of a swap through it.

Units are looked for only for nodes on the local engine: a remote engine's
host has its own systemd, out of this host's reach.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from runner.drivers.containers import Engine
from runner.drivers.docker_blueprint import ContainerBlueprint
from runner.errors import DockerError
from runner.model import LOCAL_ENGINE, NodeConfig
from runner.waits import UNIT_CONTAINER_EXITED, WaitPolicy, WaitTimeout, wait_until

log = logging.getLogger(__name__)

# Queries answer at once; a systemd that takes longer is not one to swap a node through.
QUERY_TIMEOUT_S = 15.0
# systemd bounds a stop or start job itself (TimeoutStopSec/TimeoutStartSec, 90 s by default, then it
# kills); this bound is only against a systemctl that never returns.
JOB_TIMEOUT_S = 300.0
# `systemctl is-active`: a unit in one of these runs its container, or is about to (an automatic restart).
RUNNING_STATES = frozenset({"active", "reloading", "activating", "deactivating", "refreshing"})
STOPPED_STATES = frozenset({"inactive", "failed", "maintenance"})
EXITED = frozenset({"exited", "dead"})
_ARGV = re.compile(r"argv\[\]=(.*?) ; ")


class ServiceError(DockerError):
    """systemd refused or failed to stop or start a node container's unit (exit code of DockerError)."""


def unit_name(container: str) -> str:
    """The unit kolla-ansible writes for ``container``."""
    return f"kolla-{container}-container.service"


class ServiceManager(Protocol):
    """The runner host's service manager, as far as a node container's unit goes."""

    def unit_of(self, container: str) -> str | None:
        """The loaded unit whose ExecStart starts ``container``; None when there is none (or no systemd)."""
        ...

    def stop(self, unit: str) -> None:
        """Stop the unit (its ExecStop stops the container); returns when systemd's job is done."""
        ...

    def start(self, unit: str) -> None:
        """Start the unit (its ExecStart starts the container of its name)."""
        ...

    def is_active(self, unit: str) -> bool:
        """True when the unit runs, or is about to (an automatic restart pending)."""
        ...


def parse_show(output: str) -> dict[str, str]:
    """``systemctl show --property=...`` output: one ``Key=value`` a line."""
    pairs = (line.partition("=") for line in output.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, _, value in pairs}


def exec_start_commands(value: str) -> list[list[str]]:
    """Each command line of an ExecStart property (``{ path=... ; argv[]=... ; ... }``), as argv lists."""
    commands = []
    for found in _ARGV.finditer(value + " "):
        text = found.group(1)
        try:
            commands.append(shlex.split(text))
        except ValueError:  # an unbalanced quote: systemd does not quote every version
            commands.append(text.split())
    return commands


def starts_container(commands: Sequence[Sequence[str]], container: str) -> bool:
    """Some command is ``<engine> start [options] ... <container>``: the unit runs that container."""
    for argv in commands:
        if "start" not in argv[1:]:
            continue
        after = argv[argv.index("start", 1) + 1 :]
        if container in [word for word in after if not word.startswith("-")]:
            return True
    return False


# ssh's own exit code when it could not run the command on the host at all.
SSH_FAILED = 255


def ssh_prefix(endpoint: str) -> tuple[str, ...]:
    """The ssh command that runs a command on the host of an ssh:// Docker endpoint: the same
    login docker's ssh:// uses, never asking anything (BatchMode), bounded connect."""
    parts = urlsplit(endpoint)
    target = f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname)
    port = ("-p", str(parts.port)) if parts.port else ()
    return ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *port, target)


@dataclass(frozen=True)
class Systemctl:
    """``ServiceManager`` through ``systemctl`` (argv only, bounded): of the runner's host, or of the
    host of an ssh:// engine when ``via`` is that host's ssh command."""

    binary: str = "systemctl"
    query_timeout_s: float = QUERY_TIMEOUT_S
    job_timeout_s: float = JOB_TIMEOUT_S
    via: tuple[str, ...] = ()

    def _run(self, args: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        """systemctl with ``args``; FileNotFoundError when it (or ssh) is not installed here."""
        found = shutil.which(self.via[0] if self.via else self.binary)
        if found is None:
            raise FileNotFoundError(self.via[0] if self.via else self.binary)
        command = [self.binary, "--no-pager", "--no-ask-password", *args]
        argv = [found, *self.via[1:], *command] if self.via else [found, *command[1:]]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
            if self.via and done.returncode == SSH_FAILED:
                raise ServiceError(
                    f"cannot run systemctl on {self.via[-1]} over ssh",
                    observed=done.stderr.strip() or f"ssh exited {SSH_FAILED}",
                    hint="the node's ssh:// engine logs in the same way: fix the ssh login (keys, "
                    "known_hosts) so that units on that host can be seen and used",
                )
            return done
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(
                f"systemctl {' '.join(args)} did not return within {timeout_s:.0f}s",
                observed="systemd did not answer in time",
                hint="look at systemd on this host (systemctl status, journalctl -u the unit); "
                "the node is left as the journal says",
            ) from exc
        except OSError as exc:
            raise ServiceError(
                f"cannot run systemctl {' '.join(args)}",
                observed=str(exc),
                hint="check that systemctl can be run by this user",
            ) from exc

    def unit_of(self, container: str) -> str | None:
        """The unit ``kolla-<container>-container.service``, when loaded and starting ``container``.

        None when systemctl is missing, systemd does not answer (no systemd as
        PID 1: a container, a CI machine) or the unit is not there; each says
        so in the debug log. A systemd that does not answer *in time* is an
        error: the unit may be there, and swapping past it is what this avoids.
        """
        unit = unit_name(container)
        try:
            shown = self._run(["show", "--property=LoadState,ExecStart", unit], self.query_timeout_s)
        except FileNotFoundError:
            log.debug(
                "no %s on PATH: container %s is stopped and started through Docker", self.binary, container
            )
            return None
        if shown.returncode != 0:
            log.debug(
                "systemd does not answer (systemctl show %s exited %d: %s): container %s is stopped "
                "and started through Docker",
                unit,
                shown.returncode,
                shown.stderr.strip() or shown.stdout.strip(),
                container,
            )
            return None
        properties = parse_show(shown.stdout)
        if properties.get("LoadState") != "loaded":
            log.debug("unit %s is not there (LoadState=%s)", unit, properties.get("LoadState", ""))
            return None
        if not starts_container(exec_start_commands(properties.get("ExecStart", "")), container):
            log.info(
                "unit %s is loaded but its ExecStart does not start container %s (%s): not used",
                unit,
                container,
                properties.get("ExecStart", ""),
            )
            return None
        log.debug("container %s runs under %s: it is stopped and started through the unit", container, unit)
        return unit

    def _job(self, verb: str, unit: str) -> None:
        try:
            done = self._run([verb, unit], self.job_timeout_s)
        except FileNotFoundError as exc:
            raise ServiceError(
                f"cannot {verb} unit {unit}: {self.binary} is gone",
                observed=f"{self.binary} is not on PATH any more",
                hint="restore systemctl on this host, then resume",
            ) from exc
        if done.returncode != 0:
            raise ServiceError(
                f"systemctl {verb} {unit} failed",
                observed=f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-800:]}",
                hint=f"read 'systemctl status {unit}' and 'journalctl -u {unit}'; the runner must be "
                "allowed to manage the unit (root, or a polkit rule)",
            )

    def stop(self, unit: str) -> None:
        """``systemctl stop UNIT``: returns when the stop job (its ExecStop) is done."""
        self._job("stop", unit)

    def start(self, unit: str) -> None:
        """``systemctl start UNIT``."""
        self._job("start", unit)

    def is_active(self, unit: str) -> bool:
        """``systemctl is-active UNIT``: running or about to (see RUNNING_STATES)."""
        try:
            asked = self._run(["is-active", unit], self.query_timeout_s)
        except FileNotFoundError as exc:
            raise ServiceError(
                f"cannot ask whether {unit} is active: {self.binary} is gone",
                observed=f"{self.binary} is not on PATH any more",
                hint="restore systemctl on this host, then resume",
            ) from exc
        state = asked.stdout.strip()
        if state in RUNNING_STATES:
            return True
        if state in STOPPED_STATES:
            return False
        raise ServiceError(
            f"cannot tell whether unit {unit} is active",
            observed=f"systemctl is-active exited {asked.returncode}: {(asked.stderr or asked.stdout).strip()}",
            hint=f"read 'systemctl status {unit}'",
        )


class NodeUnits:
    """The service manager of each node's host: this host's for nodes on the local engine, the
    host's own over ssh for nodes on an ssh:// engine (kolla-ansible's multinode layout).

    A tcp:// engine's host is out of reach: its nodes are swapped through the Docker API,
    and that is said once per node.
    """

    def __init__(self, services: ServiceManager, remote: type[Systemctl] | None = Systemctl) -> None:
        self.services = services
        self.remote = remote
        self._remote: dict[str, ServiceManager] = {}
        self._noted: set[str] = set()

    def for_node(self, node: NodeConfig) -> ServiceManager | None:
        """``services`` for a node on the local engine, its host's over ssh, or None."""
        if node.engine == LOCAL_ENGINE:
            return self.services
        if node.engine.startswith("ssh://") and self.remote is not None:
            if node.engine not in self._remote:
                self._remote[node.engine] = self.remote(via=ssh_prefix(node.engine))
            return self._remote[node.engine]
        if node.name not in self._noted:
            self._noted.add(node.name)
            log.info(
                "node %s is on engine %s: a systemd unit on that host is out of this host's reach; "
                "its container is stopped and started through the Docker API",
                node.name,
                node.engine,
            )
        return None


class ContainerUnit:
    """The unit that runs one node container, looked for once; a swap's moves through it.

    ``name`` is None when there is no unit (or no service manager): the caller
    then does what it does through the Docker API.
    """

    def __init__(
        self,
        services: ServiceManager | None,
        container: str,
        engine: Engine,
        *,
        exited: WaitPolicy = UNIT_CONTAINER_EXITED,
    ) -> None:
        self.services = services
        self.container = container
        self.engine = engine
        self.exited = exited
        self._looked = False
        self._name: str | None = None

    @property
    def name(self) -> str | None:
        """The unit's name; None without one. Looked for once: a swap's moves all go the same way."""
        if not self._looked:
            self._name = None if self.services is None else self.services.unit_of(self.container)
            self._looked = True
        return self._name

    def _manager(self) -> tuple[ServiceManager, str]:
        unit = self.name
        if self.services is None or unit is None:
            raise ServiceError(
                f"container {self.container} has no systemd unit to act through",
                observed="the swap asked for its unit after none was found",
                hint="this is the runner's own error: report it; the journal says what the run did",
            )
        return self.services, unit

    def stop(self, container_id: str) -> None:
        """Stop the unit, then see that the container it ran has exited.

        When ExecStop fails, systemd kills ``docker start -a`` instead, which
        passes the signal on to the container: it may still be stopping.
        """
        services, unit = self._manager()
        services.stop(unit)

        def status() -> str:
            found = self.engine.container(container_id)
            return "gone" if found is None else found.status

        try:
            wait_until(self.exited, status, lambda s: s in EXITED)
        except WaitTimeout as exc:
            raise ServiceError(
                f"systemctl stop {unit} returned but container {self.container} has not exited",
                observed=str(exc),
                hint=f"something outside the unit keeps it running (a 'docker start', another unit): "
                f"look at 'systemctl status {unit}' and 'docker ps'",
            ) from exc

    def start_new(self, blueprint: ContainerBlueprint) -> str:
        """Create the replacement (not started), then start the unit: its ExecStart starts it by name."""
        services, unit = self._manager()
        created = self.engine.create(blueprint)
        services.start(unit)
        return created

    def stop_if_active(self) -> None:
        """Stop the unit when it runs (or is about to), so nothing restarts a container being put back."""
        services, unit = self._manager()
        if services.is_active(unit):
            services.stop(unit)

    def start(self) -> None:
        """Start the unit: the container under the node's name runs again."""
        services, unit = self._manager()
        services.start(unit)

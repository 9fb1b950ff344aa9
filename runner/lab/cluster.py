"""Bring a lab cluster up from the compose definition, report where it listens, tear it down."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container

from runner.drivers.haproxy import RuntimeSocket
from runner.errors import LabError, RunnerError
from runner.lab.compose import DEFAULT_COMPOSE_FILE, ServiceSpec, load_services
from runner.lab.render import (
    BACKENDS,
    OPERATOR_SOCKET_NAME,
    admin_socket_path,
    prepare_state_dir,
    write_config,
)
from runner.lab.settings import NODE_COUNT, LabSettings
from runner.model import SocketAddress
from runner.waits import (
    CONTAINER_EXITED,
    CONTAINER_HEALTHY,
    HAPROXY_SOCKET_ANSWERS,
    LAB_NODES_UP,
    WaitTimeout,
    wait_until,
)

log = logging.getLogger(__name__)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
LAB_LABEL = "io.keystone-upgrade.lab"


@dataclass(frozen=True)
class LabEndpoints:
    """Everything a test or the demo needs to talk to a lab cluster."""

    project: str
    keystone_version: str
    lb_url: str
    lb_external_url: str
    node_urls: dict[str, str]  # HAProxy server name -> direct URL
    node_containers: dict[str, str]  # HAProxy server name -> container name
    backends: tuple[str, ...]
    admin_socket: Path
    operator_socket: Path
    db_host: str
    db_port: int
    db_name: str
    db_user: str
    db_password: str
    admin_username: str
    admin_password: str
    admin_project: str
    config_dir: Path
    state_dir: Path

    @property
    def db_url(self) -> str:
        """SQLAlchemy-style URL, as keystone.conf has it (it holds the password: never log it)."""
        return (
            f"mysql+pymysql://{self.db_user}:{self.db_password}@{self.db_host}:{self.db_port}/{self.db_name}"
        )


def _restarted(container: Container) -> bool:
    """Died and was restarted by its restart policy: failed, even if "running" again at this instant."""
    return int(container.attrs.get("RestartCount", 0)) > 0


def _failed_before(service: str, what: str, state: str, container: Container) -> LabError:
    return LabError(
        f"lab service {service} failed before {what}",
        observed=f"{state}; its last log lines:\n{_container_logs_tail(container)}",
        hint="read the container's log; keystone-upgrade lab down removes what was started",
    )


def _container_logs_tail(container: Container, lines: int = 40) -> str:
    try:
        return bytes(container.logs(tail=lines)).decode(errors="replace")
    except APIError as exc:
        return f"(logs unavailable: {exc})"


class Lab:
    """One lab cluster on the local engine, defined by compose/docker-compose.yml."""

    def __init__(
        self,
        settings: LabSettings,
        client: docker.DockerClient,
        compose_file: Path = DEFAULT_COMPOSE_FILE,
    ):
        self.settings = settings
        self.client = client
        self.compose_file = compose_file

    def services(self) -> list[ServiceSpec]:
        """The compose services, interpolated for this cluster, dependencies first.

        The compose file has three nodes; a cluster of more (the benchmark's scaling runs)
        gets copies of the first on their own ports, and every node then runs one worker
        (KEYSTONE_WORKERS): ten nodes of two on a 2-core machine would measure its queue.
        """
        services = load_services(self.settings.compose_environment(), self.compose_file)
        names = self.settings.node_names()
        if len(names) <= NODE_COUNT:
            return services
        first = next(s for s in services if s.name == "keystone-1")
        nodes = {
            name: replace(
                first,
                name=name,
                container_name=f"{self.settings.project}-{name}",
                environment={
                    **first.environment,
                    "KEYSTONE_BIND": f"127.0.0.1:{port}",
                    "KEYSTONE_WORKERS": "1",
                },
            )
            for name, port in zip(names, self.settings.ports.nodes, strict=True)
        }
        return [s for s in services if s.name not in nodes] + list(nodes.values())

    def endpoints(self) -> LabEndpoints:
        """Where this cluster listens and how to log in."""
        settings = self.settings
        names = settings.node_names()
        return LabEndpoints(
            project=settings.project,
            keystone_version=settings.keystone_version,
            lb_url=f"http://127.0.0.1:{settings.ports.lb}",
            lb_external_url=f"http://127.0.0.1:{settings.ports.lb_external}",
            node_urls={n: f"http://127.0.0.1:{p}" for n, p in zip(names, settings.ports.nodes, strict=True)},
            node_containers={n: f"{settings.project}-{n}" for n in names},
            backends=BACKENDS,
            admin_socket=admin_socket_path(settings.state_dir),
            operator_socket=admin_socket_path(settings.state_dir).with_name(OPERATOR_SOCKET_NAME),
            db_host="127.0.0.1",
            db_port=settings.ports.db,
            db_name="keystone",
            db_user="keystone",
            db_password=settings.secrets.db_password,
            admin_username="admin",
            admin_password=settings.secrets.admin_password,
            admin_project="admin",
            config_dir=settings.config_dir,
            state_dir=settings.state_dir,
        )

    # -- up ---------------------------------------------------------------------------------

    def up(self) -> LabEndpoints:
        """Create and start every service in dependency order; return once the LB serves."""
        services = self.services()
        self._check_images(services)
        self._check_ports_free()
        write_config(self.settings)
        prepare_state_dir(self.settings)
        containers: dict[str, Container] = {}
        for service in services:
            for dependency, condition in service.depends_on.items():
                self._wait_for_condition(containers[dependency], dependency, condition)
            containers[service.name] = self._start(service)
        nodes = {name: containers[name] for name in self.settings.node_names()}
        for service in services:
            # The nodes are judged by HAProxy's checks below: Docker first looks at their health
            # one image interval (30s) after they start (this engine has no --start-interval),
            # HAProxy within a second and then every 250ms while a server comes UP.
            if service.name in nodes or service.one_shot:
                continue
            if self._has_healthcheck(containers[service.name]):
                self._wait_for_condition(containers[service.name], service.name, "service_healthy")
        self._wait_for_servers_up(nodes)
        return self.endpoints()

    def _check_images(self, services: list[ServiceSpec]) -> None:
        missing = []
        for image in sorted({s.image for s in services}):
            try:
                self.client.images.get(image)
            except ImageNotFound:
                missing.append(image)
        if missing:
            raise LabError(
                "images the lab cluster needs are missing",
                observed=", ".join(missing),
                hint=f"build them: keystone-upgrade images build --keystone {self.settings.keystone_version}",
            )

    def _check_ports_free(self) -> None:
        taken = self.settings.ports.taken()
        if taken:
            raise LabError(
                "ports the lab cluster binds are already taken on 127.0.0.1",
                observed=", ".join(map(str, taken)),
                hint="stop what listens there (an earlier lab? keystone-upgrade lab down) "
                "or choose other ports",
            )

    def _start(self, service: ServiceSpec) -> Container:
        log.info("lab %s: starting %s", self.settings.project, service.container_name)
        try:
            # The low-level API: the high-level create() cannot set a stop timeout.
            api = self.client.api
            host_config = api.create_host_config(
                binds={
                    str(m.source): {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                    for m in service.mounts
                },
                network_mode=service.network_mode,
                restart_policy={} if service.one_shot else {"Name": service.restart},
            )
            created = api.create_container(
                service.image,
                name=service.container_name,
                command=list(service.command) if service.command is not None else None,
                entrypoint=list(service.entrypoint) if service.entrypoint is not None else None,
                environment=dict(service.environment),
                user=service.user or "",
                labels={
                    PROJECT_LABEL: self.settings.project,
                    SERVICE_LABEL: service.name,
                    LAB_LABEL: "1",
                },
                stop_timeout=service.stop_grace_period_s,
                host_config=host_config,
            )
            container = self.client.containers.get(created["Id"])
            container.start()
        except APIError as exc:
            raise LabError(
                f"could not start {service.container_name}",
                observed=str(exc.explanation or exc),
                hint="an earlier lab with this name may remain: keystone-upgrade lab down",
            ) from exc
        return container

    @staticmethod
    def _has_healthcheck(container: Container) -> bool:
        container.reload()
        return "Health" in container.attrs["State"]

    def _wait_for_condition(self, container: Container, service: str, condition: str) -> None:
        if condition == "service_started":
            return

        def observe() -> tuple[str, str, int]:
            container.reload()
            state = container.attrs["State"]
            status = state["Status"]
            if _restarted(container):
                status = "restarted"
            return status, state.get("Health", {}).get("Status", ""), state["ExitCode"]

        if condition == "service_completed_successfully":
            policy, done = CONTAINER_EXITED, lambda s: s[0] in ("exited", "dead", "restarted")
        else:
            policy = CONTAINER_HEALTHY

            def done(s: tuple[str, str, int]) -> bool:
                return s[1] == "healthy" or s[0] in ("exited", "dead", "restarted")

        try:
            status, health, exit_code = wait_until(policy, observe, done)
        except WaitTimeout as exc:
            raise LabError(
                f"lab service {service} did not reach {condition}",
                observed=f"{exc}\nits last log lines:\n{_container_logs_tail(container)}",
                hint="read the container's log; keystone-upgrade lab down removes what was started",
            ) from exc
        failed = exit_code != 0 if condition == "service_completed_successfully" else health != "healthy"
        if failed:
            raise _failed_before(
                service,
                condition,
                f"status {status}, health {health or 'none'}, exit code {exit_code}",
                container,
            )

    def _wait_for_servers_up(self, nodes: dict[str, Container]) -> None:
        """Every node UP in every backend; a node that exits or is restarted meanwhile fails at once."""
        runtime = RuntimeSocket(SocketAddress(unix_path=str(admin_socket_path(self.settings.state_dir))))
        expected = {(backend, node) for backend in BACKENDS for node in nodes}

        def observe() -> tuple[set[tuple[str, str]], str | None]:
            up = {(s.backend, s.server) for s in runtime.show_stat() if s.is_up}
            # Only the nodes not yet UP everywhere are inspected: ten booting nodes are ten
            # inspections a poll, on the engine that starts them.
            for name, container in nodes.items():
                if all((backend, name) in up for backend in BACKENDS):
                    continue
                container.reload()
                if container.status != "running" or _restarted(container):
                    return up, name
            return up, None

        try:
            wait_until(HAPROXY_SOCKET_ANSWERS, runtime.access_level, lambda level: level == "admin")
            _, died = wait_until(
                LAB_NODES_UP, observe, lambda seen: seen[1] is not None or expected <= seen[0]
            )
        except WaitTimeout as exc:
            try:
                stats = "\n".join(
                    f"  {s.backend}/{s.server}: {s.status}" for s in runtime.show_stat() if not s.is_up
                )
            except RunnerError as again:
                stats = f"  show stat failed: {again.render()}"
            raise LabError(
                "HAProxy does not report every Keystone node UP",
                observed=f"{exc.policy.name}: not within {exc.policy.timeout_s:.0f}s; the servers not UP:\n{stats}",
                hint="check the nodes' logs (docker logs <container>) and the haproxy container's log",
            ) from exc
        if died is not None:
            container = nodes[died]
            state = (
                f"status {container.status}, restarts {container.attrs.get('RestartCount', 0)}, "
                f"exit code {container.attrs['State']['ExitCode']}"
            )
            raise _failed_before(died, "HAProxy reported it UP", state, container)

    # -- down -------------------------------------------------------------------------------

    def containers(self) -> list[Container]:
        """Every container of this lab project, running or not."""
        return list(
            self.client.containers.list(
                all=True, filters={"label": f"{PROJECT_LABEL}={self.settings.project}"}
            )
        )

    def down(self, *, remove_dirs: bool = True) -> None:
        """Remove every container of the project (also ones renamed by an upgrade) and its directories."""
        errors = []
        for container in self.containers():
            try:
                container.remove(force=True, v=True)
            except NotFound:
                pass
            except APIError as exc:
                errors.append(f"{container.name}: {exc.explanation or exc}")
        if remove_dirs:
            for directory in (self.settings.config_dir, self.settings.state_dir):
                shutil.rmtree(directory, ignore_errors=True)
        if errors:
            raise LabError(
                f"could not remove every container of lab {self.settings.project}",
                observed="; ".join(errors),
                hint="remove them with docker rm -f",
            )

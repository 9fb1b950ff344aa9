"""Read compose/docker-compose.yml into service specs the Docker SDK can run.

Only the part of the compose format the lab's file uses is understood; any
other key is an error rather than silently ignored, so the file and the lab
cannot drift apart unnoticed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner.errors import LabError

DEFAULT_COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.yml"

SUPPORTED_KEYS = frozenset(
    {
        "image",
        "container_name",
        "network_mode",
        "restart",
        "user",
        "environment",
        "entrypoint",
        "command",
        "volumes",
        "depends_on",
        "stop_grace_period",
    }
)
CONDITIONS = frozenset({"service_started", "service_healthy", "service_completed_successfully"})

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_DURATION = re.compile(r"^(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


@dataclass(frozen=True)
class Mount:
    """A bind mount: host path (absolute) -> container path."""

    source: Path
    target: str
    read_only: bool


@dataclass(frozen=True)
class ServiceSpec:
    """One compose service, interpolated and with paths resolved."""

    name: str
    image: str
    container_name: str
    network_mode: str
    restart: str
    user: str | None
    environment: Mapping[str, str]
    entrypoint: tuple[str, ...] | None
    command: tuple[str, ...] | None
    mounts: tuple[Mount, ...]
    depends_on: Mapping[str, str]
    stop_grace_period_s: int | None

    @property
    def one_shot(self) -> bool:
        """A service that runs to completion (restart "no") rather than serving."""
        return self.restart == "no"


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's ${VAR} and ${VAR:-default}; $$ is a literal $."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name")
        value = variables.get(name)
        if value is None or (value == "" and match.group("default") is not None):
            default = match.group("default")
            if default is None:
                raise LabError(
                    f"compose file uses ${{{name}}} but it is not set",
                    hint=f"set {name} or give it a default in the compose file",
                )
            return default
        return value

    return _VARIABLE.sub(substitute, text)


def _interpolate_tree(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    return node


def _duration_s(value: str) -> int:
    match = _DURATION.match(value)
    if not value or match is None:
        raise LabError(f"unsupported duration in compose file: {value!r}", hint="write it as 35s or 1m30s")
    return int(match.group("m") or 0) * 60 + int(match.group("s") or 0)


def _argv(value: Any, service: str, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise LabError(f"service {service}: {key} must be a list of strings", observed=repr(value))


def _mount(entry: str, base: Path, service: str) -> Mount:
    parts = entry.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise LabError(f"service {service}: unsupported volume {entry!r}", hint="use HOST:CONTAINER[:ro]")
    source = Path(parts[0])
    if not source.is_absolute():
        source = (base / source).resolve()
    return Mount(source=source, target=parts[1], read_only=len(parts) == 3 and parts[2] == "ro")


def _depends_on(value: Any, service: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    result = {}
    for dependency, options in value.items():
        condition = (options or {}).get("condition", "service_started")
        if condition not in CONDITIONS:
            raise LabError(f"service {service}: unsupported depends_on condition {condition!r}")
        result[dependency] = condition
    return result


def _service(name: str, raw: Mapping[str, Any], base: Path) -> ServiceSpec:
    unknown = set(raw) - SUPPORTED_KEYS
    if unknown:
        raise LabError(
            f"service {name} uses compose keys the lab does not understand: {sorted(unknown)}",
            hint="teach runner/lab/compose.py the key, or leave it out of the compose file",
        )
    if raw.get("network_mode") != "host":
        raise LabError(
            f"service {name} is not on host networking",
            observed=f"network_mode: {raw.get('network_mode')!r}",
            hint="every lab service uses network_mode: host and binds 127.0.0.1",
        )
    environment = raw.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    grace = raw.get("stop_grace_period")
    return ServiceSpec(
        name=name,
        image=raw["image"],
        container_name=raw.get("container_name", name),
        network_mode="host",
        restart=str(raw.get("restart", "no")),
        user=raw.get("user"),
        environment={str(k): str(v) for k, v in environment.items()},
        entrypoint=_argv(raw.get("entrypoint"), name, "entrypoint"),
        command=_argv(raw.get("command"), name, "command"),
        mounts=tuple(_mount(entry, base, name) for entry in raw.get("volumes") or ()),
        depends_on=_depends_on(raw.get("depends_on"), name),
        stop_grace_period_s=_duration_s(grace) if grace else None,
    )


def load_services(variables: Mapping[str, str], path: Path = DEFAULT_COMPOSE_FILE) -> list[ServiceSpec]:
    """The file's services, interpolated with ``variables``, in an order that honours depends_on."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"cannot read the compose file {path}", observed=str(exc)) from exc
    raw_services = _interpolate_tree(document.get("services") or {}, variables)
    services = {name: _service(name, raw, path.parent) for name, raw in raw_services.items()}
    return start_order(services)


def start_order(services: Mapping[str, ServiceSpec]) -> list[ServiceSpec]:
    """A topological order of the services (dependencies first), stable by file order."""
    ordered: list[ServiceSpec] = []
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in done:
            return
        if name not in services:
            raise LabError(f"service {chain[-1]} depends on unknown service {name}")
        if name in visiting:
            raise LabError(
                "compose services depend on each other in a cycle",
                observed=" -> ".join((*chain, name)),
            )
        visiting.add(name)
        for dependency in services[name].depends_on:
            visit(dependency, (*chain, name))
        visiting.discard(name)
        done.add(name)
        ordered.append(services[name])

    for name in services:
        visit(name, ())
    return ordered

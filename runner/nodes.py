"""Replacing one node's container, and the gates the new one must pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from runner.config import NodeConfig
from runner.drivers.docker_engine import Engine
from runner.errors import DockerError, HealthError
from runner.swap import derive_blueprint
from runner.waits import NODE_HEALTHY, WaitTimeout, wait_until

DEFAULT_STOP_TIMEOUT_S = 10
VERSION_FROM_METADATA = ["python3", "-c", "import importlib.metadata as m; print(m.version('keystone'))"]


def swap_container(
    engine: Engine,
    node: NodeConfig,
    target_image: str,
    old_name: str,
    on_event: Callable[[str, dict[str, Any]], None],
) -> str:
    """Stop the node's container, keep it as ``old_name``, start its replacement on ``target_image``.

    Returns the new container's id. ``on_event`` hears "stopped", "renamed" and
    "started" as each is done (the journal records them for rollback).
    """
    old = engine.container(node.container)
    if old is None:
        raise DockerError(
            f"node {node.name}: container {node.container} disappeared", hint="look at the engine"
        )
    old_image = engine.image(old.image_id)
    if old_image is None:
        raise DockerError(
            f"node {node.name}: the image of {node.container} is gone", hint="look at the engine"
        )
    blueprint = derive_blueprint(old.inspect, old_image.inspect, target_image)
    stop_timeout = old.inspect["Config"].get("StopTimeout") or DEFAULT_STOP_TIMEOUT_S
    engine.stop(old.id, int(stop_timeout))
    on_event("stopped", {"container_id": old.id, "version": old.keystone_version})
    engine.rename(old.id, old_name)
    on_event("renamed", {"old_name": old_name, "container_id": old.id})
    new_id = engine.create_and_start(blueprint)
    on_event("started", {"container_id": new_id, "image": target_image})
    return new_id


def wait_healthy(http: requests.Session, node: NodeConfig, timeout_s: float) -> None:
    """Wait until the node answers its health URL with 200, or raise HealthError."""

    def probe() -> int:
        return http.get(node.health_url, timeout=5).status_code

    try:
        wait_until(NODE_HEALTHY.with_timeout(timeout_s), probe, lambda status: status == 200)
    except WaitTimeout as exc:
        raise HealthError(
            f"node {node.name} did not become healthy on the target release",
            observed=str(exc),
            hint="read the new container's log (docker logs); the node stays in MAINT",
        ) from exc


def running_version(engine: Engine, container: str) -> str | None:
    """The Keystone release installed in the running container, asked inside it.

    The package metadata answers in a tenth of a second; `keystone-manage
    --version` (a second: it imports all of Keystone) is the fallback for
    images whose python3 is not Keystone's.
    """
    for command in (VERSION_FROM_METADATA, ["keystone-manage", "--version"]):
        finished = engine.exec_output(container, command)
        lines = finished.output.strip().splitlines()
        if finished.exit_code == 0 and lines:
            return lines[-1].strip()
    return None

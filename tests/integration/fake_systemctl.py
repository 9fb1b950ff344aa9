#!/usr/bin/env python3
"""A stand-in for ``systemctl`` on a machine without systemd as PID 1, for kolla-ansible's container units.

It knows units named ``kolla-<container>-container.service``: such a unit is
loaded when its container is named in env FAKE_SYSTEMCTL_UNITS (comma-separated:
the unit files installed; a unit file does not go away while its container is
renamed mid-swap) or, without that variable, when the container exists on the
local engine. Its ExecStart is kolla's, ``/usr/bin/docker start -a <container>``.

    show --property=...   LoadState (loaded / not-found) and ExecStart, as systemd prints them
    stop UNIT             stops the container (kolla's ExecStop: docker stop NAME -t TIMEOUT)
    start UNIT            starts the container of that name (detached: the real ExecStart holds on with -a)
    is-active UNIT        active while the container runs, inactive otherwise

Restart=always is not emulated. Every call is appended as one JSON line to the
file env FAKE_SYSTEMCTL_LOG names: its argv, verb, unit, the container's id and
state before and after, and the wall-clock times it started and ended (so a
test can tell the engine's own events apart from what came through the unit).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

import docker
from docker.errors import NotFound

UNIT = re.compile(r"^kolla-(?P<container>.+)-container\.service$")
DEFAULT_STOP_TIMEOUT_S = 10
NOT_LOADED = 5  # systemctl's exit code for a unit it does not know
NOT_ACTIVE = 3  # systemctl is-active's exit code for a unit that does not run


def _state(client: docker.DockerClient, name: str) -> tuple[str | None, str]:
    """The container's id and status ("absent" when there is none)."""
    try:
        container = client.containers.get(name)
    except NotFound:
        return None, "absent"
    return container.id, container.status


def _loaded(client: docker.DockerClient, container: str) -> bool:
    listed = os.environ.get("FAKE_SYSTEMCTL_UNITS")
    if listed is not None:
        return container in [name.strip() for name in listed.split(",") if name.strip()]
    return _state(client, container)[1] != "absent"


def _show(unit: str, container: str | None, loaded: bool) -> int:
    if not loaded or container is None:
        print("LoadState=not-found\nExecStart=")
        return 0
    print("LoadState=loaded")
    print(
        f"ExecStart={{ path=/usr/bin/docker ; argv[]=/usr/bin/docker start -a {container} ; "
        "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"
    )
    return 0


def _act(client: docker.DockerClient, verb: str, unit: str, container: str | None, loaded: bool) -> int:
    if verb == "show":
        return _show(unit, container, loaded)
    if verb == "is-active":
        running = container is not None and _state(client, container)[1] == "running"
        print("active" if running else "inactive")
        return 0 if running else NOT_ACTIVE
    if not loaded or container is None:
        print(f"Failed to {verb} {unit}: Unit {unit} not found.", file=sys.stderr)
        return NOT_LOADED
    target = client.containers.get(container)
    if verb == "stop":
        timeout = target.attrs["Config"].get("StopTimeout") or DEFAULT_STOP_TIMEOUT_S
        target.stop(timeout=int(timeout))
        return 0
    if verb == "start":
        target.start()
        return 0
    print(f"fake systemctl: {verb} is not emulated", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    words = [word for word in argv if not word.startswith("-")]
    verb = words[0] if words else ""
    unit = words[1] if len(words) > 1 else ""
    matched = UNIT.match(unit)
    container = matched.group("container") if matched else None
    client = docker.from_env()
    try:
        record: dict[str, Any] = {"argv": argv, "verb": verb, "unit": unit, "started": time.time()}
        if container is not None:
            record["before_id"], record["before"] = _state(client, container)
        try:
            code = _act(client, verb, unit, container, container is not None and _loaded(client, container))
        except docker.errors.DockerException as exc:  # as systemd reports a failed ExecStart/ExecStop
            print(f"Job for {unit} failed: {exc}", file=sys.stderr)
            record["error"], code = str(exc), 1
        if container is not None:
            record["after_id"], record["after"] = _state(client, container)
        record["exit"] = code
        record["ended"] = time.time()
    finally:
        client.close()
    log = os.environ.get("FAKE_SYSTEMCTL_LOG")
    if log:
        # One write of one line, appended: calls from concurrent runs never interleave within a line.
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

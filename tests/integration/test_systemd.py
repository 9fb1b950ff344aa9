"""Nodes whose containers systemd units run (kolla-ansible) are swapped through their units, never past them.

systemd cannot run here (see the README), so ``fake_systemctl.py`` stands in for
``systemctl`` on the runner's PATH, stopping and starting the real containers.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from runner.model import KEYSTONE_VERSION_LABEL
from tests.integration.conftest import ClusterFactory
from tests.integration.upgrade_helpers import journal, keystone_upgrade, write_inventory

pytestmark = pytest.mark.integration

FAKE_SYSTEMCTL = Path(__file__).with_name("fake_systemctl.py")
# What the engine reports when a container is started or stopped, by whichever client.
LIFECYCLE = {"start": "start", "restart": "start", "kill": "stop", "die": "stop", "stop": "stop"}
# The engine stamps an event on this host's clock a moment after the call it answers has begun.
CLOCK_SLACK_S = 0.25


def _systemctl_first_on_path(directory: Path) -> dict[str, str]:
    """An environment whose ``systemctl`` is the fake, run by this test's Python (it imports docker)."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    systemctl = bin_dir / "systemctl"
    body = FAKE_SYSTEMCTL.read_text().split("\n", 1)[1]  # its own shebang replaced by the venv's python
    systemctl.write_text(f"#!{sys.executable}\n{body}")
    systemctl.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def _lifecycle_events(
    client: docker.DockerClient, names: set[str], since: float, until: float
) -> list[dict[str, Any]]:
    """Starts and stops the engine saw of containers named ``names`` (or kept under them) in the window.

    The engine's filter takes whole seconds: the lab's own starts just before ``since`` are left out here.
    """
    events = client.api.events(
        since=int(since) - 1, until=int(until) + 1, filters={"type": "container"}, decode=True
    )
    return [
        e
        for e in events
        if e.get("Action") in LIFECYCLE
        and e["timeNano"] / 1e9 >= since
        and any(
            e["Actor"]["Attributes"].get("name", "") == n
            or e["Actor"]["Attributes"].get("name", "").startswith(f"{n}-ku-old-")
            for n in names
        )
    ]


def test_nodes_run_by_systemd_units_are_stopped_and_started_through_their_units(
    cluster_factory: ClusterFactory, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    cluster = cluster_factory("28.1.0")
    containers = set(cluster.node_containers.values())
    calls_log = tmp_path / "systemctl.jsonl"
    env = _systemctl_first_on_path(tmp_path) | {
        "FAKE_SYSTEMCTL_LOG": str(calls_log),
        "FAKE_SYSTEMCTL_UNITS": ",".join(sorted(containers)),
    }
    inventory = write_inventory(cluster, "29.1.0")

    since = time.time()
    result = keystone_upgrade("upgrade", "-i", inventory, "--yes", env=env)
    until = time.time()
    assert result.returncode == 0, result.stdout + result.stderr

    calls = [json.loads(line) for line in calls_log.read_text().splitlines()]
    steps = {s["id"]: s for s in journal(cluster)["steps"]}
    for node, name in cluster.node_containers.items():
        unit = f"kolla-{name}-container.service"
        mine = [c for c in calls if c["unit"] == unit]
        verbs = [c["verb"] for c in mine]
        # Looked up, stopped once, started once: nothing else went through the unit.
        assert "show" in verbs, verbs
        assert verbs == ["show"] * (len(verbs) - 2) + ["stop", "start"], verbs
        assert all(c["exit"] == 0 for c in mine), mine
        stop, start = mine[-2], mine[-1]
        assert (stop["before"], stop["after"]) == ("running", "exited"), stop
        # The unit started the replacement the runner created (not started) under the node's name.
        assert (start["before"], start["after"]) == ("created", "running"), start
        assert start["before_id"] != stop["before_id"]

        container = docker_client.containers.get(name)
        assert container.id == start["after_id"]
        assert container.status == "running"
        assert container.image.labels[KEYSTONE_VERSION_LABEL] == "29.1.0"

        events = {e["event"]: e for e in steps[f"node:{node}"]["events"]}
        assert events["stopped"]["unit"] == unit
        assert events["started"]["unit"] == unit
        assert events["started"]["container_id"] == container.id

    # Every start and stop the engine saw of a node's containers happened inside a call to its unit:
    # the runner never stopped or started one through the Docker API.
    seen = _lifecycle_events(docker_client, containers, since, until)
    assert {e["Action"] for e in seen} >= {"start", "stop"}, seen
    for event in seen:
        at = event["timeNano"] / 1e9
        name = event["Actor"]["Attributes"]["name"].split("-ku-old-")[0]
        verb = LIFECYCLE[event["Action"]]
        assert any(
            c["unit"] == f"kolla-{name}-container.service"
            and c["verb"] == verb
            and c["started"] - CLOCK_SLACK_S <= at <= c["ended"] + CLOCK_SLACK_S
            for c in calls
        ), f"{event['Action']} of {event['Actor']['Attributes']['name']} at {at} came through no unit call"

"""Release paths against real clusters: two hops in one run, a SLURP skip, and the paths refused.

Each run sends the inventory's probe traffic (--probe) and its report is read
back: the probe runs across every hop and goes with the last hop's report.
"""

from __future__ import annotations

import json
from typing import Any

import docker
import pytest

from runner.errors import ExitCode
from runner.images.catalog import REPOSITORY
from runner.lab.cluster import LabEndpoints
from tests.integration.conftest import ClusterFactory
from tests.integration.throwaway import migration_heads
from tests.integration.upgrade_helpers import database, keystone_upgrade, write_inventory

pytestmark = pytest.mark.integration


def _image(release: str) -> str:
    return f"{REPOSITORY}/keystone:{release}"


def _path_inventory(cluster: LabEndpoints, *releases: str) -> Any:
    """The lab's inventory with [target] image as a list of releases (a path)."""
    images = ", ".join(f'"{_image(r)}"' for r in releases)
    return write_inventory(
        cluster, releases[-1], **{f'image = "{_image(releases[-1])}"': f"image = [{images}]"}
    )


def _releases(client: docker.DockerClient, cluster: LabEndpoints) -> set[str]:
    found = set()
    for container in cluster.node_containers.values():
        exit_code, output = client.containers.get(container).exec_run(["keystone-manage", "--version"])
        assert exit_code == 0
        found.add(output.decode().strip())
    return found


def _assert_probe_clean(report: dict[str, Any]) -> dict[str, Any]:
    probe = report["probe"]
    assert probe["requests"] > 300, probe
    assert probe["failed"] == 0, probe
    assert not probe["writes"]["lost"], probe["writes"]
    return probe


def test_two_hops_in_one_run_after_refusing_a_downgrade_and_hops_out_of_order(
    docker_client: docker.DockerClient, cluster_factory: ClusterFactory
) -> None:
    cluster = cluster_factory("27.1.0")

    downgrade = keystone_upgrade("plan", "-i", write_inventory(cluster, "23.0.2"))
    assert downgrade.returncode == ExitCode.PREFLIGHT, downgrade.stdout + downgrade.stderr
    assert "downgrade" in downgrade.stderr
    assert "rollback" in downgrade.stderr

    backwards = keystone_upgrade("plan", "-i", _path_inventory(cluster, "29.1.0", "28.1.0"))
    assert backwards.returncode == ExitCode.PREFLIGHT, backwards.stdout + backwards.stderr
    assert "oldest first (28.1.0 -> 29.1.0)" in backwards.stderr

    inventory = _path_inventory(cluster, "28.1.0", "29.1.0")
    planned = keystone_upgrade("plan", "-i", inventory, "--json")
    assert planned.returncode == 0, planned.stderr
    first = json.loads(planned.stdout)
    assert first["target_version"] == "28.1.0"
    assert any("release path 28.1.0 -> 29.1.0: this is hop 1 of 2" in n for n in first["notices"])

    result = keystone_upgrade("upgrade", "-i", inventory, "--yes", "--probe", "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["status"] == "succeeded"
    assert (report["source_versions"], report["target_version"]) == (["28.1.0"], "29.1.0")
    phases = {phase["phase"] for phase in report["probe"]["phases"]}
    assert {"28.1.0/node:keystone-1", "29.1.0/node:keystone-1", "29.1.0/contract"} <= phases
    _assert_probe_clean(report)
    assert _releases(docker_client, cluster) == {"29.1.0"}
    assert database(cluster).alembic_heads() == migration_heads(_image("29.1.0"))
    reports = sorted((cluster.state_dir / "upgrade").glob("report-*.json"))
    assert len(reports) == 2  # one per hop


def test_the_slurp_skip_from_2025_1_to_2026_1_rolls_with_both_releases_serving(
    docker_client: docker.DockerClient, cluster_factory: ClusterFactory
) -> None:
    cluster = cluster_factory("27.1.0")
    result = keystone_upgrade(
        "upgrade", "-i", write_inventory(cluster, "29.1.0"), "--yes", "--probe", "--json"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert (report["source_versions"], report["target_version"]) == (["27.1.0"], "29.1.0")
    probe = _assert_probe_clean(report)
    # keystone-1 ran 29.1.0 while keystone-2 and -3 still ran 27.1.0, under traffic.
    mixed = next(p for p in probe["phases"] if p["phase"] == "node:keystone-2")
    assert mixed["requests"] > 0
    assert mixed["failed"] == 0
    assert _releases(docker_client, cluster) == {"29.1.0"}
    print(  # the closing note's numbers, in the test log
        f"SLURP 27.1.0 -> 29.1.0: {probe['requests']} requests, {probe['failed']} failed, "
        f"longest outage {probe['longest_outage_s']}s"
    )

"""The foundation against real containers.

A lab cluster serves, and a throwaway target-release container sees what it must migrate.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from runner.drivers.haproxy import OperationalState
from runner.drivers.keystone import Credentials, KeystoneClient
from runner.errors import LabError
from runner.images.catalog import REPOSITORY
from runner.lab.cluster import Lab, LabEndpoints
from runner.lab.compose import ServiceSpec
from tests.integration.conftest import ClusterFactory
from tests.integration.throwaway import migration_heads, run_once
from tests.integration.upgrade_helpers import database, runtime

pytestmark = pytest.mark.integration


def _assert_serves(cluster: LabEndpoints) -> None:
    """A token issued through HAProxy validates on every node directly; HAProxy sees every node UP."""
    credentials = Credentials(cluster.admin_username, cluster.admin_password, cluster.admin_project)
    issued = KeystoneClient(cluster.lb_url).issue_token(credentials)
    assert issued.served_by in cluster.node_urls, f"X-Served-By names no node: {issued.served_by!r}"
    for name, url in cluster.node_urls.items():
        response = KeystoneClient(url).validate_token(issued.token, issued.token)
        assert response.status_code == 200, (
            f"{name} did not validate the token: {response.status_code} {response.text}"
        )
        assert response.json()["token"]["user"]["name"] == cluster.admin_username

    admin = runtime(cluster)
    assert admin.access_level() == "admin"
    for backend in cluster.backends:
        up = {s.server for s in admin.show_stat() if s.backend == backend and s.is_up}
        assert up == set(cluster.node_urls), f"{backend}: UP servers {sorted(up)}"
        states = [s for s in admin.show_servers_state() if s.backend == backend]
        assert {s.server for s in states} == set(cluster.node_urls)
        # STARTING: UP, still within its slowstart ramp (the lab's servers have one).
        serving = (OperationalState.RUNNING, OperationalState.STARTING)
        assert all(s.ready and s.operational in serving for s in states), states


def _assert_serves_and_sees_pending_migrations(cluster: LabEndpoints, release: str) -> None:
    _assert_serves(cluster)

    # The database carries exactly the schema heads of the release it was made with.
    assert database(cluster).alembic_heads() == migration_heads(f"{REPOSITORY}/keystone:{release}")

    # A throwaway 29.1.0 container on host networking, with the cluster's own
    # configuration, says there is work to do: exit code 2.
    check = run_once(f"{REPOSITORY}/keystone:29.1.0", ["keystone-manage", "db_sync", "--check"], cluster)
    assert check.exit_code == 2, check.output


def test_a_28_cluster_serves_and_the_target_release_sees_pending_migrations(
    cluster_factory: ClusterFactory,
) -> None:
    _assert_serves_and_sees_pending_migrations(cluster_factory("28.1.0"), "28.1.0")


def test_the_23_to_24_check_is_not_to_be_trusted_but_the_heads_are(
    cluster_factory: ClusterFactory,
) -> None:
    """24.1.0's `db_sync --check` says 0 on a 23.0.2 database that still needs its migrations.

    This is why preflight compares alembic heads with the target's
    EXPAND_HEAD and CONTRACT_HEAD instead of trusting the exit code.
    """
    cluster = cluster_factory("23.0.2")
    _assert_serves_and_sees_pending_migrations(cluster, "23.0.2")  # one 23.0.2 cluster for both
    target = f"{REPOSITORY}/keystone:24.1.0"
    check = run_once(target, ["keystone-manage", "db_sync", "--check"], cluster)
    assert check.exit_code == 0, check.output
    assert database(cluster).alembic_heads().isdisjoint(migration_heads(target))


def test_a_node_that_dies_while_the_lab_comes_up_fails_it_at_once_with_its_log(
    cluster_factory: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keystone-2 exits on start: lab up names it and its log instead of waiting out HAProxy's UP."""
    services = Lab.services

    def with_a_dying_node(lab: Lab) -> list[ServiceSpec]:
        return [
            dataclasses.replace(s, command=("sh", "-c", "echo dying on purpose; exit 3"))
            if s.name == "keystone-2"
            else s
            for s in services(lab)
        ]

    monkeypatch.setattr(Lab, "services", with_a_dying_node)
    with pytest.raises(LabError) as raised:
        cluster_factory("28.1.0")
    rendered = raised.value.render()
    assert "lab service keystone-2 failed before HAProxy reported it UP" in rendered
    # Caught restarted by its restart policy (running again, its exit code then 0), or exited.
    assert re.search(r"restarts [1-9]|status (exited|restarting)", rendered), rendered
    assert "dying on purpose" in rendered

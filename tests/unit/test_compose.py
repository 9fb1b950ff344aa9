"""Reading compose/docker-compose.yml: interpolation, order, and refusing what the lab does not understand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runner.errors import LabError
from runner.lab.cluster import Lab
from runner.lab.compose import interpolate, load_services
from runner.lab.settings import LabPorts, LabSecrets, LabSettings


def _settings(tmp_path: Path) -> LabSettings:
    return LabSettings(
        project="kuunit",
        keystone_version="29.1.0",
        ports=LabPorts.from_base(40000),
        secrets=LabSecrets.generate(),
        config_dir=tmp_path / "config",
        state_dir=tmp_path / "state",
    )


def test_interpolation_takes_values_defaults_and_literal_dollars() -> None:
    variables = {"A": "1", "EMPTY": ""}
    assert interpolate("${A}-${B:-2}-${EMPTY:-3}-$$HOME", variables) == "1-2-3-$HOME"


def test_a_variable_without_value_or_default_is_an_error() -> None:
    with pytest.raises(LabError, match=r"\$\{MISSING\}"):
        interpolate("${MISSING}", {})


def test_the_lab_file_starts_dependencies_first_with_this_clusters_values(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    services = load_services(settings.compose_environment())
    order = [s.name for s in services]
    assert order.index("mariadb") < order.index("bootstrap") < order.index("keystone-1")
    assert order.index("memcached") < order.index("keystone-1")
    by_name = {s.name: s for s in services}
    assert all(s.network_mode == "host" for s in services)
    assert by_name["keystone-2"].environment["KEYSTONE_BIND"] == "127.0.0.1:40012"
    assert by_name["keystone-2"].image == "keystone-upgrade/keystone:29.1.0"
    assert by_name["keystone-2"].container_name == "kuunit-keystone-2"
    assert by_name["keystone-2"].stop_grace_period_s == 35
    assert by_name["bootstrap"].one_shot
    assert by_name["keystone-1"].depends_on["bootstrap"] == "service_completed_successfully"
    mounts = {m.target: m for m in by_name["keystone-3"].mounts}
    assert mounts["/etc/keystone/keystone.conf"].source == settings.config_dir / "keystone.conf"
    assert mounts["/etc/keystone/keystone.conf"].read_only
    assert not mounts["/etc/keystone/fernet-keys"].read_only
    # $$ in the file reaches the container's shell as a single $.
    assert "$(cat" in by_name["bootstrap"].command[0]  # type: ignore[index]


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "docker-compose.yml"
    path.write_text(body)
    return path


def test_a_key_the_lab_does_not_understand_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "services:\n  x:\n    image: i\n    network_mode: host\n    ports: ['80:80']\n")
    with pytest.raises(LabError, match="ports"):
        load_services({}, path)


def test_a_service_off_host_networking_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "services:\n  x:\n    image: i\n")
    with pytest.raises(LabError, match="host networking"):
        load_services({}, path)


def test_a_dependency_cycle_is_refused(tmp_path: Path) -> None:
    body = (
        "services:\n"
        "  a: {image: i, network_mode: host, depends_on: [b]}\n"
        "  b: {image: i, network_mode: host, depends_on: [a]}\n"
    )
    with pytest.raises(LabError, match="cycle"):
        load_services({}, _write(tmp_path, body))


def test_a_lab_of_more_nodes_than_the_file_copies_the_first_with_one_worker_each(tmp_path: Path) -> None:
    settings = dataclasses.replace(_settings(tmp_path), ports=LabPorts.from_base(40000, node_count=5))
    services = Lab(settings, client=None).services()  # services() reads no engine
    nodes = {s.name: s for s in services if s.name.startswith("keystone-")}
    assert sorted(nodes) == [f"keystone-{i}" for i in range(1, 6)]
    assert nodes["keystone-5"].container_name == "kuunit-keystone-5"
    assert nodes["keystone-5"].environment["KEYSTONE_BIND"] == "127.0.0.1:40015"
    assert {s.environment["KEYSTONE_WORKERS"] for s in nodes.values()} == {"1"}
    # Three, as the file has them: untouched.
    three = {s.name: s for s in Lab(_settings(tmp_path), client=None).services()}
    assert "KEYSTONE_WORKERS" not in three["keystone-1"].environment

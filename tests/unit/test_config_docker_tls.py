"""A node's tcp:// engine over TLS: docker_tls_dir read from the inventory, checked, and given to the client."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest

from runner.config import load_inventory
from runner.drivers.docker_engine import DockerEngine
from runner.errors import ConfigError
from runner.model import NodeConfig, ServerRef
from tests.unit.test_inventory_malformed import GOOD

REMOTE = 'docker = "ssh://root@node2"'


def _certificate(directory: Path, name: str) -> None:
    """A self-signed certificate and its unencrypted key (the CA check only needs PEM that loads)."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(directory / f"{name}-key.pem"),
            "-out",
            str(directory / f"{name}.pem"),
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two certificates with their keys: "client" and "other"."""
    directory = tmp_path_factory.mktemp("certificates")
    _certificate(directory, "client")
    _certificate(directory, "other")
    return directory


def _tls_dir(where: Path, certificates: Path, key: str = "client-key.pem") -> Path:
    where.mkdir(parents=True)
    shutil.copy(certificates / "client.pem", where / "ca.pem")
    shutil.copy(certificates / "client.pem", where / "cert.pem")
    shutil.copy(certificates / key, where / "key.pem")
    return where


def _load(tmp_path: Path, node2: str) -> list[NodeConfig]:
    path = tmp_path / "inventory.toml"
    path.write_text(GOOD.replace(REMOTE, node2))
    return list(load_inventory(path).nodes)


def _problems(tmp_path: Path, node2: str) -> str:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, node2)
    return str(raised.value.observed)


def test_a_relative_tls_directory_is_taken_from_the_inventory_s(
    tmp_path: Path, certificates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tls_dir(tmp_path / "tls" / "node2", certificates)
    monkeypatch.chdir(tmp_path / "tls")
    nodes = _load(tmp_path, 'docker = "tcp://node2:2376"\ndocker_tls_dir = "tls/node2"')
    assert nodes[1].docker_tls_dir == str(tmp_path / "tls" / "node2")
    assert nodes[0].docker_tls_dir is None


def test_tls_for_an_engine_that_is_not_tcp_and_each_missing_file_are_one_error(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "cert.pem").write_text("")
    problems = _problems(tmp_path, f'{REMOTE}\ndocker_tls_dir = "tls"')
    assert (
        "[[nodes]] #2: 'docker_tls_dir' is only for a tcp:// engine; found string 'ssh://root@node2'"
        in problems
    )
    assert f"'docker_tls_dir' {tmp_path / 'tls'} has no ca.pem" in problems
    assert f"'docker_tls_dir' {tmp_path / 'tls'} has no key.pem" in problems
    assert "has no cert.pem" not in problems


def test_a_tls_directory_that_is_not_there(tmp_path: Path) -> None:
    problems = _problems(tmp_path, 'docker = "tcp://node2:2376"\ndocker_tls_dir = "nowhere"')
    assert f"[[nodes]] #2: 'docker_tls_dir' {tmp_path / 'nowhere'} is not a directory" in problems


def test_a_key_that_is_not_the_certificate_s_and_a_ca_that_is_not_pem(
    tmp_path: Path, certificates: Path
) -> None:
    tls = _tls_dir(tmp_path / "tls", certificates, key="other-key.pem")
    (tls / "ca.pem").write_text("not a certificate\n")
    problems = _problems(tmp_path, 'docker = "tcp://node2:2376"\ndocker_tls_dir = "tls"')
    assert f"'docker_tls_dir' {tls} ca.pem is not a readable PEM certificate bundle" in problems
    assert (
        f"'docker_tls_dir' {tls} cert.pem and key.pem are not a certificate and its unencrypted key"
        in problems
    )


def test_nodes_on_one_engine_agree_on_its_tls(tmp_path: Path, certificates: Path) -> None:
    _tls_dir(tmp_path / "a", certificates)
    _tls_dir(tmp_path / "b", certificates)
    path = tmp_path / "inventory.toml"
    text = GOOD.replace(REMOTE, 'docker = "tcp://node2:2376"\ndocker_tls_dir = "a"')
    text += '\n[[nodes]]\nname = "k3"\ncontainer = "keystone-3"\ndocker = "tcp://node2:2376"\n'
    text += 'docker_tls_dir = "b"\nhealth_url = "http://127.0.0.1:5003/v3"\n'
    text += 'servers = [{ backend = "keystone_back", server = "k3" }]\n'
    path.write_text(text)
    with pytest.raises(
        ConfigError, match="the nodes on engine tcp://node2:2376 give different docker_tls_dir"
    ):
        load_inventory(path)


def test_the_node_s_tls_directory_survives_the_journal_and_older_journals_still_load() -> None:
    node = NodeConfig("k2", "tcp://node2:2376", "keystone", "http://n2/v3", (ServerRef("b", "k2"),), "/tls")
    assert NodeConfig.from_dict(node.to_dict()) == node
    written_before = {key: value for key, value in node.to_dict().items() if key != "docker_tls_dir"}
    assert NodeConfig.from_dict(written_before).docker_tls_dir is None


def test_the_engine_client_verifies_the_engine_with_the_directory_s_files(
    tmp_path: Path, certificates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = _tls_dir(tmp_path / "tls", certificates)
    made: dict[str, Any] = {}
    monkeypatch.setattr(docker, "DockerClient", lambda **options: made.update(options) or object())
    DockerEngine("tcp://node2:2376", str(tls)).client  # noqa: B018 - made on first use
    config = made["tls"]
    assert made["base_url"] == "tcp://node2:2376"
    assert config.cert == (str(tls / "cert.pem"), str(tls / "key.pem"))
    assert (config.ca_cert, config.verify) == (str(tls / "ca.pem"), True)
    made.clear()
    DockerEngine("ssh://root@node2").client  # noqa: B018
    assert made["tls"] is False

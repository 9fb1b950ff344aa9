"""Loading the inventory: every problem at once, secrets never in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import load_inventory
from runner.credentials import database_target
from runner.errors import ConfigError, ExitCode

GOOD = """
[database]
host = "127.0.0.1"
port = 3306
user = "keystone"
name = "keystone"
password_env = "KU_TEST_DB_PASSWORD"

[target]
image = "keystone-upgrade/keystone:29.1.0"
backup_image = "keystone-upgrade/mariadb:10.11"
mounts = ["/etc/ks/keystone.conf:/etc/keystone/keystone.conf:ro", "/k/f:/etc/keystone/fernet-keys", "/k/c:/etc/keystone/credential-keys"]

[[haproxy]]
socket = "/run/haproxy/admin.sock"

[[haproxy]]
socket = "tcp:127.0.0.1:9999"

[[nodes]]
name = "k1"
container = "keystone-1"
health_url = "http://127.0.0.1:5001/v3"
servers = [{ backend = "keystone_internal_back", server = "k1" }, { backend = "keystone_external_back", server = "k1" }]

[[nodes]]
name = "k2"
docker = "ssh://root@node2"
container = "keystone"
health_url = "http://127.0.0.1:5002/v3"
servers = [{ backend = "keystone_internal_back", server = "k2" }]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return path


def test_a_good_inventory_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = load_inventory(_write(tmp_path, GOOD))
    assert [n.name for n in inventory.nodes] == ["k1", "k2"]
    assert inventory.nodes[0].engine == "local"
    assert inventory.nodes[1].engine == "ssh://root@node2"
    assert [str(s) for s in inventory.nodes[0].servers] == [
        "keystone_internal_back/k1",
        "keystone_external_back/k1",
    ]
    assert [str(a) for a in inventory.haproxy_sockets] == [
        "unix:/run/haproxy/admin.sock",
        "tcp:127.0.0.1:9999",
    ]
    assert inventory.mounts[0].read_only
    monkeypatch.setenv("KU_TEST_DB_PASSWORD", "s3cret")
    target = database_target(inventory.database)
    assert target.password == "s3cret"
    assert "s3cret" not in repr(target)


def test_every_problem_is_reported_at_once_with_the_config_exit_code(tmp_path: Path) -> None:
    bad = (
        GOOD.replace("port = 3306", 'port = "3306"')
        .replace('password_env = "KU_TEST_DB_PASSWORD"', 'password = "hunter2"')
        .replace('"/k/c:/etc/keystone/credential-keys"', '"rel/ative:/x"')
        .replace('docker = "ssh://root@node2"', 'docker = "ftp://node2"')
        .replace('name = "k2"', 'name = "k1"')
        .replace('socket = "tcp:127.0.0.1:9999"', 'socket = "nowhere"')
    )
    with pytest.raises(ConfigError) as raised:
        load_inventory(_write(tmp_path, bad))
    message = str(raised.value)
    assert raised.value.exit_code is ExitCode.CONFIG
    for problem in (
        "'port' must be a whole number from 1 to 65535; found string '3306'",
        "'password' is not accepted",
        "give exactly one of password_env and password_file",
        "the source must be an absolute host path or a volume name",
        "ftp://node2",
        "node name k1 appears twice",
        "not a runtime API address",
    ):
        assert problem in message, problem
    assert "hunter2" not in message


def test_a_missing_password_source_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KU_TEST_DB_PASSWORD", raising=False)
    inventory = load_inventory(_write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="KU_TEST_DB_PASSWORD is not set"):
        database_target(inventory.database)


def test_not_toml_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_inventory(_write(tmp_path, "[database\n"))


def test_relative_paths_are_taken_from_the_inventory_directory_not_the_working_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = (
        GOOD.replace('password_env = "KU_TEST_DB_PASSWORD"', 'password_file = "secrets/db-password"')
        + '\n[run]\nstate_dir = "state"\nbackup_dir = "../dumps"\n'
    )
    _write(tmp_path / "site", text)
    inventory = load_inventory(Path("../site/inventory.toml"))
    assert inventory.state_dir == tmp_path / "site" / "state"
    assert inventory.backup_dir == tmp_path / "site" / ".." / "dumps"
    assert inventory.database.password.file is not None
    assert inventory.database.password.file == str(tmp_path / "site" / "secrets" / "db-password")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["elsewhere", "inventory.toml", "site"]


def test_the_run_defaults_and_the_migration_timeout(tmp_path: Path) -> None:
    inventory = load_inventory(_write(tmp_path, GOOD))
    assert inventory.state_dir == tmp_path / "keystone-upgrade-state"
    assert inventory.backup_dir == tmp_path / "keystone-upgrade-state" / "backups"
    assert (inventory.drain_timeout_s, inventory.health_timeout_s, inventory.migration_timeout_s) == (
        120.0,
        180.0,
        3600.0,
    )
    longer = load_inventory(_write(tmp_path, GOOD + "\n[run]\nmigration_timeout_s = 604800\n"))
    assert longer.migration_timeout_s == 604800.0
    assert isinstance(longer.migration_timeout_s, float)


def test_an_haproxy_configuration_beside_its_socket_is_read_from_the_inventory_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "haproxy.cfg").write_text("global\n")
    given = GOOD.replace(
        'socket = "/run/haproxy/admin.sock"\n',
        'socket = "/run/haproxy/admin.sock"\nconfig = "haproxy.cfg"\n',
        1,
    )
    assert given != GOOD
    assert load_inventory(_write(tmp_path, given)).haproxy_configs == (str(tmp_path / "haproxy.cfg"),)
    missing = given.replace('config = "haproxy.cfg"', 'config = "elsewhere.cfg"')
    with pytest.raises(ConfigError, match="'config' is not a readable file"):
        load_inventory(_write(tmp_path, missing))


def test_target_configuration_for_every_node_and_one_node_s_own(tmp_path: Path) -> None:
    text = GOOD.replace(
        '[[haproxy]]\nsocket = "/run/haproxy/admin.sock"',
        'environment = { KEYSTONE_WORKERS = "4" }\nenvironment_remove = ["OLD"]\n'
        'migrations = "kolla"\n\n[[haproxy]]\nsocket = "/run/haproxy/admin.sock"',
        1,
    )
    text += '\n[nodes.target]\nmounts = ["keystone_logs:/var/log/kolla"]\nenvironment = { OLD = "back" }\n'
    inventory = load_inventory(_write(tmp_path, text))
    assert inventory.migrations == "kolla"
    last = inventory.nodes[-1].name
    assert inventory.target_config().environment == (("KEYSTONE_WORKERS", "4"),)
    own = inventory.target_config(last)
    assert own.environment == (("KEYSTONE_WORKERS", "4"), ("OLD", "back"))
    assert own.environment_remove == ()
    assert own.mounts[-1].is_volume
    assert len(own.mounts) == len(inventory.mounts) + 1

"""[database.tls]: read from the inventory, carried to PyMySQL, and no clear-text password without it.

The refusal is tested end to end against a few lines of fake MySQL server on a local socket:
it asks for ``mysql_clear_password`` and records every byte the client sends.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import certifi
import pymysql
import pytest
from pymysql.constants import CLIENT

from runner.config import load_inventory
from runner.credentials import admin_database_target, database_target
from runner.drivers import database as driver
from runner.drivers.backup import CA_IN_CONTAINER, _client_options, _mounts
from runner.drivers.database import MysqlDatabase, auth_plugin_map, tls_context
from runner.errors import ConfigError, DatabaseError
from runner.model import DatabaseTarget, DatabaseTls
from tests.unit.test_inventory_malformed import GOOD

PASSWORD = "correct-horse-battery"


def _load(tmp_path: Path, tls: str) -> DatabaseTls | None:
    path = tmp_path / "inventory.toml"
    path.write_text(GOOD + "\n" + tls)
    return load_inventory(path).database.tls


def test_no_tls_table_is_no_tls(tmp_path: Path) -> None:
    assert _load(tmp_path, "") is None


def test_a_relative_ca_file_is_taken_from_the_inventory_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(Path(certifi.where()).read_bytes())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    tls = _load(tmp_path, '[database.tls]\nca_file = "certs/ca.pem"\n')
    assert tls == DatabaseTls(ca_file=str(tmp_path / "certs" / "ca.pem"), verify=True)


def test_verify_false_without_a_ca_and_the_tls_reaches_both_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(
        GOOD
        + '\n[database.admin]\nuser = "root"\npassword_env = "KU_ROOT"\n\n[database.tls]\nverify = false\n'
    )
    inventory = load_inventory(path)
    monkeypatch.setenv("KU_TEST_DB_PASSWORD", PASSWORD)
    monkeypatch.setenv("KU_ROOT", PASSWORD)
    admin = admin_database_target(inventory.database)
    assert admin is not None
    assert database_target(inventory.database).tls == admin.tls == DatabaseTls(ca_file=None, verify=False)


def test_a_ca_file_that_is_not_pem_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="is not a readable PEM certificate bundle"):
        _load(tmp_path, '[database.tls]\nca_file = "ca.pem"\n')


def test_the_context_checks_certificate_and_host_unless_told_not_to() -> None:
    checked = tls_context(DatabaseTls(ca_file=certifi.where()))
    assert checked.verify_mode is ssl.CERT_REQUIRED
    assert checked.check_hostname
    unchecked = tls_context(DatabaseTls(verify=False))
    assert unchecked.verify_mode is ssl.CERT_NONE
    assert not unchecked.check_hostname


class _FakeConnection:
    """What PyMySQL hands an auth plugin handler: here only whether TLS is in use, and the exchange."""

    def __init__(self, secure: bool) -> None:
        self._secure = secure
        self.exchanged: list[bytes] = []

    def _process_auth(self, plugin: bytes, packet: Any) -> str:
        self.exchanged.append(plugin)
        return "ok"


@pytest.mark.parametrize("plugin", ["mysql_clear_password", "dialog"])
def test_clear_text_plugins_are_allowed_only_over_the_tls_the_inventory_asks_for(plugin: str) -> None:
    # Asked for and in use: PyMySQL's own exchange goes on.
    connection = _FakeConnection(secure=True)
    assert auth_plugin_map(DatabaseTls())[plugin](connection).authenticate(object()) == "ok"
    assert connection.exchanged == [plugin.encode()]
    # Asked for but not in use (an old PyMySQL that carried on without it): refused.
    with pytest.raises(driver.ClearTextRefused, match="sends the password in clear text"):
        auth_plugin_map(DatabaseTls())[plugin](_FakeConnection(secure=False)).authenticate(object())
    # Not asked for: refused even over TLS PyMySQL negotiated on its own (unverified, so no protection).
    with pytest.raises(driver.ClearTextRefused):
        auth_plugin_map(None)[plugin](_FakeConnection(secure=True)).authenticate(object())


# -- a fake server ---------------------------------------------------------------------------------------


def _packet(sequence: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


def _greeting() -> bytes:
    capabilities = (
        CLIENT.LONG_PASSWORD
        | CLIENT.PROTOCOL_41
        | CLIENT.SECURE_CONNECTION
        | CLIENT.PLUGIN_AUTH
        | CLIENT.CONNECT_WITH_DB
    )  # no CLIENT.SSL: this server offers no TLS
    salt = b"abcdefghijklmnopqrst"
    return (
        b"\x0a"
        + b"10.11.0-fake\x00"
        + (7).to_bytes(4, "little")
        + salt[:8]
        + b"\x00"
        + (capabilities & 0xFFFF).to_bytes(2, "little")
        + bytes([33])
        + (2).to_bytes(2, "little")
        + (capabilities >> 16).to_bytes(2, "little")
        + bytes([21])
        + b"\x00" * 10
        + salt[8:]
        + b"\x00"
        + b"mysql_native_password\x00"
    )


class FakeServer:
    """Greets, reads the client's answer, asks to switch to mysql_clear_password, records the rest."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.settimeout(5)
            connection.sendall(_packet(0, _greeting()))
            try:
                self.received += connection.recv(65536)
                if self.received:
                    connection.sendall(_packet(2, b"\xfemysql_clear_password\x00"))
                while chunk := connection.recv(65536):
                    self.received += chunk
            except OSError:
                pass

    def close(self) -> None:
        self.thread.join(timeout=10)
        self.listener.close()


def test_a_server_asking_for_the_clear_text_password_gets_nothing(tmp_path: Path) -> None:
    server = FakeServer()
    target = DatabaseTarget("127.0.0.1", server.port, "keystone", "keystone", PASSWORD)
    try:
        with pytest.raises(DatabaseError, match="refused to send the password in clear text") as raised:
            MysqlDatabase(target, connect_timeout_s=5).alembic_heads()
    finally:
        server.close()
    assert server.received  # the client did answer the greeting (with a hash, not the password)
    assert PASSWORD.encode() not in server.received
    assert "mysql_clear_password" in str(raised.value)
    assert "[database.tls]" in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_tls_asked_for_and_a_server_without_it_is_refused_before_any_password(tmp_path: Path) -> None:
    server = FakeServer()
    target = DatabaseTarget(
        "127.0.0.1", server.port, "keystone", "keystone", PASSWORD, DatabaseTls(verify=False)
    )
    try:
        with pytest.raises(DatabaseError, match=r"cannot connect to database keystone") as raised:
            MysqlDatabase(target, connect_timeout_s=5).alembic_heads()
    finally:
        server.close()
    assert b"keystone" not in server.received  # not even the user name went out in clear
    assert "the server offers TLS ([database.tls])" in str(raised.value)


class _Connected:
    def __init__(self, secure: bool) -> None:
        self._secure = secure
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_the_driver_hands_pymysql_the_context_and_the_guarded_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    connected = _Connected(secure=False)

    def connect(**kwargs: Any) -> _Connected:
        seen.update(kwargs)
        return connected

    monkeypatch.setattr(pymysql, "connect", connect)
    target = DatabaseTarget(
        "db", 3306, "keystone", "keystone", PASSWORD, DatabaseTls(ca_file=certifi.where())
    )
    # An old PyMySQL goes on in clear text when the server offers no TLS: the driver does not.
    with pytest.raises(DatabaseError, match="is not encrypted"):
        MysqlDatabase(target)._connect()
    assert connected.closed
    assert isinstance(seen["ssl"], ssl.SSLContext)
    assert seen["ssl"].check_hostname
    assert set(seen["auth_plugin_map"]) == {"mysql_clear_password", "dialog"}
    without = DatabaseTarget("db", 3306, "keystone", "keystone", PASSWORD)
    MysqlDatabase(without)._connect()
    assert seen["ssl"] is None


def test_the_backup_client_is_told_to_use_tls_as_the_runner_does() -> None:
    plain = DatabaseTarget("db", 3306, "keystone", "keystone", "pw")
    assert "ssl" not in _client_options(plain)
    verified = DatabaseTarget("db", 3306, "keystone", "keystone", "pw", DatabaseTls("/etc/ca.pem", True))
    options = _client_options(verified).splitlines()
    assert {"ssl", f"ssl-ca={CA_IN_CONTAINER}", "ssl-verify-server-cert"} <= set(options)
    assert [m.target for m in _mounts(Path("/backups"), verified)] == ["/backup", CA_IN_CONTAINER]
    unverified = DatabaseTarget("db", 3306, "keystone", "keystone", "pw", DatabaseTls(None, False))
    assert "ssl-verify-server-cert" not in _client_options(unverified)

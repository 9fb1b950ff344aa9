"""Every password an inventory names is checked at once, before anything is done; none is ever shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.config import load_inventory
from runner.credentials import check_secrets, database_target, read_secret, require_secrets
from runner.errors import ConfigError, ExitCode
from runner.model import Inventory, SecretSource
from tests.unit.test_inventory_malformed import GOOD

ADMIN = '\n[database.admin]\nuser = "root"\npassword_file = "secrets/root"\n'
SECRET = "s3cret-never-shown"


def _inventory(tmp_path: Path, extra: str = ADMIN) -> Inventory:
    path = tmp_path / "inventory.toml"
    path.write_text(GOOD + extra)
    return load_inventory(path)


def test_a_relative_password_file_is_taken_from_the_inventory_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "root").write_text(SECRET + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    inventory = _inventory(tmp_path)
    assert inventory.database.admin_password == SecretSource(None, str(tmp_path / "secrets" / "root"))
    monkeypatch.setenv("KU_TEST_DB_PASSWORD", SECRET)
    monkeypatch.setenv("KU_TEST_PROBE_PASSWORD", SECRET)
    assert check_secrets(inventory) == []
    require_secrets(inventory)


def test_every_missing_empty_or_unreadable_password_is_listed_and_none_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "root").write_text("\n")  # empty once its line end is taken off
    monkeypatch.delenv("KU_TEST_DB_PASSWORD", raising=False)
    monkeypatch.setenv("KU_TEST_PROBE_PASSWORD", "")
    inventory = _inventory(tmp_path)
    problems = check_secrets(inventory)
    assert problems == [
        "[database]: the database password is not available: environment variable KU_TEST_DB_PASSWORD "
        "is not set; export KU_TEST_DB_PASSWORD before running, or use database.password_file",
        f"[database.admin]: the database admin password is empty: {tmp_path / 'secrets' / 'root'} holds "
        f"nothing but line ends; write the password into {tmp_path / 'secrets' / 'root'}",
        "[probe]: the probe password is empty: environment variable KU_TEST_PROBE_PASSWORD is set to an "
        "empty string; export KU_TEST_PROBE_PASSWORD with the password",
    ]
    assert len(check_secrets(inventory, probe=False)) == 2
    with pytest.raises(ConfigError, match=r"3 password\(s\) the inventory") as raised:
        require_secrets(inventory)
    assert raised.value.exit_code is ExitCode.CONFIG


def test_a_secret_read_never_appears_in_what_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "root").write_text(SECRET)
    monkeypatch.setenv("KU_TEST_DB_PASSWORD", SECRET)
    monkeypatch.delenv("KU_TEST_PROBE_PASSWORD", raising=False)
    inventory = _inventory(tmp_path)
    problems = check_secrets(inventory)
    assert len(problems) == 1
    assert "KU_TEST_PROBE_PASSWORD is not set" in problems[0]
    assert SECRET not in "".join(problems)
    assert SECRET not in repr(database_target(inventory.database))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "No such file or directory"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b"x" * 5000, "more than 4096 characters: not a password file"),
    ],
)
def test_an_unusable_password_file_is_a_config_error(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "password"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=expected):
        read_secret(SecretSource(None, str(path)), "database password", "database")


def test_an_unreadable_password_file_is_a_config_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        directory = tmp_path / "directory"
        directory.mkdir()
        source = SecretSource(None, str(directory))  # root reads every file; a directory it cannot
    else:
        locked = tmp_path / "locked"
        locked.write_text(SECRET)
        locked.chmod(0)
        source = SecretSource(None, str(locked))
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret(source, "database password", "database")


def test_a_password_file_keeps_everything_but_its_line_end(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text(" spaced secret \r\n")
    assert read_secret(SecretSource(None, str(path)), "database password", "database") == " spaced secret "

"""Malformed inventories, as a new user writes them: each is one ConfigError (exit 3) that names the
problem, and nothing is created on disk.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runner.cli import run
from runner.config import load_inventory
from runner.errors import ConfigError, ExitCode

DATABASE = """[database]
host = "127.0.0.1"
port = 3306
user = "keystone"
name = "keystone"
password_env = "KU_TEST_DB_PASSWORD"
"""
TARGET = """[target]
image = "keystone-upgrade/keystone:29.1.0"
backup_image = "keystone-upgrade/mariadb:10.11"
mounts = ["/etc/ks/keystone.conf:/etc/keystone/keystone.conf:ro", "/k/f:/etc/keystone/fernet-keys", "/k/c:/etc/keystone/credential-keys"]
"""
HAPROXY = """[[haproxy]]
socket = "/run/haproxy/admin.sock"
"""
RUN = """[run]
state_dir = "state"
drain_timeout_s = 120
health_timeout_s = 180
migration_timeout_s = 3600
"""
PROBE = """[probe]
url = "http://127.0.0.1:5000"
username = "admin"
project = "admin"
password_env = "KU_TEST_PROBE_PASSWORD"
rate_per_s = 30
concurrency = 6
max_seconds = 1800
"""
NODES = """[[nodes]]
name = "k1"
container = "keystone-1"
health_url = "http://127.0.0.1:5001/v3"
servers = [{ backend = "keystone_back", server = "k1" }]

[[nodes]]
name = "k2"
docker = "ssh://root@node2"
container = "keystone"
health_url = "http://127.0.0.1:5002/v3"
servers = [{ backend = "keystone_back", server = "k2" }]
"""
GOOD = "\n".join((DATABASE, TARGET, HAPROXY, RUN, PROBE, NODES))
# A table added after the nodes (a new header ends the last [[nodes]] table).
FERNET_MOUNT = '"/k/f:/etc/keystone/fernet-keys"'


def edit(old: str, new: str) -> str:
    """GOOD with one exact piece of it replaced."""
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


def top(section: str, line: str) -> str:
    """GOOD with a section taken out and a top-level key (before any table header) put in its place."""
    assert GOOD.count(section) == 1, section
    return line + "\n" + GOOD.replace(section, "")


def plus(extra: str) -> str:
    """GOOD with a table (starting with its header) added at the end."""
    return GOOD + "\n" + extra


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    expected: str
    files: dict[str, str | bytes] = field(default_factory=dict)  # written next to the inventory first


CASES = [
    # [[haproxy]]: the issue's own example first.
    Case(
        "haproxy-strings",
        top(HAPROXY, 'haproxy = ["/run/haproxy/admin.sock"]'),
        "[[haproxy]] #1: must be a table; found string '/run/haproxy/admin.sock'",
    ),
    Case(
        "haproxy-under-target",
        edit(HAPROXY, 'haproxy = ["/run/haproxy/admin.sock"]\n'),
        "[target]: unknown key 'haproxy'; 'haproxy' is a table of its own",
    ),
    Case(
        "haproxy-string",
        top(HAPROXY, 'haproxy = "/run/haproxy/admin.sock"'),
        "[[haproxy]]: must be an array of tables",
    ),
    Case(
        "haproxy-single-table",
        edit(HAPROXY, '[haproxy]\nsocket = "/run/haproxy/admin.sock"\n'),
        "write [[haproxy]], not [haproxy]",
    ),
    Case("haproxy-empty", top(HAPROXY, "haproxy = []"), "[[haproxy]]: at least one is required"),
    Case("haproxy-missing", edit(HAPROXY, ""), "[[haproxy]]: at least one is required"),
    Case(
        "haproxy-mixed",
        top(HAPROXY, 'haproxy = [{ socket = "/a.sock" }, "/b.sock"]'),
        "[[haproxy]] #2: must be a table",
    ),
    Case(
        "socket-int",
        edit('socket = "/run/haproxy/admin.sock"', "socket = 9999"),
        "'socket' must be a string; found integer 9999",
    ),
    Case(
        "socket-table",
        edit('socket = "/run/haproxy/admin.sock"', 'socket = { path = "/x" }'),
        "'socket' must be a string; found table",
    ),
    Case(
        "socket-empty",
        edit('socket = "/run/haproxy/admin.sock"', 'socket = ""'),
        "'socket' must not be empty",
    ),
    Case(
        "socket-nowhere",
        edit('socket = "/run/haproxy/admin.sock"', 'socket = "nowhere"'),
        "not a runtime API address",
    ),
    Case(
        "socket-port-range",
        edit('socket = "/run/haproxy/admin.sock"', 'socket = "tcp:127.0.0.1:99999"'),
        "port from 1 to 65535",
    ),
    Case(
        "socket-port-zero",
        edit('socket = "/run/haproxy/admin.sock"', 'socket = "tcp:127.0.0.1:0"'),
        "port from 1 to 65535",
    ),
    Case(
        "socket-relative",
        edit('socket = "/run/haproxy/admin.sock"', 'socket = "unix:admin.sock"'),
        "must give an absolute unix socket path",
    ),
    Case(
        "socket-twice",
        edit(HAPROXY, HAPROXY + "\n" + HAPROXY.replace("/run/", "unix:/run/")),
        "runtime socket unix:/run/haproxy/admin.sock appears twice",
    ),
    Case(
        "haproxy-unknown-key",
        edit(HAPROXY, HAPROXY + 'level = "admin"\n'),
        "[[haproxy]] #1: unknown key 'level'",
    ),
    # [database]
    Case("database-missing", edit(DATABASE, ""), "[database]: the table is required"),
    Case(
        "database-string",
        top(DATABASE, 'database = "mysql://keystone@db/keystone"'),
        "[database]: must be a table",
    ),
    Case(
        "port-string",
        edit("port = 3306", 'port = "3306"'),
        "'port' must be a whole number from 1 to 65535; found string '3306'",
    ),
    Case(
        "port-zero",
        edit("port = 3306", "port = 0"),
        "'port' must be a whole number from 1 to 65535; found integer 0",
    ),
    Case("port-huge", edit("port = 3306", "port = 70000"), "found integer 70000"),
    Case("port-bool", edit("port = 3306", "port = true"), "found boolean True"),
    Case("port-float", edit("port = 3306", "port = 3306.0"), "found float 3306.0"),
    Case("port-nan", edit("port = 3306", "port = nan"), "found float nan"),
    Case("host-int", edit('host = "127.0.0.1"', "host = 127"), "'host' must be a string; found integer 127"),
    Case(
        "host-date",
        edit('host = "127.0.0.1"', "host = 1979-05-27"),
        "'host' must be a string; found date/time",
    ),
    Case("host-empty", edit('host = "127.0.0.1"', 'host = ""'), "'host' must not be empty"),
    Case(
        "host-with-port",
        edit('host = "127.0.0.1"', 'host = "db:3306"'),
        "without a port (the port has its own key)",
    ),
    Case("host-url", edit('host = "127.0.0.1"', 'host = "mysql://db"'), "no scheme, path or spaces"),
    Case(
        "host-nul",
        edit('host = "127.0.0.1"', 'host = "db\\u0000"'),
        "'host' must not hold control characters",
    ),
    Case("user-missing", edit('user = "keystone"\n', ""), "[database]: 'user' is required"),
    Case("name-spaces", edit('name = "keystone"', 'name = "key stone"'), "'name' must not hold spaces"),
    Case(
        "password-in-file",
        edit('password_env = "KU_TEST_DB_PASSWORD"', 'password = "hunter2"'),
        "'password' is not accepted in the file",
    ),
    Case(
        "password-both",
        edit('password_env = "KU_TEST_DB_PASSWORD"', 'password_env = "A"\npassword_file = "pw"'),
        "give exactly one of password_env and password_file; found both",
    ),
    Case(
        "password-neither",
        edit('password_env = "KU_TEST_DB_PASSWORD"\n', ""),
        "give exactly one of password_env and password_file; found neither",
    ),
    Case(
        "password-env-empty",
        edit('password_env = "KU_TEST_DB_PASSWORD"', 'password_env = ""'),
        "'password_env' must not be empty",
    ),
    Case(
        "password-env-bad-name",
        edit('password_env = "KU_TEST_DB_PASSWORD"', 'password_env = "DB-PASSWORD"'),
        "is not an environment variable name",
    ),
    Case(
        "password-env-int",
        edit('password_env = "KU_TEST_DB_PASSWORD"', "password_env = 5"),
        "'password_env' must be a string; found integer 5",
    ),
    Case(
        "password-file-list",
        edit('password_env = "KU_TEST_DB_PASSWORD"', 'password_file = ["pw"]'),
        "'password_file' must be a string; found array",
    ),
    Case(
        "database-unknown-key",
        edit('user = "keystone"', 'user = "keystone"\nsocket = "/run/mysqld.sock"'),
        "[database]: unknown key 'socket'",
    ),
    Case(
        "admin-string",
        edit(DATABASE, DATABASE + 'admin = "root"\n'),
        "[database.admin]: must be a table; found string 'root'",
    ),
    Case(
        "admin-unknown-key",
        plus('[database.admin]\nuser = "root"\npassword_env = "R"\nhost = "db2"\n'),
        "[database.admin]: unknown key 'host'",
    ),
    Case(
        "admin-no-user",
        plus('[database.admin]\npassword_env = "R"\n'),
        "[database.admin]: 'user' is required",
    ),
    Case(
        "admin-password",
        plus('[database.admin]\nuser = "root"\npassword = "hunter2"\n'),
        "[database.admin]: 'password' is not accepted in the file",
    ),
    Case(
        "tls-bool",
        edit(DATABASE, DATABASE + "tls = true\n"),
        "[database.tls]: must be a table; found boolean True",
    ),
    Case(
        "tls-ca-missing",
        plus('[database.tls]\nca_file = "ca.pem"\n'),
        "'ca_file' does not exist or is not a file",
    ),
    Case(
        "tls-ca-not-pem",
        plus('[database.tls]\nca_file = "ca.pem"\n'),
        "is not a readable PEM certificate bundle",
        {"ca.pem": "not a certificate\n"},
    ),
    Case("tls-ca-dir", plus('[database.tls]\nca_file = "."\n'), "'ca_file' does not exist or is not a file"),
    Case(
        "tls-verify-string",
        plus('[database.tls]\nverify = "yes"\n'),
        "'verify' must be true or false; found string 'yes'",
    ),
    Case(
        "tls-verify-int",
        plus("[database.tls]\nverify = 1\n"),
        "'verify' must be true or false; found integer 1",
    ),
    Case(
        "tls-unknown-key", plus("[database.tls]\nrequired = true\n"), "[database.tls]: unknown key 'required'"
    ),
    # [target]
    Case("target-missing", edit(TARGET, ""), "[target]: the table is required"),
    Case("target-array", top(TARGET, 'target = ["keystone:29"]'), "[target]: must be a table"),
    Case(
        "image-int",
        edit('image = "keystone-upgrade/keystone:29.1.0"', "image = 29"),
        "'image' must be a string; found integer 29",
    ),
    Case(
        "image-uppercase",
        edit('image = "keystone-upgrade/keystone:29.1.0"', 'image = "Keystone:29"'),
        "'image' is not an image reference",
    ),
    Case(
        "image-spaces",
        edit('image = "keystone-upgrade/keystone:29.1.0"', 'image = "keystone 29"'),
        "'image' is not an image reference",
    ),
    Case(
        "image-empty",
        edit('image = "keystone-upgrade/keystone:29.1.0"', 'image = " "'),
        "'image' must not be empty",
    ),
    Case(
        "backup-image-missing",
        edit('backup_image = "keystone-upgrade/mariadb:10.11"\n', ""),
        "[target]: 'backup_image' is required",
    ),
    Case(
        "mount-volume-name",
        edit(FERNET_MOUNT, '"-fernet:/etc/keystone/fernet-keys"'),
        "the source must be an absolute host path or a volume name",
    ),
    Case(
        "mounts-string",
        edit(TARGET.splitlines()[-1], 'mounts = "/k/f:/etc/keystone/fernet-keys"'),
        "'mounts' must be a non-empty array of strings; found string",
    ),
    Case(
        "mounts-empty",
        edit(TARGET.splitlines()[-1], "mounts = []"),
        "'mounts' must be a non-empty array of strings",
    ),
    Case("mounts-int", edit(FERNET_MOUNT, "5"), "'mounts' must hold only non-empty strings; found integer 5"),
    Case(
        "mounts-table",
        edit(FERNET_MOUNT, '{ source = "/k/f", target = "/etc/keystone/fernet-keys" }'),
        "'mounts' must hold only non-empty strings; found table",
    ),
    Case(
        "mount-relative",
        edit(FERNET_MOUNT, '"k/f:/etc/keystone/fernet-keys"'),
        "the source must be an absolute host path or a volume name",
    ),
    Case("mount-shape", edit(FERNET_MOUNT, '"/k/f"'), "is not SOURCE:TARGET[:ro|rw]"),
    Case(
        "mount-mode",
        edit(FERNET_MOUNT, '"/k/f:/etc/keystone/fernet-keys:rx"'),
        "is not SOURCE:TARGET[:ro|rw]",
    ),
    Case(
        "mount-twice",
        edit(FERNET_MOUNT, FERNET_MOUNT + ', "/k/g:/etc/keystone/fernet-keys"'),
        "mount target /etc/keystone/fernet-keys appears twice",
    ),
    Case(
        "key-repos-string",
        edit(TARGET, TARGET + 'key_repositories = "/etc/keystone/fernet-keys"\n'),
        "'key_repositories' must be a non-empty array of strings",
    ),
    Case(
        "key-repos-relative",
        edit(TARGET, TARGET + 'key_repositories = ["fernet-keys"]\n'),
        "key repositories must be absolute paths in the container",
    ),
    Case(
        "key-repos-int",
        edit(TARGET, TARGET + "key_repositories = [1]\n"),
        "'key_repositories' must hold only non-empty strings; found integer 1",
    ),
    Case(
        "key-repos-empty",
        edit(TARGET, TARGET + "key_repositories = []\n"),
        "'key_repositories' must be a non-empty array of strings",
    ),
    Case(
        "key-repos-twice",
        edit(
            TARGET, TARGET + 'key_repositories = ["/etc/keystone/fernet-keys", "/etc/keystone/fernet-keys"]\n'
        ),
        "key repository /etc/keystone/fernet-keys appears twice",
    ),
    Case(
        "environment-name",
        edit(TARGET, TARGET + 'environment = { "1BAD" = "x" }\n'),
        "environment: '1BAD' is not an environment variable name",
    ),
    Case("target-unknown-key", edit(TARGET, TARGET + 'tag = "29.1.0"\n'), "[target]: unknown key 'tag'"),
    # [[nodes]]
    Case("nodes-missing", edit(NODES, ""), "[[nodes]]: at least one is required"),
    Case(
        "nodes-strings",
        top(NODES, 'nodes = ["k1", "k2"]'),
        "[[nodes]] #1: must be a table; found string 'k1'",
    ),
    Case(
        "nodes-single-table",
        edit(NODES, NODES.split("\n\n", maxsplit=1)[0].replace("[[nodes]]", "[nodes]") + "\n"),
        "write [[nodes]], not [nodes]",
    ),
    Case("node-name-int", edit('name = "k1"', "name = 1"), "'name' must be a string; found integer 1"),
    Case(
        "node-container-spaces",
        edit('container = "keystone-1"', 'container = "keystone 1"'),
        "is not a Docker container name",
    ),
    Case(
        "node-health-no-scheme",
        edit('health_url = "http://127.0.0.1:5001/v3"', 'health_url = "127.0.0.1:5001/v3"'),
        "is not an http(s)://HOST[:PORT]/... URL",
    ),
    Case(
        "node-health-bad-ipv6",
        edit('health_url = "http://127.0.0.1:5001/v3"', 'health_url = "http://[::1/v3"'),
        "'health_url' is not a URL",
    ),
    Case(
        "node-health-port",
        edit('health_url = "http://127.0.0.1:5001/v3"', 'health_url = "http://127.0.0.1:99999/v3"'),
        "'health_url' is not a URL",
    ),
    Case(
        "node-docker-ftp",
        edit('docker = "ssh://root@node2"', 'docker = "ftp://node2"'),
        "is not local, unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST",
    ),
    Case(
        "node-docker-unix-relative",
        edit('docker = "ssh://root@node2"', 'docker = "unix://var/run/docker.sock"'),
        "is not local, unix:///PATH",
    ),
    Case(
        "node-docker-int",
        edit('docker = "ssh://root@node2"', "docker = 2375"),
        "'docker' must be a string; found integer 2375",
    ),
    Case(
        "node-servers-missing",
        edit('servers = [{ backend = "keystone_back", server = "k1" }]\n', ""),
        "'servers' must list at least one {backend, server} pair",
    ),
    Case(
        "node-servers-empty",
        edit('servers = [{ backend = "keystone_back", server = "k1" }]', "servers = []"),
        "'servers' must list at least one",
    ),
    Case(
        "node-servers-strings",
        edit('servers = [{ backend = "keystone_back", server = "k1" }]', 'servers = ["keystone_back/k1"]'),
        "server #1 must be a table; found string 'keystone_back/k1'",
    ),
    Case(
        "node-server-missing",
        edit('{ backend = "keystone_back", server = "k1" }', '{ backend = "keystone_back" }'),
        "server #1: 'server' is required",
    ),
    Case(
        "node-server-unknown-key",
        edit(
            '{ backend = "keystone_back", server = "k1" }',
            '{ backend = "keystone_back", server = "k1", weight = 10 }',
        ),
        "server #1: unknown key 'weight'",
    ),
    Case(
        "node-server-injection",
        edit('server = "k1" }', 'server = "k1 state maint" }'),
        "is not an HAProxy name",
    ),
    Case("node-names-twice", edit('name = "k2"', 'name = "k1"'), "node name k1 appears twice"),
    Case(
        "node-containers-twice",
        edit('container = "keystone"', 'container = "keystone-1"').replace(
            'docker = "ssh://root@node2"\n', ""
        ),
        "container keystone-1 on local appears twice",
    ),
    Case(
        "node-pairs-twice",
        edit('server = "k2" }', 'server = "k1" }'),
        "backend/server pair keystone_back/k1 appears twice",
    ),
    Case(
        "node-unknown-key",
        edit('name = "k1"', 'name = "k1"\nimage = "keystone:29"'),
        "[[nodes]] #1: unknown key 'image'",
    ),
    # [run]
    Case("run-string", top(RUN, 'run = "fast"'), "[run]: must be a table"),
    Case(
        "drain-nan",
        edit("drain_timeout_s = 120", "drain_timeout_s = nan"),
        "'drain_timeout_s' must be a positive number of seconds, at most 86400; found float nan",
    ),
    Case("drain-inf", edit("drain_timeout_s = 120", "drain_timeout_s = inf"), "found float inf"),
    Case("drain-negative", edit("drain_timeout_s = 120", "drain_timeout_s = -1"), "found integer -1"),
    Case(
        "drain-zero",
        edit("drain_timeout_s = 120", "drain_timeout_s = 0"),
        "'drain_timeout_s' must be a positive number",
    ),
    Case(
        "drain-huge-int",
        edit("drain_timeout_s = 120", "drain_timeout_s = 99999999999999999999999"),
        "integer of 23 digits",
    ),
    Case(
        "health-huge",
        edit("health_timeout_s = 180", "health_timeout_s = 1e12"),
        "'health_timeout_s' must be a positive number of seconds, at most 86400",
    ),
    Case("health-bool", edit("health_timeout_s = 180", "health_timeout_s = true"), "found boolean True"),
    Case("health-string", edit("health_timeout_s = 180", 'health_timeout_s = "180"'), "found string '180'"),
    Case(
        "migration-zero",
        edit("migration_timeout_s = 3600", "migration_timeout_s = 0"),
        "'migration_timeout_s' must be a positive number of seconds, at most 604800",
    ),
    Case(
        "migration-over-a-week",
        edit("migration_timeout_s = 3600", "migration_timeout_s = 604801"),
        "at most 604800",
    ),
    Case(
        "migration-minus-inf",
        edit("migration_timeout_s = 3600", "migration_timeout_s = -inf"),
        "found float -inf",
    ),
    Case("state-dir-empty", edit('state_dir = "state"', 'state_dir = ""'), "'state_dir' must not be empty"),
    Case(
        "state-dir-int",
        edit('state_dir = "state"', "state_dir = 5"),
        "'state_dir' must be a string; found integer 5",
    ),
    Case(
        "state-dir-a-file",
        edit('state_dir = "state"', 'state_dir = "inventory.toml"'),
        "exists and is not a directory",
    ),
    Case(
        "backup-dir-table",
        edit('state_dir = "state"', 'state_dir = "state"\nbackup_dir = { path = "b" }'),
        "'backup_dir' must be a string; found table",
    ),
    Case(
        "run-unknown-key",
        edit("drain_timeout_s = 120", "drain_timeout = 120"),
        "[run]: unknown key 'drain_timeout'",
    ),
    # [probe]: the concurrency 0 (sends nothing, reports 0 failed).
    Case("probe-string", top(PROBE, 'probe = "http://127.0.0.1:5000"'), "[probe]: must be a table"),
    Case(
        "probe-concurrency-zero",
        edit("concurrency = 6", "concurrency = 0"),
        "'concurrency' must be a whole number from 1 to 256; found integer 0",
    ),
    Case("probe-concurrency-float", edit("concurrency = 6", "concurrency = 2.5"), "found float 2.5"),
    Case("probe-concurrency-huge", edit("concurrency = 6", "concurrency = 100000"), "from 1 to 256"),
    Case(
        "probe-rate-nan",
        edit("rate_per_s = 30", "rate_per_s = nan"),
        "'rate_per_s' must be a positive number of requests a second, at most 1000",
    ),
    Case(
        "probe-rate-zero", edit("rate_per_s = 30", "rate_per_s = 0"), "'rate_per_s' must be a positive number"
    ),
    Case("probe-rate-huge", edit("rate_per_s = 30", "rate_per_s = 1e9"), "at most 1000"),
    Case(
        "probe-seconds-inf",
        edit("max_seconds = 1800", "max_seconds = inf"),
        "'max_seconds' must be a positive number of seconds, at most 86400",
    ),
    Case(
        "probe-url-no-scheme",
        edit('url = "http://127.0.0.1:5000"', 'url = "127.0.0.1:5000"'),
        "'url' is not an http(s)://HOST[:PORT]/... URL",
    ),
    Case("probe-url-missing", edit('url = "http://127.0.0.1:5000"\n', ""), "[probe]: 'url' is required"),
    Case("probe-username-empty", edit('username = "admin"', 'username = ""'), "'username' must not be empty"),
    Case(
        "probe-domain-int",
        edit('project = "admin"', 'project = "admin"\ndomain = 5'),
        "'domain' must be a string; found integer 5",
    ),
    Case(
        "probe-password-neither",
        edit('password_env = "KU_TEST_PROBE_PASSWORD"\n', ""),
        "[probe]: give exactly one of password_env and password_file",
    ),
    Case(
        "probe-unknown-key",
        edit("rate_per_s = 30", "rate_per_s = 30\ninterval_s = 1"),
        "[probe]: unknown key 'interval_s'",
    ),
    # The file as a whole.
    Case("top-unknown-key", plus("[haproxys]\nsocket = '/x'\n"), "inventory: unknown key 'haproxys'"),
    Case("not-toml", GOOD + "\n[database\n", "is not valid TOML"),
    Case("duplicate-table", GOOD + "\n" + DATABASE, "is not valid TOML"),
    Case("too-many-digits", edit("port = 3306", "port = " + "9" * 5000), "is not valid TOML"),
    Case("nested-too-deep", "x = " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    Case("empty-file", "", "[database]: the table is required"),
    Case("not-an-inventory", 'title = "TOML Example"\n', "inventory: unknown key 'title'"),
]


def _tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_malformed_inventory_is_one_clear_error_and_creates_nothing(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, content in case.files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    path = tmp_path / "inventory.toml"
    path.write_text(case.text)
    before = _tree(tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_inventory(path)
    message = str(raised.value)
    assert raised.value.exit_code is ExitCode.CONFIG
    assert case.expected in message, message
    assert "hunter2" not in message  # a password written into the file is never echoed
    assert _tree(tmp_path) == before


def test_the_cases_are_many_and_distinct() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.text for c in CASES if not c.files}) == len([c for c in CASES if not c.files])


def test_the_good_inventory_they_start_from_loads(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(GOOD)
    inventory = load_inventory(path)
    assert [n.name for n in inventory.nodes] == ["k1", "k2"]
    assert inventory.probe is not None
    assert inventory.probe.concurrency == 6
    assert list(tmp_path.iterdir()) == [path]


def test_a_file_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_bytes(b"\xff\xfe[database]\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_inventory(path)


@pytest.mark.parametrize("name", ["missing.toml", "."])
def test_an_inventory_that_cannot_be_read_is_one_clear_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="cannot read the inventory") as raised:
        load_inventory(tmp_path / name)
    assert raised.value.exit_code is ExitCode.CONFIG
    assert list(tmp_path.iterdir()) == []


def test_every_problem_of_a_bad_file_is_listed_at_once(tmp_path: Path) -> None:
    text = (
        edit("port = 3306", "port = nan")
        .replace('haproxy]]\nsocket = "/run/haproxy/admin.sock"', 'haproxy]]\nsocket = "nowhere"')
        .replace("concurrency = 6", "concurrency = 0")
        .replace("drain_timeout_s = 120", "drain_timeout_s = inf")
    )
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_inventory(path)
    message = str(raised.value)
    assert "has 4 problem(s)" in message
    for where in (
        "[database]: 'port'",
        "[[haproxy]] #1: 'socket'",
        "[probe]: 'concurrency'",
        "[run]: 'drain_timeout_s'",
    ):
        assert where in message


def test_the_command_line_says_it_once_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(top(HAPROXY, 'haproxy = ["/run/haproxy/admin.sock"]'))
    monkeypatch.setattr(sys, "argv", ["keystone-upgrade", "plan", "-i", str(path)])
    with pytest.raises(SystemExit) as exited:
        run()  # fails at the inventory, before anything connects to anything
    assert exited.value.code == ExitCode.CONFIG
    stderr = capsys.readouterr().err
    assert stderr.startswith(f"error: the inventory {path} has 1 problem(s); nothing was touched")
    assert "[[haproxy]] #1: must be a table; found string '/run/haproxy/admin.sock'" in stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == [path]

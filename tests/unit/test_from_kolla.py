"""`inventory from-kolla`: a kolla-ansible inventory and globals.yml become an inventory that loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.config import load_inventory
from runner.config.ansible_inventory import expand_range, parse_inventory
from runner.config.kolla import (
    Generated,
    KollaOptions,
    inventory_from_kolla,
    inventory_from_kolla_files,
)
from runner.errors import ConfigError, ExitCode
from runner.model import Inventory

DATA = Path(__file__).resolve().parents[1] / "data" / "kolla"
MULTINODE = (DATA / "multinode").read_text()
GLOBALS = (DATA / "globals.yml").read_text()
TARGET = "quay.io/openstack.kolla/keystone:2025.1-ubuntu-noble"
SOCKET_IN_VOLUME = "/var/lib/docker/volumes/haproxy_socket/_data/haproxy.sock"

# Several Keystone containers on one test machine: the per-host overrides.
ONE_MACHINE = """
[control]
keystone-1 ansible_connection=local keystone_container_name=keystone-1 keystone_public_listen_port=25011
keystone-2 ansible_connection=local keystone_container_name=keystone-2 keystone_public_listen_port=25012
keystone-3 ansible_host=127.0.0.1 keystone_container_name=keystone-3 keystone_public_listen_port=25013

[control:vars]
api_interface_address=127.0.0.1

[lb]
localhost

[loadbalancer:children]
lb

[keystone:children]
control
"""


def _generate(inventory: str = MULTINODE, kolla_globals: str = GLOBALS, **options: object) -> Generated:
    return inventory_from_kolla(
        inventory,
        "multinode",
        kolla_globals,
        "globals.yml",
        KollaOptions(TARGET, **options),  # type: ignore[arg-type]
    )


def _load(tmp_path: Path, generated: Generated) -> Inventory:
    """The generated TOML as the runner loads it, with the password file it names in place."""
    (tmp_path / "db-password").write_text("not-read-here\n")
    path = tmp_path / "inventory.toml"
    path.write_text(generated.toml)
    return load_inventory(path)


def test_the_multinode_sample_loads_with_every_keystone_host_as_a_node(tmp_path: Path) -> None:
    generated = _generate(db_password_file="db-password")
    inventory = _load(tmp_path, generated)
    assert [(n.name, n.container, n.engine, n.health_url) for n in inventory.nodes] == [
        ("control01", "keystone", "ssh://kolla@10.0.0.11", "http://10.0.0.11:5000/v3"),
        ("control02", "keystone", "ssh://kolla@10.0.0.12", "http://10.0.0.12:5000/v3"),
        # api_interface_address wins over ansible_host
        ("control03", "keystone", "ssh://kolla@10.0.0.13", "http://10.1.0.13:5000/v3"),
    ]
    # The external VIP differs from the internal one: both frontends, servers named by host.
    assert [str(s) for s in inventory.nodes[0].servers] == [
        "keystone_internal_back/control01",
        "keystone_external_back/control01",
    ]
    # The loadbalancer group (network01, network02) is remote: each socket forwarded to its own path.
    assert [str(s) for s in inventory.haproxy_sockets] == [
        "unix:/run/keystone-upgrade/haproxy-network01.sock",
        "unix:/run/keystone-upgrade/haproxy-network02.sock",
    ]
    assert (
        f"-L /run/keystone-upgrade/haproxy-network02.sock:{SOCKET_IN_VOLUME} root@10.0.0.22" in generated.toml
    )
    assert "-p 2222" in generated.toml
    database = inventory.database
    assert (database.host, database.port, database.user, database.name) == (
        "10.0.0.10",
        3306,
        "keystone",
        "keystone",
    )
    assert database.password.file == str(tmp_path / "db-password")
    assert inventory.target_image == TARGET
    assert inventory.backup_image == "keystone-upgrade/mariadb:10.11"
    assert inventory.migrations == "kolla"
    assert inventory.key_repositories == ("/etc/keystone/fernet-keys",)
    assert generated.warnings == ()  # the sample sets haproxy_socket_level_admin: true


def test_the_files_are_read_and_the_password_file_defaults_to_etc(tmp_path: Path) -> None:
    generated = inventory_from_kolla_files(DATA / "multinode", DATA / "globals.yml", KollaOptions(TARGET))
    assert 'password_file = "/etc/keystone-upgrade/db-password"' in generated.toml
    assert f"#   {DATA / 'multinode'}" in generated.toml


@pytest.mark.parametrize(
    ("vips", "backends"),
    [
        ('kolla_internal_vip_address: "10.0.0.10"\nkolla_external_vip_address: "10.0.0.10"\n', 1),
        ('kolla_internal_vip_address: "10.0.0.10"\n', 1),
        (
            'kolla_internal_vip_address: "10.0.0.10"\nkolla_external_vip_address: "{{ kolla_internal_vip_address }}"\n',
            1,
        ),
        ('kolla_internal_vip_address: "10.0.0.10"\nkolla_external_vip_address: "203.0.113.10"\n', 2),
        ('kolla_internal_vip_address: "10.0.0.10"\nhaproxy_enable_external_vip: "yes"\n', 2),
        ('kolla_internal_vip_address: "10.0.0.10"\nhaproxy_single_external_frontend: true\n', 2),
        (
            'kolla_internal_vip_address: "10.0.0.10"\nkolla_external_vip_address: "203.0.113.10"\nhaproxy_enable_external_vip: no\n',
            1,
        ),
    ],
)
def test_the_external_backend_only_where_kolla_makes_one(tmp_path: Path, vips: str, backends: int) -> None:
    inventory = _load(
        tmp_path,
        _generate(kolla_globals=vips + "haproxy_socket_level_admin: yes\n", db_password_file="db-password"),
    )
    assert [s.backend for s in inventory.nodes[0].servers] == [
        "keystone_internal_back",
        "keystone_external_back",
    ][:backends]


def test_without_level_admin_a_warning_and_a_comment_say_to_set_it() -> None:
    generated = _generate(kolla_globals='kolla_internal_vip_address: "10.0.0.10"\n')
    assert len(generated.warnings) == 1
    assert "haproxy_socket_level_admin: true" in generated.warnings[0]
    assert "kolla-ansible reconfigure --tags loadbalancer" in generated.warnings[0]
    assert "# haproxy_socket_level_admin is not true in globals.yml" in generated.toml
    # Kolla's default follows enable_letsencrypt
    with_letsencrypt = _generate(
        kolla_globals='kolla_internal_vip_address: "10.0.0.10"\nenable_letsencrypt: true\n'
    )
    assert with_letsencrypt.warnings == ()


def test_overrides_describe_several_keystones_on_one_machine(tmp_path: Path) -> None:
    kolla_globals = 'kolla_internal_vip_address: "127.0.0.1"\nhaproxy_socket_level_admin: true\n'
    generated = _generate(ONE_MACHINE, kolla_globals, db_password_file="db-password")
    inventory = _load(tmp_path, generated)
    assert [(n.name, n.container, n.engine, n.health_url) for n in inventory.nodes] == [
        ("keystone-1", "keystone-1", "local", "http://127.0.0.1:25011/v3"),
        ("keystone-2", "keystone-2", "local", "http://127.0.0.1:25012/v3"),
        ("keystone-3", "keystone-3", "local", "http://127.0.0.1:25013/v3"),
    ]
    # The load balancer is this machine (named localhost): its socket in the named volume, as it is.
    assert [str(s) for s in inventory.haproxy_sockets] == [f"unix:{SOCKET_IN_VOLUME}"]


def test_the_docker_override_and_the_socket_option_replace_the_computed_ones(tmp_path: Path) -> None:
    inventory_text = MULTINODE.replace(
        "control02 ansible_host=10.0.0.12 ansible_user=kolla",
        "control02 ansible_host=10.0.0.12 ansible_user=kolla keystone_upgrade_docker=tcp://10.0.0.12:2376",
    )
    generated = _generate(
        inventory_text,
        haproxy_sockets=("/run/haproxy/admin.sock", "tcp:10.0.0.21:9999"),
        db_password_file="db-password",
        state_dir="state",
    )
    inventory = _load(tmp_path, generated)
    assert inventory.nodes[1].engine == "tcp://10.0.0.12:2376"
    assert [str(s) for s in inventory.haproxy_sockets] == [
        "unix:/run/haproxy/admin.sock",
        "tcp:10.0.0.21:9999",
    ]
    assert inventory.state_dir == tmp_path / "state"
    assert "/run/keystone-upgrade" not in generated.toml


def test_globals_win_over_host_variables_as_with_ansible_extra_vars(tmp_path: Path) -> None:
    generated = _generate(
        kolla_globals=GLOBALS + 'keystone_public_listen_port: "5050"\ndatabase_address: "10.0.0.30"\n',
        db_password_file="db-password",
    )
    inventory = _load(tmp_path, generated)
    assert {n.health_url.rsplit(":", 1)[1] for n in inventory.nodes} == {"5050/v3"}
    assert inventory.database.host == "10.0.0.30"


def test_group_variables_merge_outer_to_inner_then_the_host_line() -> None:
    ansible = parse_inventory(
        "[all:vars]\nport=1\nuser=all\n[outer:children]\ninner\n[outer:vars]\nport=2\n"
        "[inner]\nh1 port=4\nh2\n[inner:vars]\nport=3\nuser='in ner'\n",
        "inv",
    )
    assert ansible.variables("h1") == {"port": "4", "user": "in ner"}
    assert ansible.variables("h2") == {"port": "3", "user": "in ner"}
    assert ansible.hosts_of("outer") == ("h1", "h2")


@pytest.mark.parametrize(
    ("pattern", "hosts"),
    [
        ("control[01:03]", ["control01", "control02", "control03"]),
        ("node-[a:c]", ["node-a", "node-b", "node-c"]),
        ("web[1:9:4]", ["web1", "web5", "web9"]),
        ("r[1:2]n[a:b]", ["r1na", "r1nb", "r2na", "r2nb"]),
        ("plain", ["plain"]),
    ],
)
def test_host_ranges_expand_as_ansible_expands_them(pattern: str, hosts: list[str]) -> None:
    assert expand_range(pattern, "inv line 1") == hosts


def test_a_ranged_control_group_gives_three_nodes(tmp_path: Path) -> None:
    inventory_text = "[control]\ncontrol[01:03] ansible_user=kolla\n[keystone:children]\ncontrol\n[loadbalancer:children]\ncontrol\n"
    inventory = _load(tmp_path, _generate(inventory_text, db_password_file="db-password"))
    assert [(n.name, n.engine) for n in inventory.nodes] == [
        ("control01", "ssh://kolla@control01"),
        ("control02", "ssh://kolla@control02"),
        ("control03", "ssh://kolla@control03"),
    ]
    assert len(inventory.haproxy_sockets) == 3


@pytest.mark.parametrize(
    "pattern", ["c[3:1]", "c[01:3]", "c[1:]", "c[a:3]", "c[1:3", "c[1:3:0]", "c[1:99999999]"]
)
def test_a_bad_host_range_is_refused_with_its_line(pattern: str) -> None:
    with pytest.raises(ConfigError, match=r"multinode line 2") as caught:
        _generate(f"[control]\n{pattern}\n[keystone:children]\ncontrol\n")
    assert caught.value.hint


@pytest.mark.parametrize(
    ("inventory_text", "kolla_globals", "expected"),
    [
        ("[control]\nc1\n", GLOBALS, r"has no \[keystone\] group"),
        (
            "[control]\nc1\n[keystone:children]\ncontrol\n[keystone:children]\nempty\n",
            GLOBALS,
            r"has no \[loadbalancer\]",
        ),
        ("[keystone]\n[loadbalancer]\nlb\n", GLOBALS, r"\[keystone\] group .* has no hosts"),
        ("[keystone:children]\nnowhere\n", GLOBALS, r"\[keystone\] group .* has no hosts"),
        ("[keystone]\nc1 ansible_host\n", GLOBALS, r"line 2: 'ansible_host' after host c1 is not a variable"),
        ("[keystone:vars]\nno equals here\n", GLOBALS, r"line 2: .* is not a variable"),
        ("[keystone:hosts]\n", GLOBALS, r"line 1: .* is not a section header"),
        ("[a:children]\nb\n[b:children]\na\n[keystone]\nk\n", GLOBALS, r"nests group a inside itself"),
        (MULTINODE, "- a\n- list\n", r"is not a mapping of variables"),
        (MULTINODE, "key: [unclosed\n", r"is not valid YAML"),
        (MULTINODE, "haproxy_socket_level_admin: true\n", r"no usable database address"),
        (MULTINODE, "kolla_internal_vip_address: \"{{ lookup('env', 'VIP') }}\"\n", r"Jinja expression"),
        (MULTINODE, GLOBALS + 'kolla_container_engine: "podman"\n', r"drives Docker engines"),
        (MULTINODE, GLOBALS + "enable_keystone: no\n", r"runs no Keystone"),
        (MULTINODE, GLOBALS + "enable_haproxy: no\n", r"no HAProxy to drain"),
        (MULTINODE, GLOBALS + "haproxy_socket_level_admin: maybe\n", r"is not a boolean"),
        (MULTINODE, GLOBALS + "database_port: 0\n", r"database_port '0' is not a port"),
        (
            "[keystone]\nk1 ansible_connection=local\nk2 ansible_connection=local keystone_public_listen_port=5001\n",
            GLOBALS,
            r"hosts k1 and k2 have the same container",
        ),
        (
            "[keystone]\nk1 keystone_container_name=k1 ansible_host=10.0.0.1\nk2 keystone_container_name=k2 ansible_host=10.0.0.1\n",
            GLOBALS,
            r"hosts k1 and k2 have the same health URL",
        ),
        ("[keystone]\nk1 keystone_container_name=-bad\n", GLOBALS, r"Keystone host k1 cannot be described"),
        ("[keystone]\nk1 keystone_public_listen_port=http\n", GLOBALS, r"is not a port from 1 to 65535"),
        (
            "[keystone]\nk1\n[loadbalancer]\nlocalhost ansible_connection=local\nlb2 ansible_host=127.0.0.1\n",
            GLOBALS,
            r"would share the socket",
        ),
    ],
)
def test_bad_input_is_one_config_error_saying_what_to_do(
    inventory_text: str, kolla_globals: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        _generate(inventory_text, kolla_globals)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert caught.value.hint


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"target_image": "Not An Image"}, r"--target-image"),
        ({"haproxy_sockets": ("relative.sock",)}, r"--haproxy-socket"),
        ({"haproxy_sockets": ("/a.sock", "/a.sock")}, r"names one socket twice"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], expected: str) -> None:
    chosen = {"target_image": TARGET, **options}
    with pytest.raises(ConfigError, match=expected):
        inventory_from_kolla(MULTINODE, "multinode", GLOBALS, "globals.yml", KollaOptions(**chosen))  # type: ignore[arg-type]


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the kolla-ansible inventory .*missing"):
        inventory_from_kolla_files(tmp_path / "missing", DATA / "globals.yml", KollaOptions(TARGET))
    (tmp_path / "binary.yml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"globals .*binary.yml is not UTF-8"):
        inventory_from_kolla_files(DATA / "multinode", tmp_path / "binary.yml", KollaOptions(TARGET))


def test_no_password_or_secret_variable_reaches_the_output() -> None:
    secrets = ("db-s3cret-1", "ssh-s3cret-2", "become-s3cret-3", "admin-s3cret-4")
    inventory_text = MULTINODE.replace(
        "control01 ansible_host=10.0.0.11 ansible_user=kolla",
        f"control01 ansible_host=10.0.0.11 ansible_user=kolla ansible_password={secrets[1]} "
        f"ansible_become_password={secrets[2]}",
    )
    kolla_globals = (
        GLOBALS + f"keystone_database_password: {secrets[0]}\nkeystone_admin_password: {secrets[3]}\n"
    )
    generated = _generate(inventory_text, kolla_globals)
    for secret in secrets:
        assert secret not in generated.toml
        assert all(secret not in warning for warning in generated.warnings)


def test_the_command_prints_the_inventory_and_warns_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "globals.yml").write_text('kolla_internal_vip_address: "10.0.0.10"\n')
    result = CliRunner().invoke(
        main,
        [
            "inventory",
            "from-kolla",
            "--inventory",
            str(DATA / "multinode"),
            "--globals",
            str(tmp_path / "globals.yml"),
            "--target-image",
            TARGET,
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# keystone-upgrade inventory")
    assert result.stderr.startswith("warning: ")
    assert "haproxy_socket_level_admin: true" in result.stderr
    assert "warning:" not in result.stdout


def test_the_command_writes_output_once_and_never_over_a_file(tmp_path: Path) -> None:
    output = tmp_path / "inventory.toml"
    args = [
        "inventory",
        "from-kolla",
        "--inventory",
        str(DATA / "multinode"),
        "--globals",
        str(DATA / "globals.yml"),
        "--target-image",
        TARGET,
        "--db-password-file",
        "db-password",
        "--output",
        str(output),
    ]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.stdout == ""
    (tmp_path / "db-password").write_text("x\n")
    assert [n.name for n in load_inventory(output).nodes] == ["control01", "control02", "control03"]
    before = output.read_text()
    second = CliRunner().invoke(main, args)
    assert isinstance(second.exception, ConfigError)
    assert "File exists" in second.exception.render()
    assert output.read_text() == before


def test_the_target_image_is_required() -> None:
    result = CliRunner().invoke(main, ["inventory", "from-kolla", "--inventory", str(DATA / "multinode")])
    assert result.exit_code == ExitCode.USAGE
    assert "--target-image" in result.output

"""Our TOML inventory written from a kolla-ansible inventory and globals.yml, for the operator to review.

``inventory_from_kolla`` is pure: the text of both files in, the TOML and the
warnings to show beside it out; ``inventory_from_kolla_files`` reads the files
first. What Kolla runs is read by ``kolla_deployment.describe`` (its docstring
says what is known of Kolla, how variables resolve, and the per-host overrides:
``keystone_container_name``, ``keystone_public_listen_port``,
``api_interface_address``, ``keystone_upgrade_docker``); the INI inventory by
``ansible_inventory``. This module words it as an inventory, with comments
wherever the operator has to check or choose.

Decisions the comments carry:

- no password is ever written: ``password_file`` names where the operator puts
  ``keystone_database_password`` from passwords.yml;
- only the Fernet keys are compared: kolla-ansible sets up no credential keys
  (no ``credential_setup``; Keystone encrypts credentials with its null key);
- ``[target] migrations = "kolla"``, no mounts: the new and throwaway
  containers keep each node's own (Kolla's config directory, the Fernet volume);
- a loadbalancer host that is not this machine has its socket forwarded here
  (``ssh -L``), one path per host, since the runner reaches unix sockets locally;
- without ``haproxy_socket_level_admin: true`` a warning and a comment say to
  set it and redeploy HAProxy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner.config.ansible_inventory import parse_inventory
from runner.config.kolla_deployment import (
    FORWARDED_SOCKETS,
    KollaDeployment,
    KollaNode,
    KollaSocket,
    describe,
)
from runner.config.values import check_image, check_socket
from runner.errors import ConfigError
from runner.model import KOLLA_CONFIG_DIR, MIGRATIONS_KOLLA

DEFAULT_GLOBALS = Path("/etc/kolla/globals.yml")
DEFAULT_DB_PASSWORD_FILE = "/etc/keystone-upgrade/db-password"  # noqa: S105 (where it is, not what)
DEFAULT_BACKUP_IMAGE = "keystone-upgrade/mariadb:10.11"
FERNET_KEYS, CREDENTIAL_KEYS = "/etc/keystone/fernet-keys", "/etc/keystone/credential-keys"
REDEPLOY_HAPROXY = "kolla-ansible reconfigure --tags loadbalancer"


@dataclass(frozen=True)
class KollaOptions:
    """What the operator chooses and Kolla cannot tell: the target, where secrets and state go."""

    target_image: str
    backup_image: str = DEFAULT_BACKUP_IMAGE
    db_password_file: str = DEFAULT_DB_PASSWORD_FILE
    haproxy_sockets: tuple[str, ...] = ()  # given: they replace those of the loadbalancer group
    state_dir: str | None = None


@dataclass(frozen=True)
class Generated:
    """The TOML inventory to review, and what the operator must know before using it."""

    toml: str
    warnings: tuple[str, ...]


def read_text(path: Path, what: str, hint: str) -> str:
    """A file's text; ConfigError naming the file and why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the {what} {path} is not UTF-8 text", observed=str(exc), hint=hint) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read the {what} {path}", observed=exc.strerror or str(exc), hint=hint
        ) from exc


def parse_globals(text: str, source: str) -> dict[str, Any]:
    """globals.yml as a mapping (empty when the file holds only comments)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"the kolla-ansible globals {source} is not valid YAML",
            observed=str(exc),
            hint="fix the syntax at the place named (kolla-ansible would refuse it too)",
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ConfigError(
            f"the kolla-ansible globals {source} is not a mapping of variables",
            observed=f"a YAML {type(data).__name__}"
            if not isinstance(data, dict)
            else "a key that is not text",
            hint="give the globals.yml kolla-ansible deploys with (name: value lines)",
        )
    return data


def inventory_from_kolla_files(inventory_path: Path, globals_path: Path, options: KollaOptions) -> Generated:
    """Read both files, then ``inventory_from_kolla``."""
    inventory_text = read_text(
        inventory_path,
        "kolla-ansible inventory",
        "give --inventory the INI inventory kolla-ansible deploys with (e.g. a copy of multinode)",
    )
    globals_text = read_text(
        globals_path, "kolla-ansible globals", "give --globals the globals.yml kolla-ansible deploys with"
    )
    return inventory_from_kolla(inventory_text, str(inventory_path), globals_text, str(globals_path), options)


def inventory_from_kolla(
    inventory_text: str, inventory_source: str, globals_text: str, globals_source: str, options: KollaOptions
) -> Generated:
    """The TOML inventory for a kolla-ansible deployment, and the warnings to show beside it."""
    _check_options(options)
    deployment = describe(
        parse_inventory(inventory_text, inventory_source),
        parse_globals(globals_text, globals_source),
        globals_source,
        own_sockets=bool(options.haproxy_sockets),
    )
    warnings = []
    if deployment.sockets and not deployment.socket_level_admin:
        warnings.append(
            f"{globals_source} does not set haproxy_socket_level_admin: true, so Kolla's HAProxy socket is "
            "not at level admin and the runner cannot drain Keystone through it: set it and redeploy "
            f"HAProxy ({REDEPLOY_HAPROXY}) before upgrading"
        )
    sections = [
        _header(inventory_source, globals_source),
        _database(deployment, options),
        _target(deployment, options),
        _sockets(deployment, options),
        _run(options),
        _probe(deployment),
        *(_node(node, deployment.backends) for node in deployment.nodes),
    ]
    return Generated("\n".join(sections), tuple(warnings))


def _check_options(options: KollaOptions) -> None:
    for image, option in ((options.target_image, "--target-image"), (options.backup_image, "--backup-image")):
        if check_image(image) is not None:
            raise ConfigError(
                f"{option} {image!r} {check_image(image)}",
                hint=f"give {option} as REGISTRY/NAME:TAG, e.g. quay.io/openstack.kolla/keystone:2025.1-ubuntu-noble",
            )
    for socket in options.haproxy_sockets:
        if check_socket(socket) is not None:
            raise ConfigError(
                f"--haproxy-socket {socket!r} {check_socket(socket)}",
                hint="give a unix socket path (/PATH) or tcp:HOST:PORT, at level admin",
            )
    if len(set(options.haproxy_sockets)) != len(options.haproxy_sockets):
        raise ConfigError(
            "--haproxy-socket names one socket twice",
            observed=", ".join(options.haproxy_sockets),
            hint="give each HAProxy's socket once",
        )


def _q(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def _header(inventory_source: str, globals_source: str) -> str:
    return f"""# keystone-upgrade inventory written by `keystone-upgrade inventory from-kolla` from
#   {inventory_source}
#   {globals_source}
# Review every value before use. Variables were resolved as kolla-ansible resolves them
# (globals.yml, passed with -e, over host and group variables, over Kolla's defaults).
# Per-host overrides, as host or group variables in the kolla-ansible inventory, for unusual
# layouts (e.g. several Keystone containers on one test machine); run the command again after:
#   keystone_container_name       the Keystone container (default "keystone")
#   keystone_public_listen_port   the port it listens on (default 5000)
#   api_interface_address         the address it listens on (default ansible_host, then the name)
#   keystone_upgrade_docker       its Docker endpoint (default "local" for ansible_connection=local
#                                 or a loopback ansible_host, else ssh://ansible_user-or-root@host)
"""


def _database(deployment: KollaDeployment, options: KollaOptions) -> str:
    tls = (
        "# kolla_enable_tls_internal is on: if the database requires TLS (ProxySQL), add\n"
        "# [database.tls] with ca_file = the CA that signed its certificate.\n"
        if deployment.tls_internal
        else ""
    )
    return f"""[database]
# database_address (default: kolla_internal_fqdn, the internal VIP) and database_port.
host = {_q(deployment.database_host)}
port = {deployment.database_port}
user = {_q(deployment.database_user)}
name = {_q(deployment.database_name)}
# Put keystone_database_password from passwords.yml in this file, alone, mode 0600
# (never in this inventory):
password_file = {_q(options.db_password_file)}
{tls}
# Kolla's MariaDB logs binary: when the keystone user lacks SUPER, the runner sets
# log_bin_trust_function_creators for the run (as kolla-ansible's upgrade does) with an admin
# account. Uncomment, and put database_password from passwords.yml in that file:
# [database.admin]
# user = {_q(deployment.admin_user)}
# password_file = "/etc/keystone-upgrade/db-root-password"
"""


def _target(deployment: KollaDeployment, options: KollaOptions) -> str:
    return f"""[target]
image = {_q(options.target_image)}
backup_image = {_q(options.backup_image)}
# Kolla images migrate through their own start script (KOLLA_UPGRADE, KOLLA_FINISH_UPGRADE).
migrations = {_q(MIGRATIONS_KOLLA)}
# The new containers and the throwaway ones keep each node's own mounts: Kolla's
# {deployment.config_dir} at {KOLLA_CONFIG_DIR}, the volume keystone_fernet_tokens at
# {FERNET_KEYS}. The throwaway containers run on the Docker engine where keystone-upgrade
# runs: run it on a Keystone host, where this directory and this volume are.
# Add mounts only to change them for the target release, e.g. the configuration kolla-ansible
# generated for it (a mount replaces the node's at the same target path):
# mounts = [{_q(f"/etc/kolla-TARGET/keystone:{KOLLA_CONFIG_DIR}:ro")}]
# kolla-ansible sets up no credential keys (Keystone then encrypts credentials with its null
# key), so only the Fernet keys are compared. If you added credential keys, list both:
# key_repositories = [{_q(FERNET_KEYS)}, {_q(CREDENTIAL_KEYS)}]
key_repositories = [{_q(FERNET_KEYS)}]
"""


def _sockets(deployment: KollaDeployment, options: KollaOptions) -> str:
    if options.haproxy_sockets:
        return "\n".join(
            f"[[haproxy]]  # given with --haproxy-socket; it must answer at level admin\nsocket = {_q(s)}\n"
            for s in options.haproxy_sockets
        )
    tables = [_socket(socket) for socket in deployment.sockets]
    if not deployment.socket_level_admin:
        tables.insert(
            0,
            "# haproxy_socket_level_admin is not true in globals.yml: these sockets are not at level\n"
            "# admin and preflight will refuse them. Set haproxy_socket_level_admin: true in globals.yml\n"
            f"# and redeploy HAProxy ({REDEPLOY_HAPROXY}).\n",
        )
    return "\n".join(tables)


def _socket(socket: KollaSocket) -> str:
    if socket.remote is None:
        return f"[[haproxy]]\n# {socket.host}: the socket in its named volume haproxy_socket\nsocket = {_q(socket.path)}\n"
    port = f" -p {socket.ssh_port}" if socket.ssh_port else ""
    return f"""[[haproxy]]
# {socket.host}: its socket is {socket.remote} there; forward it here first, e.g.
#   mkdir -p {FORWARDED_SOCKETS} && ssh -fnNT -o StreamLocalBindUnlink=yes{port} \\
#     -L {socket.path}:{socket.remote} {socket.ssh}
socket = {_q(socket.path)}
"""


def _run(options: KollaOptions) -> str:
    if options.state_dir is None:
        return '[run]\n# state_dir = "keystone-upgrade-state"   # the default, beside this file\n'
    return f"[run]\nstate_dir = {_q(options.state_dir)}\n"


def _probe(deployment: KollaDeployment) -> str:
    return f"""# Optional: traffic for `upgrade --probe`, and the token gate (a token issued on each new node
# must validate on an old one). Put keystone_admin_password from passwords.yml in the file:
# [probe]
# url = {_q(deployment.probe_url)}
# username = {_q(deployment.probe_user)}
# project = {_q(deployment.probe_project)}
# password_file = "/etc/keystone-upgrade/admin-password"
"""


def _node(node: KollaNode, backends: tuple[str, ...]) -> str:
    servers = ", ".join(f"{{ backend = {_q(b)}, server = {_q(node.name)} }}" for b in backends)
    guessed = (
        "# No api_interface_address for this host: Kolla binds Keystone to the address of its\n"
        "# api_interface; check the health URL's address.\n"
        if node.address_guessed
        else ""
    )
    return f"""[[nodes]]
name = {_q(node.name)}
container = {_q(node.container)}
docker = {_q(node.engine)}
{guessed}health_url = {_q(node.health_url)}
# Kolla names each HAProxy server by the host's short hostname (ansible_facts.hostname), here
# the inventory name: where they differ, write the hostname (`show stat` on a socket lists them).
servers = [{servers}]
"""

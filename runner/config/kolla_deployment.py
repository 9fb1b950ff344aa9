"""What a kolla-ansible deployment runs, read from its inventory and globals.yml into frozen values (pure).

What it knows of Kolla (kolla-ansible's roles and group_vars):

- the ``keystone`` group runs the container ``keystone``, listening on each
  host's ``api_interface_address`` at ``keystone_public_listen_port`` (5000),
  over TLS when ``keystone_enable_tls_backend`` (``kolla_enable_tls_backend``);
- HAProxy (the ``loadbalancer`` group) has the backend ``keystone_internal_back``,
  and ``keystone_external_back`` when an external frontend exists: Kolla's rule is
  ``haproxy_enable_external_vip`` (by default: ``kolla_external_vip_address``
  differs from ``kolla_internal_vip_address``) or ``haproxy_single_external_frontend``;
  each server is named by the host's short hostname fact, here its inventory name;
- the runtime socket is ``haproxy.sock`` in the named volume ``haproxy_socket``,
  at ``level admin`` only with ``haproxy_socket_level_admin`` (default: ``enable_letsencrypt``);
- the database is ``database_address`` (default ``kolla_internal_fqdn``, itself
  the internal VIP) at ``database_port`` (3306), user and database ``keystone``.

Variables resolve as kolla-ansible resolves them: globals.yml is passed with
``-e``, so it wins over the inventory's host and group variables, which win over
Kolla's defaults. A value ``"{{ other_variable }}"`` is followed; any other Jinja
expression is refused with a request to write the value.

Per-host overrides (ours, not Kolla's) for unusual layouts such as several
Keystone containers on one test machine: ``keystone_container_name``,
``keystone_public_listen_port``, ``api_interface_address`` and
``keystone_upgrade_docker`` (a Docker endpoint; default ``local`` for a host
reached with ``ansible_connection=local`` or at a loopback ``ansible_host``, else
``ssh://{ansible_user or root}@{ansible_host or name}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.config.ansible_inventory import ALL, AnsibleInventory
from runner.config.values import (
    check_container,
    check_engine_url,
    check_haproxy_name,
    check_host,
    check_http_url,
)
from runner.errors import ConfigError
from runner.model import LOCAL_ENGINE

KEYSTONE_GROUP, LOADBALANCER_GROUP = "keystone", "loadbalancer"
INTERNAL_BACKEND, EXTERNAL_BACKEND = "keystone_internal_back", "keystone_external_back"
OVERRIDES = (
    "keystone_container_name",
    "keystone_public_listen_port",
    "api_interface_address",
    "keystone_upgrade_docker",
)
# Where a remote HAProxy's socket is forwarded to on the runner's machine (ssh -L, one per host).
FORWARDED_SOCKETS = "/run/keystone-upgrade"

# kolla-ansible's defaults for what is read here (group_vars/all, role defaults), below everything.
KOLLA_DEFAULTS: Mapping[str, Any] = {
    "kolla_internal_fqdn": "{{ kolla_internal_vip_address }}",
    "kolla_external_vip_address": "{{ kolla_internal_vip_address }}",
    "database_address": "{{ kolla_internal_fqdn }}",
    "database_port": "3306",
    "database_user": "root",
    "keystone_database_user": "keystone",
    "keystone_database_name": "keystone",
    "keystone_public_listen_port": "5000",
    "keystone_internal_port": "5000",
    "keystone_container_name": "keystone",
    "keystone_enable_tls_backend": "{{ kolla_enable_tls_backend }}",
    "kolla_enable_tls_backend": False,
    "kolla_enable_tls_internal": False,
    "node_config_directory": "/etc/kolla",
    "docker_runtime_directory": "",
    "kolla_container_engine": "docker",
    "enable_keystone": True,
    "enable_haproxy": True,
    "enable_letsencrypt": False,
    "haproxy_socket_level_admin": "{{ enable_letsencrypt }}",
    "haproxy_single_external_frontend": False,
    "keystone_admin_user": "admin",
    "keystone_admin_project": "admin",
}
_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*bool\s*)?\}\}")
_TRUE, _FALSE = {"true", "yes", "on", "1", "y", "t"}, {"false", "no", "off", "0", "n", "f", ""}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class KollaNode:
    """One host of the keystone group, as our [[nodes]] table needs it."""

    name: str
    container: str
    engine: str
    health_url: str
    address_guessed: bool  # no api_interface_address: the URL uses ansible_host or the name


@dataclass(frozen=True)
class KollaSocket:
    """One HAProxy's runtime socket as the runner reaches it; ``remote``: where it is on its host."""

    host: str
    path: str
    remote: str | None = None  # set: forward it first, logging in as ``ssh`` (USER@HOST) at ``ssh_port``
    ssh: str | None = None
    ssh_port: str | None = None


@dataclass(frozen=True)
class KollaDeployment:
    """Everything the inventory is written from."""

    database_host: str
    database_port: int
    database_user: str
    database_name: str
    admin_user: str  # Kolla's database_user: the account its own upgrade sets the trust setting with
    tls_internal: bool
    config_dir: str  # the keystone config directory on each host (node_config_directory/keystone)
    nodes: tuple[KollaNode, ...]
    backends: tuple[str, ...]
    sockets: tuple[KollaSocket, ...]  # empty: the operator gives them
    socket_level_admin: bool
    probe_url: str
    probe_user: str
    probe_project: str


class Variables:
    """Variables with kolla-ansible's precedence; ``{{ name }}`` followed, other Jinja refused."""

    def __init__(self, layers: tuple[Mapping[str, Any], ...], where: str):
        self.merged: dict[str, Any] = {}
        for layer in layers:
            self.merged.update(layer)
        self.where = where

    def __contains__(self, key: str) -> bool:
        return key in self.merged

    def get(self, key: str) -> Any:
        """The value, ``{{ name }}`` references followed."""
        value, seen = self.merged.get(key), [key]
        while isinstance(value, str) and (match := _REFERENCE.fullmatch(value.strip())):
            if match.group(1) in seen:
                raise ConfigError(
                    f"{self.where}: {key} refers to itself through {' -> '.join([*seen, match.group(1)])}",
                    hint=f"write the value of {key} in globals.yml",
                )
            seen.append(match.group(1))
            value = self.merged.get(match.group(1))
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            raise ConfigError(
                f"{self.where}: {key} is a Jinja expression this command does not evaluate",
                observed=value,
                hint=f"write the value of {key} in globals.yml (or on the host's line), then run again",
            )
        return value

    def text(self, key: str) -> str | None:
        """The value as text; None when unset, empty or not a scalar."""
        value = self.get(key)
        if value is None or isinstance(value, dict | list):
            return None
        return str(value).strip() or None

    def flag(self, key: str) -> bool:
        """Ansible's ``| bool``: yes/no, true/false, on/off, 1/0."""
        value = self.get(key)
        if isinstance(value, bool):
            return value
        word = "" if value is None else str(value).strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ConfigError(
            f"{self.where}: {key} is not a boolean",
            observed=repr(value),
            hint=f"write {key}: true or {key}: false",
        )

    def port(self, key: str, fix: str) -> int:
        """A TCP port, 1 to 65535."""
        text = self.text(key) or ""
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise ConfigError(f"{self.where}: {key} {text!r} is not a port from 1 to 65535", hint=fix)
        return int(text)


def describe(
    ansible: AnsibleInventory, kolla_globals: Mapping[str, Any], globals_source: str, *, own_sockets: bool
) -> KollaDeployment:
    """The deployment; ``own_sockets``: the operator gives the sockets, so none is computed."""
    all_vars = ansible.groups[ALL].variables if ALL in ansible.groups else {}
    shared = Variables((KOLLA_DEFAULTS, all_vars, kolla_globals), globals_source)

    def host_variables(host: str) -> Variables:
        return Variables(
            (KOLLA_DEFAULTS, ansible.variables(host), kolla_globals), f"{globals_source} (host {host})"
        )

    _refuse_unsupported(shared)
    keystone = _hosts(
        ansible,
        KEYSTONE_GROUP,
        "give the inventory kolla-ansible deploys with: Keystone runs on [keystone] "
        "(multinode: [keystone:children] then control)",
    )
    nodes = tuple(_node(host, host_variables(host)) for host in keystone)
    _refuse_clashes(nodes, ansible.source)
    sockets: tuple[KollaSocket, ...] = ()
    if not own_sockets:
        if not shared.flag("enable_haproxy"):
            raise ConfigError(
                f"{globals_source} sets enable_haproxy to false: there is no HAProxy to drain Keystone through",
                hint="give the runtime socket of the load balancer in front of Keystone with --haproxy-socket",
            )
        balancers = _hosts(
            ansible,
            LOADBALANCER_GROUP,
            "list the hosts that run HAProxy under [loadbalancer] (multinode: [loadbalancer:children] "
            "then network), or give each runtime socket with --haproxy-socket",
        )
        sockets = _sockets(balancers, host_variables, _volumes(shared), ansible.source)
    database_host = shared.text("database_address")
    if database_host is None or check_host(database_host) is not None:
        raise ConfigError(
            f"{globals_source}: no usable database address",
            observed="database_address (default kolla_internal_fqdn, then kolla_internal_vip_address) is "
            + (f"{database_host!r}, which {check_host(database_host)}" if database_host else "not set"),
            hint="set kolla_internal_vip_address (or database_address) in globals.yml",
        )
    return KollaDeployment(
        database_host=database_host,
        database_port=shared.port("database_port", "write database_port: 3306 (MariaDB's) in globals.yml"),
        database_user=shared.text("keystone_database_user") or "keystone",
        database_name=shared.text("keystone_database_name") or "keystone",
        admin_user=shared.text("database_user") or "root",
        tls_internal=shared.flag("kolla_enable_tls_internal"),
        config_dir=f"{(shared.text('node_config_directory') or '/etc/kolla').rstrip('/')}/keystone",
        nodes=nodes,
        backends=(INTERNAL_BACKEND, *((EXTERNAL_BACKEND,) if _external_frontend(shared) else ())),
        sockets=sockets,
        socket_level_admin=shared.flag("haproxy_socket_level_admin"),
        probe_url="http://{}:{}".format(
            bracketed(shared.text("kolla_internal_fqdn") or "INTERNAL_VIP"),
            shared.text("keystone_internal_port") or "5000",
        ),
        probe_user=shared.text("keystone_admin_user") or "admin",
        probe_project=shared.text("keystone_admin_project") or "admin",
    )


def _refuse_unsupported(shared: Variables) -> None:
    if not shared.flag("enable_keystone"):
        raise ConfigError(
            f"{shared.where} sets enable_keystone to false: this deployment runs no Keystone",
            hint="give the globals.yml of the deployment whose Keystone is to be upgraded",
        )
    engine = shared.text("kolla_container_engine")
    if engine != "docker":
        raise ConfigError(
            f"{shared.where} sets kolla_container_engine to {engine!r}; keystone-upgrade drives Docker engines",
            hint="write the inventory by hand (see the README's Inventory section) for your engine",
        )


def _hosts(ansible: AnsibleInventory, group: str, hint: str) -> tuple[str, ...]:
    """The group's hosts; ConfigError when the group is missing or names none."""
    if group not in ansible.groups:
        raise ConfigError(
            f"the kolla-ansible inventory {ansible.source} has no [{group}] group",
            observed="groups: " + (", ".join(sorted(ansible.groups)) or "none"),
            hint=hint,
        )
    hosts = ansible.hosts_of(group)
    if not hosts:
        raise ConfigError(
            f"the [{group}] group of the kolla-ansible inventory {ansible.source} has no hosts",
            observed=f"[{group}] and the groups under [{group}:children] name no host",
            hint=hint,
        )
    return hosts


def _is_local(host: str, variables: Variables) -> bool:
    """This machine: reached with ansible_connection=local, or at a loopback address (or the name localhost)."""
    address = variables.text("ansible_host") or host
    return variables.text("ansible_connection") == "local" or address in _LOOPBACK


def bracketed(host: str) -> str:
    """An IPv6 address in brackets, for a URL."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _ssh_login(host: str, variables: Variables) -> str:
    """USER@HOST as Ansible logs in (root where no ansible_user is given)."""
    return f"{variables.text('ansible_user') or 'root'}@{variables.text('ansible_host') or host}"


def _node(host: str, variables: Variables) -> KollaNode:
    problems = []
    container = variables.text("keystone_container_name") or "keystone"
    if check_container(container) is not None:
        problems.append(f"keystone_container_name {container!r} {check_container(container)}")
    port = variables.text("keystone_public_listen_port") or ""
    if not port.isdigit() or not 0 < int(port) < 65536:
        problems.append(f"keystone_public_listen_port {port!r} is not a port from 1 to 65535")
    engine = variables.text("keystone_upgrade_docker")
    if engine is None:
        port_suffix = f":{variables.text('ansible_port')}" if variables.text("ansible_port") else ""
        user, _, address = _ssh_login(host, variables).rpartition("@")
        remote = f"ssh://{user}@{bracketed(address)}{port_suffix}"
        engine = LOCAL_ENGINE if _is_local(host, variables) else remote
    if check_engine_url(engine) is not None:
        problems.append(
            f"Docker endpoint {engine!r} {check_engine_url(engine)} (set keystone_upgrade_docker)"
        )
    address = variables.text("api_interface_address") or variables.text("ansible_host") or host
    scheme = "https" if variables.flag("keystone_enable_tls_backend") else "http"
    health_url = f"{scheme}://{bracketed(address)}:{port}/v3"
    if check_host(address) is not None or check_http_url(health_url) is not None:
        problems.append(f"health URL {health_url!r} is not usable (set api_interface_address)")
    if check_haproxy_name(host) is not None:
        problems.append(f"the name {host!r}, HAProxy's server name, {check_haproxy_name(host)}")
    if problems:
        raise ConfigError(
            f"Keystone host {host} cannot be described ({variables.where})",
            observed="; ".join(problems),
            hint="fix the host's variables in the inventory (or globals.yml); the per-host overrides are "
            + ", ".join(OVERRIDES),
        )
    return KollaNode(host, container, engine, health_url, "api_interface_address" not in variables)


def _refuse_clashes(nodes: tuple[KollaNode, ...], source: str) -> None:
    """Two hosts that would be one container or one URL: the layout needs the per-host overrides."""
    for what, override, key in (
        ("container", "keystone_container_name", lambda n: f"{n.container} on {n.engine}"),
        ("health URL", "keystone_public_listen_port or api_interface_address", lambda n: n.health_url),
    ):
        seen: dict[str, str] = {}
        for node in nodes:
            if key(node) in seen:
                raise ConfigError(
                    f"the kolla-ansible inventory {source}: Keystone hosts {seen[key(node)]} and {node.name} "
                    f"have the same {what}",
                    observed=key(node),
                    hint=f"set {override} on each host's line so that every Keystone is told apart",
                )
            seen[key(node)] = node.name


def _external_frontend(shared: Variables) -> bool:
    """Whether HAProxy has keystone_external_back: Kolla's own rule, from globals."""
    if shared.flag("haproxy_single_external_frontend"):
        return True
    if "haproxy_enable_external_vip" in shared:
        return shared.flag("haproxy_enable_external_vip")
    return shared.text("kolla_external_vip_address") != shared.text("kolla_internal_vip_address")


def _volumes(shared: Variables) -> str:
    return f"{(shared.text('docker_runtime_directory') or '/var/lib/docker').rstrip('/')}/volumes"


def _sockets(
    hosts: tuple[str, ...], variables_of: Callable[[str], Variables], volumes: str, source: str
) -> tuple[KollaSocket, ...]:
    """Each loadbalancer host's socket: in its volume when the host is this one, else forwarded here."""
    in_volume = f"{volumes}/haproxy_socket/_data/haproxy.sock"
    sockets: list[KollaSocket] = []
    for host in hosts:
        variables = variables_of(host)
        if _is_local(host, variables):
            socket = KollaSocket(host, in_volume)
        else:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", host)
            path = f"{FORWARDED_SOCKETS}/haproxy-{safe}.sock"
            login, port = _ssh_login(host, variables), variables.text("ansible_port")
            socket = KollaSocket(host, path, remote=in_volume, ssh=login, ssh_port=port)
        if any(s.path == socket.path for s in sockets):
            raise ConfigError(
                f"the kolla-ansible inventory {source}: loadbalancer hosts would share the socket {socket.path}",
                observed=", ".join(s.host for s in (*sockets, socket) if s.path == socket.path),
                hint="give each HAProxy's runtime socket with --haproxy-socket",
            )
        sockets.append(socket)
    return tuple(sockets)

"""The configuration files a lab cluster mounts: keystone.conf, haproxy.cfg, secrets.

Pure functions of LabSettings. compose/config/ holds their rendering for the
default settings, so that `docker compose up` works as it is; a unit test
keeps the two the same.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.lab.settings import LabSettings

# Kolla's backend names, so that inventories written for Kolla read the same. Every
# node sits in both, as in Kolla: an upgrade must drain and re-enable it in each.
BACKENDS = ("keystone_internal_back", "keystone_external_back")
ADMIN_SOCKET_DIR = "haproxy-admin"
ADMIN_SOCKET_NAME = "admin.sock"
# A second runtime socket at operator level: what a runner must refuse to work with.
OPERATOR_SOCKET_NAME = "operator.sock"


def keystone_conf(settings: LabSettings) -> str:
    """keystone.conf shared by every node and by the bootstrap container."""
    ports = settings.ports
    return f"""\
# Rendered by `keystone-upgrade lab render`: the demo cluster's Keystone settings.
[DEFAULT]
debug = false

[database]
connection = mysql+pymysql://keystone:{settings.secrets.db_password}@127.0.0.1:{ports.db}/keystone
max_pool_size = 10
max_overflow = 20

[cache]
enabled = true
backend = oslo_cache.memcache_pool
memcache_servers = 127.0.0.1:{ports.memcached}

[token]
provider = fernet

[fernet_tokens]
key_repository = /etc/keystone/fernet-keys
max_active_keys = 3

[credential]
key_repository = /etc/keystone/credential-keys

[identity]
# bcrypt's minimum: the lab issues many password-authenticated tokens on two
# cores. A production cluster keeps the default.
password_hash_rounds = 4
"""


def haproxy_cfg(settings: LabSettings) -> str:
    """haproxy.cfg: internal and external frontends, every node in both backends, GET /v3 checks."""
    ports = settings.ports
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{port} check"
        for name, port in zip(settings.node_names(), ports.nodes, strict=True)
    )
    sections = []
    for backend, port in zip(BACKENDS, (ports.lb, ports.lb_external), strict=True):
        frontend = backend.removesuffix("_back")
        sections.append(f"""\
frontend {frontend}
    bind 127.0.0.1:{port}
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk GET /v3
    http-check expect status 200
    # After-response: also on errors HAProxy makes itself (502, 504), naming the server that failed.
    http-after-response set-header X-Served-By %[srv_name]
    # A server DOWN (downinter) or between UP and DOWN (fastinter: one check failed or passed)
    # is checked every 250ms: a node rises in about half a second, not two, and falls a quarter
    # of a second after its first failed check, not a second. A server back from MAINT (or DOWN)
    # gets its share of requests over 3s (slowstart), as preflight advises: its first requests
    # are its slowest, and fewer of them come at once.
    default-server inter 1s fastinter 250ms downinter 250ms fall 2 rise 2 slowstart 3s
{servers}
""")
    return f"""\
# Rendered by `keystone-upgrade lab render`: the demo cluster's load balancer.
global
    log stdout format raw local0 notice
    maxconn 4096
    # The runtime API at admin level, in a directory the host mounts.
    stats socket /run/haproxy-admin/{ADMIN_SOCKET_NAME} mode 660 level admin expose-fd listeners
    stats socket /run/haproxy-admin/{OPERATOR_SOCKET_NAME} mode 660 level operator
    stats timeout 30s
    # Runtime states (drain, maint) are saved here before a reload and read back after.
    server-state-file /var/lib/haproxy/state/server-state

defaults
    mode http
    log global
    option httplog
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 60s
    # A node that stops answering (hung, paused) gets a 504 naming it after this long,
    # rather than holding requests for a minute.
    timeout server 15s
    timeout http-request 10s
    timeout http-keep-alive 5s
    # Without it a check must answer within inter (1s): on a busy host a healthy node
    # that answers /v3 in 1.5s went DOWN. Kolla gives checks 10s; 5s here.
    timeout check 5s
    load-server-state-from-file global

""" + "\n".join(sections)


# LabSecrets field -> its file below the config directory.
SECRET_FILES = {
    "db_password": "secrets/db-password",
    "db_root_password": "secrets/db-root-password",
    "admin_password": "secrets/admin-password",
}


def secret_files(settings: LabSettings) -> dict[str, str]:
    """secrets/NAME -> content, mounted into the containers that need them."""
    return {relative: getattr(settings.secrets, field) for field, relative in SECRET_FILES.items()}


def rendered_files(settings: LabSettings) -> dict[str, str]:
    """Every file of the config directory, by path relative to it."""
    return {
        "keystone.conf": keystone_conf(settings),
        "haproxy.cfg": haproxy_cfg(settings),
        **secret_files(settings),
    }


def write_config(settings: LabSettings) -> None:
    """Write the config directory.

    The directory itself is 0700: the files hold passwords. Containers see
    each file through its own bind mount, so keystone.conf can stay readable
    by the unprivileged keystone user inside the node containers.
    """
    settings.config_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.config_dir, 0o700)
    for relative, content in rendered_files(settings).items():
        path = settings.config_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.chmod(path, 0o600 if relative.startswith("secrets/") else 0o644)


def prepare_state_dir(settings: LabSettings) -> None:
    """Create the state directories before a container would create them as root."""
    for name in ("fernet-keys", "credential-keys", ADMIN_SOCKET_DIR, "haproxy-state"):
        (settings.state_dir / name).mkdir(parents=True, exist_ok=True)


def admin_socket_path(state_dir: Path) -> Path:
    """Where the HAProxy runtime API socket appears on the host."""
    return state_dir / ADMIN_SOCKET_DIR / ADMIN_SOCKET_NAME

"""An inventory for a lab cluster, as an operator would write one for theirs."""

from __future__ import annotations

from pathlib import Path

from runner.images.catalog import REPOSITORY
from runner.lab.cluster import LabEndpoints


def inventory_toml(endpoints: LabEndpoints, target_version: str, state_dir: Path) -> str:
    """The TOML inventory that upgrades this lab cluster to ``target_version``."""
    nodes = []
    for name, url in endpoints.node_urls.items():
        servers = ", ".join(f'{{ backend = "{b}", server = "{name}" }}' for b in endpoints.backends)
        nodes.append(
            f"""[[nodes]]
name = "{name}"
container = "{endpoints.node_containers[name]}"
health_url = "{url}/v3"
servers = [{servers}]
"""
        )
    return f"""# keystone-upgrade inventory for lab cluster {endpoints.project}
[database]
host = "{endpoints.db_host}"
port = {endpoints.db_port}
user = "{endpoints.db_user}"
name = "{endpoints.db_name}"
password_file = "{endpoints.config_dir}/secrets/db-password"

[database.admin]
user = "root"
password_file = "{endpoints.config_dir}/secrets/db-root-password"

[target]
image = "{REPOSITORY}/keystone:{target_version}"
backup_image = "{REPOSITORY}/mariadb:10.11"
mounts = [
    "{endpoints.config_dir}/keystone.conf:/etc/keystone/keystone.conf:ro",
    "{endpoints.state_dir}/fernet-keys:/etc/keystone/fernet-keys",
    "{endpoints.state_dir}/credential-keys:/etc/keystone/credential-keys",
]

[[haproxy]]
socket = "{endpoints.admin_socket}"

[run]
state_dir = "{state_dir}"

[probe]
url = "{endpoints.lb_url}"
username = "{endpoints.admin_username}"
project = "{endpoints.admin_project}"
password_file = "{endpoints.config_dir}/secrets/admin-password"
rate_per_s = 30

""" + "\n".join(nodes)


def write_inventory(endpoints: LabEndpoints, target_version: str, path: Path, state_dir: Path) -> Path:
    """Write the inventory file next to the lab's state."""
    path.write_text(inventory_toml(endpoints, target_version, state_dir))
    return path

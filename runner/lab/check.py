"""Show that a lab cluster serves: a token through HAProxy, validated on every node directly."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from runner.drivers.haproxy import RuntimeSocket
from runner.drivers.keystone import Credentials, KeystoneClient
from runner.errors import LabError
from runner.lab.cluster import LabEndpoints
from runner.model import SocketAddress


@dataclass(frozen=True)
class ServingProof:
    """What `lab check` observed."""

    issued_by: str | None
    validations: dict[str, int]  # node -> HTTP status of validating the token there
    haproxy_status: dict[str, str]  # backend/server -> show stat status

    @property
    def ok(self) -> bool:
        """Every node validated the token and HAProxy has every server UP."""
        return all(code == 200 for code in self.validations.values()) and all(
            status == "UP" for status in self.haproxy_status.values()
        )


def prove_serving(endpoints: LabEndpoints) -> ServingProof:
    """Issue a token through the load balancer and validate it on each node."""
    credentials = Credentials(endpoints.admin_username, endpoints.admin_password, endpoints.admin_project)
    try:
        issued = KeystoneClient(endpoints.lb_url).issue_token(credentials)
        validations = {
            name: KeystoneClient(url).validate_token(issued.token, issued.token).status_code
            for name, url in endpoints.node_urls.items()
        }
    except requests.RequestException as exc:
        raise LabError(
            "the lab cluster does not serve tokens",
            observed=str(exc),
            hint="look at the node and haproxy containers' logs",
        ) from exc
    runtime = RuntimeSocket(SocketAddress(unix_path=str(endpoints.admin_socket)))
    haproxy_status = {f"{s.backend}/{s.server}": s.status for s in runtime.show_stat()}
    return ServingProof(issued_by=issued.served_by, validations=validations, haproxy_status=haproxy_status)

"""Keystone's identity API over HTTP: the few calls the runner, the probe and the tests make."""

from __future__ import annotations

from dataclasses import dataclass

import requests


def base_url(url: str) -> str:
    """Keystone's base URL from an API URL (``http://h:5000/v3`` -> ``http://h:5000``)."""
    return url.rstrip("/").removesuffix("/v3")


@dataclass(frozen=True)
class Credentials:
    """A password login scoped to a project (both in the default domain unless said)."""

    username: str
    password: str
    project: str
    domain: str = "default"

    def __repr__(self) -> str:  # the password never reaches a log through repr
        return f"Credentials(username={self.username!r}, project={self.project!r}, domain={self.domain!r})"


@dataclass(frozen=True)
class IssuedToken:
    """A token and who served the request that issued it."""

    token: str
    served_by: str | None  # HAProxy's X-Served-By header, when a load balancer set it


class KeystoneClient:
    """Calls against one Keystone endpoint (a node directly, or the load balancer)."""

    def __init__(self, base_url: str, session: requests.Session | None = None, timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout_s = timeout_s

    def issue_token(self, credentials: Credentials) -> IssuedToken:
        """POST /v3/auth/tokens with a password; raises requests.HTTPError unless 201."""
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": credentials.username,
                            "domain": {"id": credentials.domain},
                            "password": credentials.password,
                        }
                    },
                },
                "scope": {"project": {"name": credentials.project, "domain": {"id": credentials.domain}}},
            }
        }
        response = self.session.post(f"{self.base_url}/v3/auth/tokens", json=body, timeout=self.timeout_s)
        response.raise_for_status()
        return IssuedToken(
            token=response.headers["X-Subject-Token"], served_by=response.headers.get("X-Served-By")
        )

    def validate_token(self, auth_token: str, subject_token: str) -> requests.Response:
        """GET /v3/auth/tokens: 200 when ``subject_token`` is valid here."""
        return self.session.get(
            f"{self.base_url}/v3/auth/tokens",
            headers={"X-Auth-Token": auth_token, "X-Subject-Token": subject_token},
            timeout=self.timeout_s,
        )


class KeystoneTokens:
    """The ``Tokens`` port: a password login per issue, each node asked at its own URL."""

    def __init__(self, credentials: Credentials, timeout_s: float = 10.0):
        self.credentials = credentials
        self.session = requests.Session()
        self.timeout_s = timeout_s

    def issue(self, base_url: str) -> str:
        """A new token from the node at ``base_url``.

        PermissionError when the credentials are refused (401, 403): that is an
        answer, not a hiccup; other failures are requests' errors (OSErrors).
        """
        try:
            return KeystoneClient(base_url, self.session, self.timeout_s).issue_token(self.credentials).token
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                raise PermissionError(f"{base_url} refused the probe's credentials (HTTP {status})") from exc
            raise

    def validate(self, base_url: str, auth_token: str, subject_token: str) -> int:
        """The status the node at ``base_url`` answers when asked whether ``subject_token`` is valid."""
        return (
            KeystoneClient(base_url, self.session, self.timeout_s)
            .validate_token(auth_token, subject_token)
            .status_code
        )

"""Checks of single inventory values, and the limits on the numbers: pure, no TOML and no tables.

Each check takes one value already read as a string (or a path) and returns
None when it is fine, else what is wrong with it, for the table reader to
word as a problem. They are apart from the sections that use them so that the
grammar of a value (an image reference, a container name, a Docker endpoint)
can be read, and changed, in one place.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from runner.model import LOCAL_ENGINE, SocketAddress, host_and_port

# Upper bounds far above any real setting and low enough to catch a slipped digit: a wait
# that would never end is a mistake, not a choice.
DAY_S = 86_400.0
MAX_DRAIN_TIMEOUT_S = DAY_S
MAX_HEALTH_TIMEOUT_S = DAY_S
MAX_MIGRATION_TIMEOUT_S = 7 * DAY_S
MAX_PROBE_SECONDS = DAY_S
MAX_PROBE_RATE_PER_S = 1000.0
MAX_PROBE_CONCURRENCY = 256

# Docker's container names; HAProxy's backend and server names (anything else would be
# sent verbatim on the runtime API); environment variable names.
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
HAPROXY_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# An image reference as Docker's distribution/reference grammar has it.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
)
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- checks of single values: None when fine, else what is wrong -----------------------------------


def check_no_spaces(text: str) -> str | None:
    """No whitespace anywhere."""
    return "must not hold spaces" if any(c.isspace() for c in text) else None


def check_host(text: str) -> str | None:
    """A host name or address, without scheme, path or port (an IPv6 address may be bracketed)."""
    if any(c.isspace() for c in text) or "/" in text:
        return "must be a host name or address (no scheme, path or spaces)"
    if ":" in text:
        try:
            ipaddress.IPv6Address(text.strip("[]"))
        except ValueError:
            return "must be a host name or address without a port (the port has its own key)"
    return None


def check_image(text: str) -> str | None:
    """An image reference, as Docker reads one."""
    return (
        None
        if IMAGE_REFERENCE.fullmatch(text)
        else "is not an image reference (REGISTRY/NAME:TAG, lowercase)"
    )


def check_container(text: str) -> str | None:
    """A name Docker accepts for a container."""
    return (
        None
        if CONTAINER_NAME.fullmatch(text)
        else "is not a Docker container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"
    )


def check_haproxy_name(text: str) -> str | None:
    """A backend or server name safe to send on HAProxy's runtime API."""
    return (
        None
        if HAPROXY_NAME.fullmatch(text)
        else "is not an HAProxy name (letters, digits, '-', '_', '.', ':')"
    )


def check_env_name(text: str) -> str | None:
    """An environment variable's name."""
    return (
        None if ENV_NAME.fullmatch(text) else "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
    )


def check_http_url(text: str) -> str | None:
    """An http(s) URL with a host (and a port, when given, other than 0)."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0 or check_no_spaces(text):
        return "is not an http(s)://HOST[:PORT]/... URL"
    return None


def check_engine_url(text: str) -> str | None:
    """A Docker endpoint: local, unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST."""
    if text == LOCAL_ENGINE:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        return f"is not a Docker endpoint ({exc})"
    usable = (
        (parts.scheme == "unix" and not parts.netloc and parts.path.startswith("/"))
        or (parts.scheme == "tcp" and bool(parts.hostname) and port != 0)
        or (parts.scheme == "ssh" and bool(parts.hostname) and port != 0)
    )
    if not usable or check_no_spaces(text):
        return "is not local, unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST"
    return None


def check_socket(text: str) -> str | None:
    """An HAProxy runtime socket: an absolute unix socket path, or tcp:HOST:PORT."""
    try:
        address = SocketAddress.parse(text)
    except ValueError as exc:
        return str(exc)
    if address.unix_path is not None:
        return None if address.unix_path.startswith("/") else "must give an absolute unix socket path"
    if (
        not text.isascii()
        or address.port is None
        or not 0 < address.port < 65536
        or check_host(address.host or "")
    ):
        return "is not unix:/PATH, /PATH or tcp:HOST:PORT (port from 1 to 65535)"
    return None


def check_memcached_server(text: str) -> str | None:
    """A memcached server: HOST:PORT, or [IPv6]:PORT."""
    form = "is not HOST:PORT (a port from 1 to 65535; [ADDRESS]:PORT for IPv6)"
    try:
        host, _ = host_and_port(text)
    except ValueError:
        return form
    if text.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return form
        return None
    return form if check_host(host) else None


def check_ca_bundle(path: Path) -> str | None:
    """A file of PEM certificates that TLS can load as the authorities to trust."""
    if not os.path.isfile(path):
        return "does not exist or is not a file"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        return f"is not a readable PEM certificate bundle ({exc})"
    return None


# What a Docker TLS directory holds (DOCKER_CERT_PATH's layout): the CA, the client's certificate and key.
DOCKER_TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


def docker_tls_problems(directory: Path) -> list[str]:
    """Everything wrong with a Docker TLS directory: each missing file, a CA or key pair TLS cannot load."""
    if not os.path.isdir(directory):
        return ["is not a directory"]
    missing = [f"has no {name}" for name in DOCKER_TLS_FILES if not os.path.isfile(directory / name)]
    if missing:
        return missing
    problems = []
    wrong_ca = check_ca_bundle(directory / "ca.pem")
    if wrong_ca is not None:
        problems.append(f"ca.pem {wrong_ca}")
    try:
        # An empty password: a key that needs one fails here instead of prompting on the terminal.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
            directory / "cert.pem", directory / "key.pem", password=b""
        )
    except (ssl.SSLError, OSError, ValueError) as exc:
        problems.append(f"cert.pem and key.pem are not a certificate and its unencrypted key ({exc})")
    return problems

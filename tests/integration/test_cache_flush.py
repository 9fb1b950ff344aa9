"""The memcached driver against the project's real memcached: what was stored is gone after the flush.

One container of keystone-upgrade/memcached:1.6 on host networking, bound to
127.0.0.1 on a free port, labelled for the session's leak check and removed
however the test ends. No cluster is needed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import docker
import pytest
from testcontainers.core.container import DockerContainer

from runner.drivers.memcached import MemcachedClient
from runner.images.catalog import REPOSITORY
from runner.waits import WaitPolicy, wait_until
from tests.integration.harness import SESSION_ID, TEST_CONTAINER_LABEL

pytestmark = pytest.mark.integration

MEMCACHED_LISTENS = WaitPolicy("the test's memcached answers version", timeout_s=30, interval_s=0.2)


def _free_port() -> int:
    """A port nothing listens on at 127.0.0.1 now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ask(port: int, command: bytes, ends: tuple[bytes, ...]) -> bytes:
    """One command on memcached's text protocol; its whole answer (up to one of ``ends``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(command)
        answer = b""
        while not answer.endswith(ends):
            chunk = connection.recv(4096)
            if not chunk:
                raise ConnectionResetError(f"memcached closed after {answer!r}")
            answer += chunk
        return answer


@pytest.fixture
def memcached(docker_client: docker.DockerClient) -> Iterator[int]:
    """The project's memcached on 127.0.0.1:PORT, answering; removed afterwards. Yields the port."""
    port = _free_port()
    container = (
        DockerContainer(f"{REPOSITORY}/memcached:1.6")
        .with_env("MEMCACHED_BIND", "127.0.0.1")
        .with_env("MEMCACHED_PORT", str(port))
        .with_kwargs(network_mode="host", labels={TEST_CONTAINER_LABEL: SESSION_ID})
    )
    container.start()
    try:
        wait_until(
            MEMCACHED_LISTENS,
            lambda: _ask(port, b"version\r\n", (b"\r\n",)),
            lambda a: a.startswith(b"VERSION"),
        )
        yield port
    finally:
        container.stop()  # testcontainers removes it (force, with its volumes)


def test_a_stored_key_is_gone_after_the_flush(memcached: int) -> None:
    stored = _ask(memcached, b"set ku-test-key 0 0 5\r\nhello\r\n", (b"\r\n",))
    assert stored == b"STORED\r\n"
    assert b"hello" in _ask(memcached, b"get ku-test-key\r\n", (b"END\r\n",))
    MemcachedClient().flush_all(f"127.0.0.1:{memcached}")
    assert _ask(memcached, b"get ku-test-key\r\n", (b"END\r\n",)) == b"END\r\n"

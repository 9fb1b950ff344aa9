"""One-shot containers a test runs itself, through testcontainers, labelled for the leak check."""

from __future__ import annotations

from dataclasses import dataclass

from testcontainers.core.container import DockerContainer

from runner.lab.cluster import LabEndpoints
from runner.waits import CONTAINER_EXITED, wait_until
from tests.integration.harness import SESSION_ID, TEST_CONTAINER_LABEL


@dataclass(frozen=True)
class Finished:
    """How a one-shot container ended."""

    exit_code: int
    output: str


def run_once(
    image: str, command: list[str], cluster: LabEndpoints | None = None, *, user: str | None = None
) -> Finished:
    """Run ``command`` in a throwaway container of ``image`` on host networking.

    With ``cluster``, it gets the cluster's keystone.conf and key
    repositories, as the runner's migration containers do.
    """
    container = DockerContainer(image).with_command(command)
    container.with_kwargs(
        network_mode="host", labels={TEST_CONTAINER_LABEL: SESSION_ID}, **({"user": user} if user else {})
    )
    if cluster is not None:
        container.with_volume_mapping(
            str(cluster.config_dir / "keystone.conf"), "/etc/keystone/keystone.conf", "ro"
        )
        container.with_volume_mapping(
            str(cluster.state_dir / "fernet-keys"), "/etc/keystone/fernet-keys", "ro"
        )
        container.with_volume_mapping(
            str(cluster.state_dir / "credential-keys"), "/etc/keystone/credential-keys", "ro"
        )
    container.start()
    try:
        wrapped = container.get_wrapped_container()

        def status() -> str:
            wrapped.reload()
            return str(wrapped.status)

        wait_until(CONTAINER_EXITED, status, lambda s: s in ("exited", "dead"))
        exit_code = int(wrapped.attrs["State"]["ExitCode"])
        output = bytes(wrapped.logs()).decode(errors="replace")
        return Finished(exit_code=exit_code, output=output)
    finally:
        container.stop()


def migration_heads(image: str) -> frozenset[str]:
    """The EXPAND_HEAD and CONTRACT_HEAD a Keystone image's package ships, as a set."""
    return frozenset(migration_head_pair(image))


def migration_head_pair(image: str) -> tuple[str, str]:
    """(EXPAND_HEAD, CONTRACT_HEAD) of a Keystone image's package."""
    script = (
        # migrations/ is a namespace package on older releases: find it from keystone itself.
        "import keystone, pathlib; "
        "d = pathlib.Path(keystone.__file__).parent / 'common/sql/migrations/versions'; "
        "print((d / 'EXPAND_HEAD').read_text().strip(), (d / 'CONTRACT_HEAD').read_text().strip())"
    )
    finished = run_once(image, ["python3", "-c", script])
    assert finished.exit_code == 0, finished.output
    expand, contract = finished.output.split()
    return expand, contract

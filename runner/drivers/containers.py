"""What the runner reads of containers and images, and the ``Engine`` port it reads them through.

Values and a Protocol only: ``docker_engine.DockerEngine`` is the implementation
on the Docker SDK; unit tests pass fakes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runner.drivers.docker_blueprint import ContainerBlueprint
from runner.errors import DockerError
from runner.model import BindMount
from runner.waits import CONTAINER_EXITED, WaitPolicy

RUNNER_LABEL = "io.keystone-upgrade.runner"
RUN_ID_LABEL = "io.keystone-upgrade.run-id"
PURPOSE_LABEL = "io.keystone-upgrade.purpose"


class StillRunning(DockerError):
    """A throwaway container outlived its wait; it was left running, never killed."""

    def __init__(self, what: str, *, observed: str, hint: str, container_id: str):
        self.container_id = container_id
        super().__init__(what, observed=observed, hint=hint)


class ExecNotStarted(DockerError):
    """A command could not be started inside a container (gone, stopped, paused): nothing ran."""


@dataclass(frozen=True)
class ContainerFacts:
    """What the runner reads of a node's container."""

    id: str
    name: str
    status: str
    image_id: str
    image_reference: str
    keystone_version: str | None  # the image's version label
    mounts: Mapping[str, str]  # container path -> host path (bind mounts)
    inspect: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class ImageFacts:
    """What the runner reads of an image."""

    id: str
    reference: str
    keystone_version: str | None
    inspect: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Finished:
    """How a throwaway container ended: its exit code and its output."""

    exit_code: int
    output: str

    def tail(self, lines: int = 30) -> str:
        """The last lines of its output, for an error message."""
        return "\n".join(deque(self.output.splitlines(), maxlen=lines))


class Engine(Protocol):
    """What the runner needs of one Docker engine."""

    endpoint: str

    def ping(self) -> None: ...
    def container(self, name: str) -> ContainerFacts | None: ...
    def image(self, reference: str) -> ImageFacts | None: ...
    def run_once(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[BindMount],
        labels: Mapping[str, str],
        environment: Mapping[str, str] | None = None,
        user: str | None = None,
        entrypoint: Sequence[str] | None = None,
        policy: WaitPolicy = CONTAINER_EXITED,
        stdin_secret: str | None = None,
        tmpfs: Sequence[str] = (),
        keep_on_timeout: bool = False,
    ) -> Finished: ...
    # A throwaway server (a scratch database) that runs until the caller removes it.
    def start_detached(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[BindMount],
        labels: Mapping[str, str],
        entrypoint: Sequence[str] | None = None,
        stdin_secret: str | None = None,
        tmpfs: Sequence[str] = (),
        memory_dirs: Mapping[str, int] | None = None,
    ) -> str: ...
    # A throwaway whose input the runner holds open (it ends when the runner is gone): its id, and
    # what ends its input.
    def start_attached(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[BindMount],
        labels: Mapping[str, str],
        environment: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> tuple[str, Callable[[], None]]: ...
    def running_throwaways(self) -> list[str]: ...
    def exec_output(self, container: str, command: Sequence[str], *, user: str | None = None) -> Finished: ...
    def output_tail(self, container: str, lines: int) -> str: ...
    def pull(self, reference: str) -> bool: ...
    # An image moved between engines as `docker save | docker load` does, streamed, never held whole.
    def save_image(self, reference: str) -> Iterator[bytes]: ...
    def load_image(self, archive: Iterable[bytes]) -> None: ...
    def stop(self, container: str, timeout_s: int) -> None: ...
    def rename(self, container: str, new_name: str) -> None: ...
    def create_and_start(self, blueprint: ContainerBlueprint) -> str: ...
    def create(self, blueprint: ContainerBlueprint) -> str: ...
    def start(self, container: str) -> None: ...
    def set_cpu_shares(self, container: str, shares: int) -> None: ...
    def cgroup_version(self) -> int: ...
    def remove(self, container: str) -> None: ...

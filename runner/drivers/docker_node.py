"""A Keystone node that is a Docker container: the first ``NodeRuntime``.

The old container is stopped and renamed (kept, for rollback); its
replacement is created from the old one's configuration on the target image
(``derive_blueprint``) under the original name. Bringing the old one back is
the same moves in reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from runner.drivers.containers import ContainerFacts, Engine, ImageFacts
from runner.drivers.docker_blueprint import derive_blueprint
from runner.drivers.key_digests import read_key_digests
from runner.drivers.keystone_release import release_inside
from runner.drivers.ports import EffectData, Http
from runner.drivers.systemd import ContainerUnit, ServiceManager
from runner.errors import DockerError
from runner.model import NodeConfig, TargetConfig

DEFAULT_STOP_TIMEOUT_S = 10
# A replacement boots at this CPU weight (Docker's default is 1024): importing Keystone and
# starting its workers takes seconds of CPU, and at full weight it takes them from the nodes
# serving meanwhile, whose requests then wait. The weight only matters while the CPU is
# contended; the old container's is given back before the node goes back into rotation.
BOOT_CPU_SHARES = 64
DOCKER_DEFAULT_CPU_SHARES = 1024
HEALTH_REQUEST_TIMEOUT_S = 5


def boot_cpu_shares(old_inspect: Mapping[str, Any], cgroup_version: Callable[[], int]) -> int | None:
    """The weight a replacement of the container ``old_inspect`` describes boots at; None where the
    old one's could not be given back exactly: a container without its own weight on cgroup v2,
    where runc turns an explicit 1024 into a cpu.weight other than the default 100 (runc before
    1.3.2 makes it 39)."""
    own = old_inspect["HostConfig"].get("CpuShares") or 0
    if own:
        return min(own, BOOT_CPU_SHARES)
    return BOOT_CPU_SHARES if cgroup_version() == 1 else None


class DockerNode:
    """The ``NodeRuntime`` of a node run as a container on a Docker engine."""

    def __init__(self, node: NodeConfig, engine: Engine, http: Http, services: ServiceManager | None = None):
        self.node = node
        self.engine = engine
        self.http = http
        # A container a systemd unit runs (kolla-ansible) is stopped and started through the unit:
        # stopped through Docker, systemd would start the old one again behind the runner's back.
        self.unit = ContainerUnit(services, node.container, engine)
        # Container id -> the Keystone release inside. A container's packages come with its image,
        # which it keeps for its life; one created again has a new id. Each answer is a Python
        # started inside a node while its peers serve: asked once per container.
        self._release_of: dict[str, str] = {}

    def _with_unit(self, data: EffectData) -> EffectData:
        """The effect's data, naming the unit when the move went through one."""
        return data if self.unit.name is None else {**data, "unit": self.unit.name}

    def _existing(self, name: str, what: str) -> ContainerFacts:
        found = self.engine.container(name)
        if found is None:
            raise DockerError(
                f"node {self.node.name}: {what} {name} does not exist on {self.engine.endpoint}",
                hint="look at the engine (docker ps -a); the journal says what the run did",
            )
        return found

    def _old_image(self, old: ContainerFacts) -> ImageFacts:
        """The image the old container was created from: what its image gave it is told apart by it."""
        found = self.engine.image(old.image_id)
        if found is None:
            raise DockerError(
                f"node {self.node.name}: the image of {old.name} is gone",
                hint="look at the engine; the old container cannot be copied without its image",
            )
        return found

    def stop(self) -> EffectData:
        """Stop the node's container, waiting its own StopTimeout (SIGKILL after it).

        Refuses before stopping anything when the replacement could not be
        derived from it afterwards (its image is gone).
        """
        old = self._existing(self.node.container, "container")
        self._old_image(old)
        stop_timeout = old.inspect["Config"].get("StopTimeout") or DEFAULT_STOP_TIMEOUT_S
        if self.unit.name is None:
            self.engine.stop(old.id, int(stop_timeout))
        else:
            self.unit.stop(old.id)
        # What was stopped, by image: its release was read inside it at preflight (the step's
        # from_release), and asking again would start a Python in it while its peers serve.
        return self._with_unit(
            {"container_id": old.id, "image": old.image_reference, "image_id": old.image_id}
        )

    def set_aside(self, kept_as: str) -> EffectData:
        """Rename the stopped container to ``kept_as``; its name is free for the replacement."""
        old = self._existing(self.node.container, "container")
        self.engine.rename(old.id, kept_as)
        return {"old_name": kept_as, "container_id": old.id}

    def start_target(self, image: str, kept_as: str, config: TargetConfig | None = None) -> EffectData:
        """Create and start the replacement on ``image`` with everything the operator gave the old one,
        and the target configuration (``config``) instead of or on top of it."""
        old = self._existing(kept_as, "the old container")
        blueprint = derive_blueprint(
            old.inspect, self._old_image(old).inspect, image, name=self.node.container, target=config
        )
        boot_shares = self._boot_cpu_shares(old)
        if boot_shares is not None:
            blueprint = replace(blueprint, host_config={**blueprint.host_config, "CpuShares": boot_shares})
        if self.unit.name is None:
            new_id = self.engine.create_and_start(blueprint)
        else:
            new_id = self.unit.start_new(blueprint)  # created here, started by the unit's ExecStart
        return self._with_unit({"container_id": new_id, "image": image, "cpu_shares": boot_shares})

    def _boot_cpu_shares(self, old: ContainerFacts) -> int | None:
        return boot_cpu_shares(old.inspect, self.engine.cgroup_version)

    def full_cpu(self, kept_as: str) -> EffectData:
        """The old container's CPU weight on the replacement (on cgroup v1, where it had none, 1024:
        the same weight); nothing to do when it booted at the old one's."""
        old = self._existing(kept_as, "the old container")
        own = old.inspect["HostConfig"].get("CpuShares") or 0
        current = self._existing(self.node.container, "container")
        if (current.inspect["HostConfig"].get("CpuShares") or 0) == own:
            return {"cpu_shares": own or None}
        shares = own or DOCKER_DEFAULT_CPU_SHARES
        self.engine.set_cpu_shares(self.node.container, shares)
        return {"cpu_shares": shares}

    def restore_old(self, kept_as: str) -> EffectData:
        """Remove the replacement (if any), rename ``kept_as`` back, start it.

        Safe at every point of a swap: before the rename the container under
        the node's name is the old one, and it is only started again.
        """
        if self.unit.name is not None:
            self.unit.stop_if_active()  # else Restart=always starts whatever has the name meanwhile
        kept = self.engine.container(kept_as)
        if kept is not None:
            current = self.engine.container(self.node.container)
            if current is not None and current.id != kept.id:
                self.engine.remove(current.id)
            self.engine.rename(kept.id, self.node.container)
        old = self._existing(self.node.container, "container")
        if self.unit.name is None:
            self.engine.start(old.id)
        else:
            self.unit.start()
        return self._with_unit(
            {"container_id": old.id, "image": old.image_reference, "removed_replacement": kept is not None}
        )

    def discard_old(self, kept_as: str) -> bool:
        """Remove the container kept for rollback."""
        if self.engine.container(kept_as) is None:
            return False
        self.engine.remove(kept_as)
        return True

    def running_release(self) -> str | None:
        """The Keystone release installed in the running container, asked inside it (not its label)
        once per container: the contract gate asks again what the release gate asked."""
        container = self.engine.container(self.node.container)
        if container is None or container.status != "running":
            return None
        if container.id not in self._release_of:
            release = release_inside(self.engine, container.id)
            if release is None:
                return None  # not answering now is asked again
            self._release_of[container.id] = release
        return self._release_of[container.id]

    def health(self) -> int:
        """GET the node's health URL directly (not through HAProxy)."""
        return self.http.get_status(self.node.health_url, HEALTH_REQUEST_TIMEOUT_S)

    def output_tail(self, lines: int) -> str:
        """The last lines the node's container wrote: kept in the error before a rollback removes it."""
        return self.engine.output_tail(self.node.container, lines)

    def key_digests(self, repositories: tuple[str, ...]) -> dict[str, str]:
        """Each key repository's digest, computed inside the container by its own user."""
        return read_key_digests(self.engine, self.node.container, repositories)

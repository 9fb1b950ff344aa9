"""Docker nodes: derive the replacement container's configuration from the old one: pure, no Docker calls.

The new container must keep everything the operator gave the old one (mounts,
network mode, restart policy, ports, environment they set, labels they set)
and drop what only came from the old image (its ENV, LABELs, CMD, ENTRYPOINT,
WORKDIR, USER, HEALTHCHECK), so that the new image's own defaults apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.model import LOCAL_ENGINE, BindMount, TargetConfig

# The Config keys that hold an image default unless the operator overrode them.
IMAGE_DEFAULT_KEYS = ("Cmd", "Entrypoint", "WorkingDir", "User", "Healthcheck", "StopSignal")
# Config keys copied as they are.
CARRIED_KEYS = ("Tty", "OpenStdin", "StdinOnce", "AttachStdin", "StopTimeout")


@dataclass(frozen=True)
class ContainerBlueprint:
    """Everything needed to create the replacement through the Engine API's /containers/create."""

    name: str
    image: str
    config: Mapping[str, Any]  # the create body without HostConfig
    host_config: Mapping[str, Any]

    def create_body(self) -> dict[str, Any]:
        """The JSON body of POST /containers/create."""
        return {**self.config, "Image": self.image, "HostConfig": dict(self.host_config)}


def _env_dict(entries: list[str] | None) -> dict[str, str]:
    result = {}
    for entry in entries or []:
        key, _, value = entry.partition("=")
        result[key] = value
    return result


def operator_environment(old_container: Mapping[str, Any], old_image: Mapping[str, Any]) -> dict[str, str]:
    """The environment the operator gave the container (what its image set is left out)."""
    image_env = _env_dict((old_image.get("Config") or {}).get("Env"))
    return {
        key: value
        for key, value in _env_dict(old_container["Config"].get("Env")).items()
        if image_env.get(key) != value
    }


def with_target_environment(environment: Mapping[str, str], config: TargetConfig) -> dict[str, str]:
    """``environment`` with the target configuration's removals and additions."""
    changed = {k: v for k, v in environment.items() if k not in config.environment_remove}
    changed.update(config.environment)
    return changed


def _bind_destination(bind: str) -> str:
    """The container path of a HostConfig.Binds entry (SOURCE:DEST[:OPTIONS])."""
    parts = bind.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def with_target_mounts(host_config: Mapping[str, Any], mounts: tuple[BindMount, ...]) -> dict[str, Any]:
    """``host_config`` with each mount replacing whatever the old one had at its target path."""
    replaced = {m.target for m in mounts}
    changed = dict(host_config)
    binds = [b for b in host_config.get("Binds") or [] if _bind_destination(b) not in replaced]
    changed["Binds"] = binds + [str(m) for m in mounts]
    if host_config.get("Mounts"):
        changed["Mounts"] = [m for m in host_config["Mounts"] if m.get("Target") not in replaced]
    return changed


def container_mounts(old_container: Mapping[str, Any]) -> tuple[BindMount, ...]:
    """Every bind mount and named volume of a container (docker inspect's Mounts), as BindMounts."""
    found = []
    for mount in old_container.get("Mounts") or []:
        read_only = not mount.get("RW", True)
        if mount.get("Type") == "bind":
            found.append(BindMount(str(mount["Source"]), str(mount["Destination"]), read_only))
        elif mount.get("Type") == "volume" and mount.get("Name"):
            found.append(BindMount(str(mount["Name"]), str(mount["Destination"]), read_only))
    return tuple(found)


@dataclass(frozen=True)
class ThrowawaySetup:
    """What a throwaway container of the target gets from a node: every mount and volume, the
    operator's environment, user and command, with the target configuration on top."""

    mounts: tuple[BindMount, ...]
    environment: tuple[tuple[str, str], ...]
    user: str | None  # the operator's user (None: the image's)
    command: tuple[str, ...]  # the operator's command (empty: the image's)
    # Where they run: the node's engine, where its host paths and named volumes are.
    engine: str = LOCAL_ENGINE


def derive_throwaway(
    node_container: Mapping[str, Any],
    node_image: Mapping[str, Any],
    config: TargetConfig,
    engine: str = LOCAL_ENGINE,
) -> ThrowawaySetup:
    """A throwaway container set up as the node's replacement would be.

    Every mount and volume, not only the keys: Kolla's keystone.conf logs to a
    file under /var/log/kolla, and keystone-manage without that volume exits 1.
    """
    replaced = {m.target for m in config.mounts}
    mounts = tuple(m for m in container_mounts(node_container) if m.target not in replaced) + config.mounts
    environment = with_target_environment(operator_environment(node_container, node_image), config)
    node_config, image_config = node_container["Config"], node_image.get("Config") or {}
    user = node_config.get("User") or None
    command = node_config.get("Cmd") or []
    return ThrowawaySetup(
        mounts=mounts,
        environment=tuple(sorted(environment.items())),
        user=user if user != (image_config.get("User") or None) else None,
        command=tuple(command) if command != (image_config.get("Cmd") or []) else (),
        engine=engine,
    )


def derive_blueprint(
    old_container: Mapping[str, Any],
    old_image: Mapping[str, Any],
    new_image_reference: str,
    name: str | None = None,
    target: TargetConfig | None = None,
) -> ContainerBlueprint:
    """The replacement of ``old_container`` (docker inspect) built on ``new_image_reference``.

    ``old_image`` is the inspect of the image the old container was created
    from; whatever the container's config shares with it came from the image.
    ``name`` is the replacement's name when the old container has been renamed.
    ``target`` is what the new container gets instead of, or on top of, the old one's.
    """
    target = target or TargetConfig()
    config = old_container["Config"]
    image_config = old_image.get("Config") or {}

    environment = with_target_environment(operator_environment(old_container, old_image), target)
    operator_env = [f"{key}={value}" for key, value in environment.items()]
    image_labels = image_config.get("Labels") or {}
    operator_labels = {
        key: value for key, value in (config.get("Labels") or {}).items() if image_labels.get(key) != value
    }

    new_config: dict[str, Any] = {"Env": operator_env, "Labels": operator_labels}
    for key in IMAGE_DEFAULT_KEYS:
        value = config.get(key)
        if value not in (None, "", []) and value != image_config.get(key):
            new_config[key] = value
    for key in CARRIED_KEYS:
        if key in config and config[key] is not None:
            new_config[key] = config[key]
    # A hostname the operator chose is kept; Docker's default (the old
    # container's short id) and the host's own under host networking are not.
    host_network = old_container["HostConfig"].get("NetworkMode") == "host"
    hostname = config.get("Hostname")
    if hostname and not host_network and hostname != str(old_container["Id"])[:12]:
        new_config["Hostname"] = hostname
        if config.get("Domainname"):
            new_config["Domainname"] = config["Domainname"]
    if config.get("ExposedPorts"):
        image_ports = image_config.get("ExposedPorts") or {}
        own_ports = {p: v for p, v in config["ExposedPorts"].items() if p not in image_ports}
        if own_ports:
            new_config["ExposedPorts"] = own_ports

    name = name or str(old_container["Name"]).lstrip("/")
    # HostConfig holds only what the operator asked for (mounts, named volumes, network,
    # restart, ports, limits); it is carried over whole, the target's mounts replacing theirs.
    host_config = dict(old_container["HostConfig"])
    return ContainerBlueprint(
        name=name,
        image=new_image_reference,
        config=new_config,
        host_config=with_target_mounts(host_config, target.mounts) if target.mounts else host_config,
    )

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


def derive_blueprint(
    old_container: Mapping[str, Any],
    old_image: Mapping[str, Any],
    new_image_reference: str,
    name: str | None = None,
) -> ContainerBlueprint:
    """The replacement of ``old_container`` (docker inspect) built on ``new_image_reference``.

    ``old_image`` is the inspect of the image the old container was created
    from; whatever the container's config shares with it came from the image.
    ``name`` is the replacement's name when the old container has been renamed.
    """
    config = old_container["Config"]
    image_config = old_image.get("Config") or {}

    image_env = _env_dict(image_config.get("Env"))
    operator_env = [
        f"{key}={value}" for key, value in _env_dict(config.get("Env")).items() if image_env.get(key) != value
    ]
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
    # HostConfig holds only what the operator asked for (mounts, network, restart,
    # ports, limits); it is carried over whole.
    return ContainerBlueprint(
        name=name,
        image=new_image_reference,
        config=new_config,
        host_config=dict(old_container["HostConfig"]),
    )

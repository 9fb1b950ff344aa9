"""Deriving the replacement container from a real node's docker inspect (captured from the lab)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from runner.drivers.docker_blueprint import derive_blueprint, derive_throwaway
from runner.model import BindMount, TargetConfig

DATA = Path(__file__).parent / "data"


def _captured() -> tuple[dict[str, Any], dict[str, Any]]:
    container = json.loads((DATA / "node_container_inspect.json").read_text())
    image = json.loads((DATA / "node_image_inspect.json").read_text())
    return container, image


def test_what_the_operator_gave_is_kept_and_what_the_image_gave_is_dropped() -> None:
    container, image = _captured()
    blueprint = derive_blueprint(container, image, "keystone-upgrade/keystone:30.0.0")
    body = blueprint.create_body()
    assert blueprint.name == container["Name"].lstrip("/")
    assert body["Image"] == "keystone-upgrade/keystone:30.0.0"
    # Environment: only what compose set; PATH and the image's defaults come from the new image.
    assert body["Env"] == [e for e in container["Config"]["Env"] if e.startswith("KEYSTONE_BIND=")]
    # Labels: compose's and the lab's stay; the old image's release label must not follow.
    assert body["Labels"] == {
        "com.docker.compose.project": container["Config"]["Labels"]["com.docker.compose.project"],
        "com.docker.compose.service": container["Config"]["Labels"]["com.docker.compose.service"],
        "io.keystone-upgrade.lab": "1",
    }
    for image_default in ("Cmd", "Entrypoint", "WorkingDir", "User", "Healthcheck"):
        assert image_default not in body, image_default
    assert "Hostname" not in body  # host networking: the host's name, not ours to set
    assert body["StopTimeout"] == container["Config"]["StopTimeout"]
    host = body["HostConfig"]
    assert host["Binds"] == container["HostConfig"]["Binds"]
    assert host["NetworkMode"] == "host"
    assert host["RestartPolicy"] == container["HostConfig"]["RestartPolicy"]


def test_overrides_the_operator_made_survive_the_swap() -> None:
    container, image = _captured()
    container = copy.deepcopy(container)
    config = container["Config"]
    config["Cmd"] = ["gunicorn", "--check-config"]
    config["Healthcheck"] = {"Test": ["CMD", "true"], "Interval": 1000000000}
    config["User"] = "1000:1000"
    workers = next(e for e in image["Config"]["Env"] if e.startswith("KEYSTONE_WORKERS="))
    config["Env"] = [e for e in config["Env"] if e != workers] + ["KEYSTONE_WORKERS=8"]
    body = derive_blueprint(container, image, "new:1").create_body()
    assert body["Cmd"] == ["gunicorn", "--check-config"]
    assert body["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 1000000000}
    assert body["User"] == "1000:1000"
    assert "KEYSTONE_WORKERS=8" in body["Env"]


def test_a_chosen_hostname_is_kept_off_host_networking() -> None:
    container, image = _captured()
    container = copy.deepcopy(container)
    container["HostConfig"]["NetworkMode"] = "bridge"
    container["Config"]["Hostname"] = "keystone-a"
    assert derive_blueprint(container, image, "new:1").create_body()["Hostname"] == "keystone-a"
    container["Config"]["Hostname"] = container["Id"][:12]
    assert "Hostname" not in derive_blueprint(container, image, "new:1").create_body()


def test_the_target_configuration_replaces_mounts_by_path_and_changes_the_environment() -> None:
    container, image = _captured()
    conf = "/srv/keystone-29/keystone.conf:/etc/keystone/keystone.conf:ro"
    target = TargetConfig(
        mounts=(BindMount.parse(conf), BindMount.parse("keystone_logs:/var/log/kolla")),
        environment=(("KEYSTONE_WORKERS", "1"),),
        environment_remove=("KEYSTONE_BIND",),
    )
    body = derive_blueprint(container, image, "ks:29", target=target).create_body()
    binds = body["HostConfig"]["Binds"]
    assert conf in binds
    assert "keystone_logs:/var/log/kolla:rw" in binds
    # The old keystone.conf is gone; the key repositories the target did not name are kept as they were.
    assert [b for b in binds if b.split(":")[1] == "/etc/keystone/keystone.conf"] == [conf]
    kept = [b for b in container["HostConfig"]["Binds"] if "/etc/keystone/keystone.conf" not in b]
    assert all(b in binds for b in kept)
    assert kept
    assert body["Env"] == ["KEYSTONE_WORKERS=1"]
    # The old container's own inspect is untouched (it stays the rollback copy).
    assert any("/etc/keystone/keystone.conf" in b for b in container["HostConfig"]["Binds"])


def test_a_throwaway_gets_every_mount_and_volume_of_the_node_with_the_target_on_top() -> None:
    container, image = _captured()
    container = copy.deepcopy(container)
    container["Mounts"].append(
        {"Type": "volume", "Name": "kolla_logs", "Destination": "/var/log/kolla", "RW": True}
    )
    container["Config"]["User"] = "root"
    container["Config"]["Cmd"] = ["kolla_start"]
    conf = BindMount.parse("/srv/new/keystone.conf:/etc/keystone/keystone.conf:ro")
    setup = derive_throwaway(container, image, TargetConfig(mounts=(conf,), environment=(("A", "1"),)))
    by_target = {m.target: m for m in setup.mounts}
    assert by_target["/var/log/kolla"] == BindMount("kolla_logs", "/var/log/kolla", False)
    assert by_target["/etc/keystone/keystone.conf"] == conf
    assert {"/etc/keystone/fernet-keys", "/etc/keystone/credential-keys"} <= set(by_target)
    assert dict(setup.environment)["A"] == "1"
    assert "PATH" not in dict(setup.environment)
    assert (setup.user, setup.command) == ("root", ("kolla_start",))
    plain = derive_throwaway(_captured()[0], image, TargetConfig())
    assert (plain.user, plain.command) == (None, ())  # the image's own

"""systemd units of node containers: systemctl's output read, and the swap's moves through a unit or past none."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from runner.drivers.containers import ContainerFacts, ImageFacts
from runner.drivers.docker_blueprint import ContainerBlueprint
from runner.drivers.docker_node import BOOT_CPU_SHARES, DOCKER_DEFAULT_CPU_SHARES, DockerNode
from runner.drivers.systemd import (
    JOB_TIMEOUT_S,
    QUERY_TIMEOUT_S,
    ContainerUnit,
    NodeUnits,
    ServiceError,
    Systemctl,
    exec_start_commands,
    parse_show,
    starts_container,
    unit_name,
)
from runner.errors import DockerError, ExitCode
from runner.model import LOCAL_ENGINE, NodeConfig
from runner.waits import WaitPolicy
from tests.unit.fakes import Calls, FakeEngine, FakeHttp

DATA = Path(__file__).parent / "data"
NAME = "keystone"  # kolla-ansible names the container after the service
UNIT = unit_name(NAME)
KEPT = f"{NAME}-ku-old-run1"

# As systemd 252 prints a kolla-ansible unit (`systemctl show --property=LoadState,ExecStart`).
SHOWN_LOADED = (
    "ExecStart={ path=/usr/bin/docker ; argv[]=/usr/bin/docker start -a keystone ; ignore_errors=no ; "
    "start_time=[Tue 2026-05-26 10:01:02 UTC] ; stop_time=[n/a] ; pid=4242 ; code=(null) ; status=0/0 }\n"
    "LoadState=loaded\n"
)
SHOWN_NOT_FOUND = "LoadState=not-found\nExecStart=\n"
NOT_BOOTED = "System has not been booted with systemd as init system (PID 1). Can't operate."


def test_show_output_is_read_in_any_order() -> None:
    shown = parse_show(SHOWN_LOADED)
    assert shown["LoadState"] == "loaded"
    assert exec_start_commands(shown["ExecStart"]) == [["/usr/bin/docker", "start", "-a", "keystone"]]
    assert parse_show(SHOWN_NOT_FOUND) == {"LoadState": "not-found", "ExecStart": ""}
    assert exec_start_commands("") == []


def test_a_unit_runs_a_container_only_when_its_start_command_names_it() -> None:
    assert starts_container([["/usr/bin/docker", "start", "-a", "keystone"]], "keystone")
    assert starts_container([["/usr/bin/podman", "start", "--attach", "keystone"]], "keystone")
    assert not starts_container([["/usr/bin/docker", "start", "-a", "keystone-2"]], "keystone")
    assert not starts_container([["/usr/bin/docker", "stop", "keystone"]], "keystone")
    assert not starts_container([["/usr/bin/keystone", "start"]], "keystone")
    # systemd quotes arguments with spaces in newer versions.
    assert exec_start_commands(
        '{ path=/bin/sh ; argv[]=/bin/sh -c "docker start -a x" ; ignore_errors=no }'
    ) == [["/bin/sh", "-c", "docker start -a x"]]


def _systemctl(tmp_path: Path, script: str, **bounds: float) -> Systemctl:
    """A systemctl that is a shell script (its arguments land in ``args``)."""
    path = tmp_path / "systemctl"
    path.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "args"}\n{script}\n')
    path.chmod(0o755)
    return Systemctl(
        binary=str(path),
        query_timeout_s=bounds.get("query_timeout_s", QUERY_TIMEOUT_S),
        job_timeout_s=bounds.get("job_timeout_s", JOB_TIMEOUT_S),
    )


def _printing(text: str, code: int = 0, to: str = "") -> str:
    """A script that prints ``text`` (to stderr with ``to=">&2"``) and exits ``code``."""
    return f"cat {to} <<'EOF'\n{text}EOF\nexit {code}"


def test_the_unit_of_a_container_is_found_when_loaded_and_starting_it(tmp_path: Path) -> None:
    systemctl = _systemctl(tmp_path, _printing(SHOWN_LOADED))
    assert systemctl.unit_of(NAME) == UNIT
    assert (tmp_path / "args").read_text().split() == [
        "--no-pager",
        "--no-ask-password",
        "show",
        "--property=LoadState,ExecStart",
        UNIT,
    ]
    assert systemctl.unit_of("other") is None  # loaded, but its ExecStart starts keystone


def test_no_unit_is_told_apart_in_the_debug_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="runner.drivers.systemd")
    assert Systemctl(binary=str(tmp_path / "missing")).unit_of(NAME) is None
    assert _systemctl(tmp_path, _printing(f"{NOT_BOOTED}\n", 1, ">&2")).unit_of(NAME) is None
    assert _systemctl(tmp_path, _printing(SHOWN_NOT_FOUND)).unit_of(NAME) is None
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith(f"no {tmp_path / 'missing'} on PATH")
    assert said[1].startswith("systemd does not answer")
    assert NOT_BOOTED in said[1]
    assert said[2] == f"unit {UNIT} is not there (LoadState=not-found)"


def test_a_systemd_that_does_not_answer_in_time_is_an_error(tmp_path: Path) -> None:
    # The unit may be there: falling back to Docker is what would fight it.
    with pytest.raises(ServiceError, match="did not return within 0s") as raised:
        _systemctl(tmp_path, "sleep 5", query_timeout_s=0.2).unit_of(NAME)
    assert raised.value.exit_code is ExitCode.DOCKER


def test_a_failed_job_says_what_systemd_said(tmp_path: Path) -> None:
    systemctl = _systemctl(tmp_path, "echo 'Job for x failed because the control process exited' >&2\nexit 1")
    with pytest.raises(ServiceError, match=f"systemctl stop {UNIT} failed") as raised:
        systemctl.stop(UNIT)
    assert "control process exited" in str(raised.value.observed)
    assert f"journalctl -u {UNIT}" in str(raised.value.hint)
    assert isinstance(raised.value, DockerError)


@pytest.mark.parametrize(
    ("state", "code", "active"),
    [("active", 0, True), ("activating", 3, True), ("inactive", 3, False), ("failed", 3, False)],
)
def test_is_active_reads_the_state(tmp_path: Path, state: str, code: int, active: bool) -> None:
    assert _systemctl(tmp_path, _printing(f"{state}\n", code)).is_active(UNIT) is active


def test_is_active_refuses_an_answer_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="cannot tell whether"):
        _systemctl(tmp_path, _printing(f"{NOT_BOOTED}\n", 1, ">&2")).is_active(UNIT)


def test_units_are_looked_for_here_and_over_ssh_never_on_a_tcp_engine(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="runner.drivers.systemd")
    services = _Units([], None)
    units = NodeUnits(services)
    assert units.for_node(_node(LOCAL_ENGINE)) is services
    # An ssh:// node's host: its own systemctl, through the same login docker's ssh:// uses.
    over_ssh = units.for_node(_node("ssh://root@node2:2222"))
    assert isinstance(over_ssh, Systemctl)
    assert over_ssh.via == (
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-p",
        "2222",
        "root@node2",
    )
    assert units.for_node(_node("ssh://root@node2:2222")) is over_ssh
    remote = _node("tcp://node3:2376")
    assert units.for_node(remote) is None
    assert units.for_node(remote) is None
    assert [r.getMessage() for r in caplog.records] == [
        "node k1 is on engine tcp://node3:2376: a systemd unit on that host is out of this host's reach; "
        "its container is stopped and started through the Docker API"
    ]


def test_systemctl_over_ssh_runs_on_the_host_and_a_failed_login_is_an_error(tmp_path: Path) -> None:
    ssh = tmp_path / "ssh"
    ssh.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "args"}\nexit "${{SSH_EXIT:-0}}"\n')
    ssh.chmod(0o755)
    over_ssh = Systemctl(via=(str(ssh), "-o", "BatchMode=yes", "root@node2"))
    assert over_ssh.unit_of("keystone") is None  # answered nothing loaded
    assert (tmp_path / "args").read_text().split() == [
        "-o", "BatchMode=yes", "root@node2", "systemctl", "--no-pager", "--no-ask-password",
        "show", "--property=LoadState,ExecStart", "kolla-keystone-container.service",
    ]  # fmt: skip
    ssh.write_text('#!/bin/sh\necho "Permission denied (publickey)." >&2\nexit 255\n')
    with pytest.raises(ServiceError, match="cannot run systemctl on root@node2 over ssh") as raised:
        over_ssh.unit_of("keystone")
    assert "Permission denied" in (raised.value.observed or "")


# -- DockerNode through a unit, and without one ------------------------------------------------------


def _node(engine: str = LOCAL_ENGINE) -> NodeConfig:
    return NodeConfig("k1", engine, NAME, "http://127.0.0.1:5001/v3", ())


class _Engine(FakeEngine):
    """Containers by name, each with an id and a status; every move recorded."""

    def __init__(self, calls: Calls) -> None:
        super().__init__(calls)
        inspect = json.loads((DATA / "node_container_inspect.json").read_text())
        self.inspect: dict[str, Any] = {**inspect, "Name": f"/{NAME}"}
        self.image_inspect = json.loads((DATA / "node_image_inspect.json").read_text())
        self.containers: dict[str, dict[str, str]] = {"old": {"name": NAME, "status": "running"}}
        self.stops_ignored = False  # a container that runs on after its unit stopped

    def _id(self, name_or_id: str) -> str | None:
        if name_or_id in self.containers:
            return name_or_id
        return next((i for i, c in self.containers.items() if c["name"] == name_or_id), None)

    def container(self, name: str) -> ContainerFacts | None:
        found = self._id(name)
        if found is None:
            return None
        c = self.containers[found]
        return ContainerFacts(
            found, c["name"], c["status"], "sha256:img", "ks:28", "28.1.0", {}, self.inspect
        )

    def image(self, reference: str) -> ImageFacts | None:
        return ImageFacts("sha256:img", reference, "28.1.0", self.image_inspect)

    def set_status(self, name: str, status: str) -> None:
        found = self._id(name)
        if found is not None and not (status == "exited" and self.stops_ignored):
            self.containers[found]["status"] = status

    def stop(self, container: str, timeout_s: int) -> None:
        self.calls.append(f"docker stop {container}")
        self.set_status(container, "exited")

    def rename(self, container: str, new_name: str) -> None:
        self.calls.append(f"docker rename {container} {new_name}")
        self.containers[container]["name"] = new_name

    def create_and_start(self, blueprint: ContainerBlueprint) -> str:
        self.calls.append(f"docker create-and-start {blueprint.name}")
        self.containers["new"] = {"name": blueprint.name, "status": "running"}
        return "new"

    def create(self, blueprint: ContainerBlueprint) -> str:
        self.calls.append(f"docker create {blueprint.name}")
        self.containers["new"] = {"name": blueprint.name, "status": "created"}
        return "new"

    def start(self, container: str) -> None:
        self.calls.append(f"docker start {container}")
        self.set_status(container, "running")

    def remove(self, container: str) -> None:
        self.calls.append(f"docker remove {container}")
        self.containers.pop(container)


class _Units:
    """systemd with one unit, ``kolla-<NAME>-container.service``, acting on the engine's containers."""

    def __init__(
        self, calls: Calls, engine: _Engine | None, has_unit: bool = True, active: bool = True
    ) -> None:
        self.calls = calls
        self.engine = engine
        self.has_unit = has_unit
        self.active = active

    def unit_of(self, container: str) -> str | None:
        self.calls.append(f"unit-of {container}")
        return unit_name(container) if self.has_unit else None

    def stop(self, unit: str) -> None:
        self.calls.append(f"systemctl stop {unit}")
        self.active = False
        if self.engine is not None:
            self.engine.set_status(NAME, "exited")

    def start(self, unit: str) -> None:
        self.calls.append(f"systemctl start {unit}")
        self.active = True
        if self.engine is not None:
            self.engine.set_status(NAME, "running")  # ExecStart: docker start -a NAME

    def is_active(self, unit: str) -> bool:
        self.calls.append(f"systemctl is-active {unit}")
        return self.active


def _swap(has_unit: bool | None) -> tuple[DockerNode, _Engine, Calls]:
    """A node, its engine and the shared calls; ``has_unit`` None: no service manager at all."""
    calls: Calls = []
    engine = _Engine(calls)
    services = None if has_unit is None else _Units(calls, engine, has_unit)
    return DockerNode(_node(), engine, FakeHttp(), services), engine, calls


@pytest.mark.parametrize("has_unit", [None, False])
def test_without_a_unit_the_swap_goes_through_the_docker_api(has_unit: bool | None) -> None:
    node, engine, calls = _swap(has_unit)
    stopped = node.stop()
    node.set_aside(KEPT)
    started = node.start_target("ks:29", KEPT)
    restored = node.restore_old(KEPT)
    looked = [] if has_unit is None else [f"unit-of {NAME}"]
    assert calls == [
        *looked,  # once: the answer holds for the whole swap
        "docker stop old",
        f"docker rename old {KEPT}",
        f"docker create-and-start {NAME}",
        "docker remove new",
        f"docker rename old {NAME}",
        "docker start old",
    ]
    assert set(stopped) == {"container_id", "image", "image_id"}
    assert started == {"container_id": "new", "image": "ks:29", "cpu_shares": BOOT_CPU_SHARES}
    assert restored == {"container_id": "old", "image": "ks:28", "removed_replacement": True}
    assert engine.containers == {"old": {"name": NAME, "status": "running"}}


def test_with_a_unit_the_container_is_stopped_and_started_only_through_it() -> None:
    node, engine, calls = _swap(True)
    stopped = node.stop()
    assert calls == [f"unit-of {NAME}", f"systemctl stop {UNIT}"]
    assert engine.containers["old"]["status"] == "exited"
    node.set_aside(KEPT)
    started = node.start_target("ks:29", KEPT)
    assert calls[2:] == [f"docker rename old {KEPT}", f"docker create {NAME}", f"systemctl start {UNIT}"]
    assert engine.containers["new"] == {"name": NAME, "status": "running"}
    assert stopped["unit"] == UNIT
    assert started == {"container_id": "new", "image": "ks:29", "cpu_shares": BOOT_CPU_SHARES, "unit": UNIT}


def test_restoring_through_a_unit_stops_it_before_the_names_change() -> None:
    node, engine, calls = _swap(True)
    node.stop()
    node.set_aside(KEPT)
    node.start_target("ks:29", KEPT)
    del calls[:]
    restored = node.restore_old(KEPT)
    assert calls == [
        f"systemctl is-active {UNIT}",
        f"systemctl stop {UNIT}",
        "docker remove new",
        f"docker rename old {NAME}",
        f"systemctl start {UNIT}",
    ]
    assert engine.containers == {"old": {"name": NAME, "status": "running"}}
    assert restored == {"container_id": "old", "image": "ks:28", "removed_replacement": True, "unit": UNIT}


def test_restoring_after_the_rename_only_starts_the_stopped_unit() -> None:
    # A fresh runtime, as undo and resume make: the unit is looked up again.
    node, engine, calls = _swap(True)
    node.stop()
    node.set_aside(KEPT)
    del calls[:]
    again = DockerNode(_node(), engine, FakeHttp(), _Units(calls, engine, active=False))
    again.restore_old(KEPT)
    assert calls == [
        f"unit-of {NAME}",
        f"systemctl is-active {UNIT}",
        f"docker rename old {NAME}",
        f"systemctl start {UNIT}",
    ]
    assert engine.containers == {"old": {"name": NAME, "status": "running"}}


def test_a_container_still_running_after_its_unit_stopped_is_an_error() -> None:
    calls: Calls = []
    engine = _Engine(calls)
    engine.stops_ignored = True
    unit = ContainerUnit(_Units(calls, engine), NAME, engine, exited=WaitPolicy("exited", 0.3, 0.05))
    with pytest.raises(
        ServiceError, match=f"systemctl stop {UNIT} returned but container {NAME} has not exited"
    ):
        unit.stop("old")
    assert calls == [f"unit-of {NAME}", f"systemctl stop {UNIT}"]  # never stopped past the unit


class _WeightedEngine(_Engine):
    """Each container with its own CPU weight (HostConfig.CpuShares; 0: none of its own)."""

    def __init__(self, calls: Calls, old_shares: int, cgroups: int) -> None:
        super().__init__(calls)
        self.cgroups = cgroups
        self.shares: dict[str, int] = {"old": old_shares}

    def create_and_start(self, blueprint: ContainerBlueprint) -> str:
        new = super().create_and_start(blueprint)
        self.shares[new] = blueprint.host_config.get("CpuShares") or 0
        return new

    def container(self, name: str) -> ContainerFacts | None:
        found = super().container(name)
        if found is None:
            return None
        host = {**self.inspect["HostConfig"], "CpuShares": self.shares.get(found.id, 0)}
        return dataclasses.replace(found, inspect={**self.inspect, "HostConfig": host})

    def set_cpu_shares(self, container: str, shares: int) -> None:
        self.calls.append(f"docker update --cpu-shares {shares} {container}")
        self.shares[self._id(container) or container] = shares


@pytest.mark.parametrize(
    ("old_shares", "cgroups", "boot", "final"),
    [
        (0, 1, BOOT_CPU_SHARES, DOCKER_DEFAULT_CPU_SHARES),  # v1: 1024 is the default's weight
        (512, 2, BOOT_CPU_SHARES, 512),  # its own weight, given back as it was
        (32, 1, 32, 32),  # already lower than the boot weight: left alone
        (0, 2, 0, 0),  # v2 without its own: an explicit 1024 would not be the default; not lowered
    ],
)
def test_the_replacement_boots_at_a_low_weight_and_gets_the_old_one_back(
    old_shares: int, cgroups: int, boot: int, final: int
) -> None:
    calls: Calls = []
    engine = _WeightedEngine(calls, old_shares, cgroups)
    node = DockerNode(_node(), engine, FakeHttp(), None)
    node.stop()
    node.set_aside(KEPT)
    started = node.start_target("ks:29", KEPT)
    assert engine.shares["new"] == boot
    assert started["cpu_shares"] == (boot or None)
    given = node.full_cpu(KEPT)
    assert engine.shares["new"] == final
    assert given["cpu_shares"] == (final or None)
    assert bool([c for c in calls if c.startswith("docker update")]) == (boot != final)

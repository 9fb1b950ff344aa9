"""The warm keystone-manage container's scripts, against a stand-in Keystone package: Keystone
imported once, each command forked with its own output and exit code, a command past its
timeout left running and finished, the server gone with its input; and how the runner's side
reads their answers (run here, in a container of its own, or left running)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from runner.drivers.containers import ExecNotStarted, Finished, StillRunning
from runner.drivers.docker_blueprint import ThrowawaySetup
from runner.drivers.ports import Drivers
from runner.drivers.warm_keystone import (
    AFTER_START_SCRIPT,
    CLIENT_SCRIPT,
    NOT_STARTED,
    SERVER_SCRIPT,
    STILL_RUNNING,
    ManageSetup,
    WarmKeystone,
)
from runner.errors import DockerError
from runner.migrations import CHECKS_LOG_TO_OUTPUT
from runner.model import LOCAL_ENGINE, BindMount
from runner.upgrade import _warm_beside_preflight
from runner.waits import CONTAINER_EXITED
from tests.unit.fakes import FakeEngine, target_inventory

# A stand-in keystone.cmd.manage that counts its imports in a file beside it.
MANAGE = """\
import os, pathlib, sys, time
imports = pathlib.Path(__file__).with_name('imports')
imports.write_text((imports.read_text() if imports.exists() else '') + 'x')

def main():
    command = sys.argv[1:]
    print('ran', *command)
    if command == ['db_sync', '--contract']:
        print('contract broke', file=sys.stderr)
        sys.exit(3)
    if command == ['environment']:
        print('log file:', repr(os.environ.get('OS_DEFAULT__LOG_FILE')), os.environ.get('FROM_SERVER'))
    if command == ['slow']:
        time.sleep(1.5)
        print('slow done')
"""


def _keystone(root: Path, manage: str) -> Path:
    (root / "keystone/cmd").mkdir(parents=True)
    (root / "keystone/__init__.py").write_text("")
    (root / "keystone/cmd/__init__.py").write_text("")
    (root / "keystone/cmd/manage.py").write_text(manage)
    return root / "keystone"


def _environment(root: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}


def _client(
    root: Path,
    socket_path: Path,
    *argv: str,
    timeout: float = 30,
    ready_within: float = 10,
    environment: str = "{}",
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            CLIENT_SCRIPT,
            str(socket_path),
            str(ready_within),
            str(timeout),
            environment,
            *argv,
        ],
        env=_environment(root),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    _keystone(tmp_path, MANAGE)
    socket_path = tmp_path / "manage.sock"
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(socket_path)],
        env={**_environment(tmp_path), "TMPDIR": str(tmp_path), "FROM_SERVER": "server's"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process, socket_path
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def test_commands_fork_from_one_import_each_with_its_output_and_exit_code(
    server: tuple[subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    process, socket_path = server
    expand = _client(tmp_path, socket_path, "db_sync", "--expand")
    contract = _client(tmp_path, socket_path, "db_sync", "--contract")
    assert (expand.returncode, contract.returncode) == (0, 3)
    assert expand.stdout.strip() == "ran db_sync --expand"
    assert "ran db_sync --contract" in contract.stdout
    assert "contract broke" in contract.stdout
    assert (tmp_path / "keystone/cmd/imports").read_text() == "x"
    assert process.stdin is not None
    process.stdin.close()  # the runner gone: the idle server exits
    assert process.wait(timeout=10) == 0
    assert not list(tmp_path.glob("keystone-manage-*.log")), "every command's output file is removed"


def test_a_command_gets_its_environment_over_the_servers_and_the_next_one_does_not(
    server: tuple[subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    _, socket_path = server
    logged = _client(tmp_path, socket_path, "environment", environment='{"OS_DEFAULT__LOG_FILE": ""}')
    plain = _client(tmp_path, socket_path, "environment")
    assert logged.stdout.strip() == "ran environment\nlog file: '' server's"
    assert plain.stdout.strip() == "ran environment\nlog file: None server's"


def test_a_command_past_its_timeout_is_left_running_and_the_server_exits_after_it(
    server: tuple[subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    process, socket_path = server
    late = _client(tmp_path, socket_path, "slow", timeout=0.3)
    assert late.returncode == STILL_RUNNING
    assert "still running" in late.stdout
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=10) == 0
    assert process.stdout is not None
    output = process.stdout.read()
    assert "keystone-manage slow exited 0" in output, "the command was finished, not killed"
    assert "slow done" in output, "what it wrote is kept where the operator can read it"


def test_nothing_runs_where_the_server_is_missing_or_cannot_import_keystone(tmp_path: Path) -> None:
    _keystone(tmp_path, "raise ImportError('no oslo here')\n")
    socket_path = tmp_path / "manage.sock"
    assert _client(tmp_path, socket_path, "db_sync", "--expand", ready_within=0.5).returncode == NOT_STARTED
    broken = subprocess.run(
        [sys.executable, "-c", SERVER_SCRIPT, str(socket_path)],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert broken.returncode == 1
    assert "no oslo here" in broken.stderr
    assert _client(tmp_path, socket_path, "db_sync", "--expand", ready_within=0.5).returncode == NOT_STARTED


class _Answering(FakeEngine):
    """An engine whose warm container answers every command with ``answer`` (or raises it)."""

    def __init__(self, answer: Finished | Exception) -> None:
        super().__init__([])
        self.answer = answer
        self.environments: list[str] = []

    def exec_output(self, container: str, command: Sequence[str], *, user: str | None = None) -> Finished:
        self.calls.append("exec " + " ".join([command[5], *command[7:]]))
        self.environments.append(command[6])
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


SETUP = ManageSetup("local", "keystone:29.1.0", (), (("A", "1"),), None)


def _warm(answer: Finished | Exception) -> tuple[WarmKeystone, _Answering]:
    engine = _Answering(answer)
    warm = WarmKeystone({"local": engine})
    warm.begin(SETUP, {"purpose": "keystone-manage"})
    return warm, engine


def test_the_runner_side_runs_only_what_the_warm_container_was_set_up_for() -> None:
    warm, engine = _warm(Finished(3, "contract broke"))
    other = ManageSetup("local", "keystone:29.1.0", (), (("A", "2"),), None)
    assert warm.run(other, ["db_sync", "--contract"], 60) is None
    assert warm.run(SETUP, ["db_sync", "--contract"], 60) == Finished(3, "contract broke")
    assert engine.calls == ["start attached keystone:29.1.0", "exec 60 db_sync --contract"]


def test_a_command_it_could_not_start_is_left_to_a_container_of_its_own() -> None:
    warm, engine = _warm(Finished(NOT_STARTED, "not started: connection refused"))
    assert warm.run(SETUP, ["db_sync", "--expand"], 60) is None
    assert "end input warm" in engine.calls
    assert warm.run(SETUP, ["db_sync", "--expand"], 60) is None, "closed: asked no more"
    assert engine.calls.count("exec 60 db_sync --expand") == 1


def test_a_command_past_its_timeout_is_reported_still_running_and_not_waited_for() -> None:
    warm, engine = _warm(Finished(STILL_RUNNING, "still running after 60s"))
    with pytest.raises(StillRunning) as raised:
        warm.run(SETUP, ["db_sync", "--expand"], 60)
    assert raised.value.container_id == "warm"
    assert engine.calls[-1] == "end input warm", "its input ended, and it was not waited for"


def test_a_container_that_cannot_take_a_command_leaves_it_to_a_container_of_its_own() -> None:
    warm, engine = _warm(ExecNotStarted("cannot run python3", observed="container is paused", hint="-"))
    assert warm.run(SETUP, ["db_sync", "--expand"], 60) is None
    assert "end input warm" in engine.calls


def test_an_answer_lost_once_the_command_may_have_started_is_never_run_again_elsewhere() -> None:
    warm, engine = _warm(DockerError("lost the answer", observed="connection reset", hint="-"))
    with pytest.raises(StillRunning) as raised:
        warm.run(SETUP, ["db_sync", "--expand"], 60)
    assert "connection reset" in str(raised.value.observed)
    assert engine.calls[-1] == "end input warm", "kept for the operator, not removed"


class _Reading(FakeEngine):
    """An engine whose warm container answers a reading with ``answer`` (or raises it)."""

    def __init__(self, answer: Finished | Exception) -> None:
        super().__init__([])
        self.answer = answer
        self.waited: list[bool] = []  # per reading: did it wait for the server's socket first

    def exec_output(self, container: str, command: Sequence[str], *, user: str | None = None) -> Finished:
        waits = list(command[:3]) == ["python3", "-c", AFTER_START_SCRIPT]
        self.waited.append(waits)
        self.calls.append(f"exec as {user} in {container}: {' '.join(command[5:] if waits else command)}")
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


MOUNTED = (BindMount("/srv/fernet-keys", "/etc/keystone/fernet-keys", read_only=False),)
READING = ["python3", "-c", "print('read')"]


def _warm_reading(answer: Finished | Exception) -> tuple[WarmKeystone, _Reading]:
    engine = _Reading(answer)
    warm = WarmKeystone({"local": engine})
    warm.begin(dataclasses.replace(SETUP, mounts=MOUNTED), {"purpose": "keystone-manage"})
    return warm, engine


def test_a_reading_runs_as_root_only_in_a_warm_container_of_the_same_image_and_mounts() -> None:
    warm, engine = _warm_reading(Finished(0, "read"))
    assert warm.read("local", "keystone:29.1.0", (), READING) is None, "other mounts: other keys"
    assert warm.read("local", "keystone:28.1.0", MOUNTED, READING) is None
    assert warm.read("remote", "keystone:29.1.0", MOUNTED, READING) is None
    assert warm.read("local", "keystone:29.1.0", list(MOUNTED), READING) == Finished(0, "read")
    assert engine.calls == [
        "start attached keystone:29.1.0",
        "exec as root in warm: python3 -c print('read')",
    ]
    assert engine.waited == [True], "a reading waits for the server's socket, then runs as given"


@pytest.mark.parametrize(("first", "waited"), [(0, [True, False]), (NOT_STARTED, [True, True])])
def test_only_readings_before_the_socket_was_seen_wait_for_it(first: int, waited: list[bool]) -> None:
    warm, engine = _warm_reading(Finished(first, "read"))
    warm.read("local", "keystone:29.1.0", MOUNTED, READING)
    engine.answer = Finished(0, "read")
    assert warm.read("local", "keystone:29.1.0", MOUNTED, READING) == Finished(0, "read")
    assert engine.waited == waited


def test_a_reading_runs_once_the_servers_socket_is_there_and_not_at_all_without_it(tmp_path: Path) -> None:
    socket_path = tmp_path / "server.sock"

    def reading(within_s: float) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", "print('read')"]
        return subprocess.run(
            [sys.executable, "-c", AFTER_START_SCRIPT, str(socket_path), str(within_s), *command],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )

    missing = reading(0.2)
    assert (missing.returncode, missing.stdout) == (NOT_STARTED, ""), "never there: nothing read"
    bound = threading.Timer(0.3, socket_path.touch)
    bound.start()
    late = reading(20)
    bound.join()
    assert (late.returncode, late.stdout) == (0, "read\n"), "read once the server bound it"


def test_a_reading_that_fails_there_is_left_to_a_container_of_its_own_and_the_container_kept() -> None:
    warm, engine = _warm_reading(DockerError("lost the answer", observed="connection reset", hint="-"))
    assert warm.read("local", "keystone:29.1.0", MOUNTED, READING) is None
    assert "end input warm" not in engine.calls, "a reading changes nothing: the migrations still fork there"
    warm.close(wait=False)
    assert warm.read("local", "keystone:29.1.0", MOUNTED, READING) is None, "closed: asked no more"
    assert sum(c.startswith("exec") for c in engine.calls) == 1


def test_a_commands_environment_goes_with_it_and_only_with_it() -> None:
    warm, engine = _warm(Finished(0, "up to date"))
    warm.run(SETUP, ["db_sync", "--check"], 60, {"OS_DEFAULT__LOG_FILE": ""})
    warm.run(SETUP, ["db_sync", "--expand"], 60)
    assert engine.environments == ['{"OS_DEFAULT__LOG_FILE": ""}', "{}"]


def test_preflight_checks_in_the_warm_container_log_to_their_output_within_a_one_shots_bound() -> None:
    class _Manage:
        def __init__(self) -> None:
            self.asked: list[tuple[object, ...]] = []

        def begin(self, setup: ManageSetup, labels: Mapping[str, str]) -> None:
            self.asked.append(("begin", setup.image))

        def run(
            self,
            setup: ManageSetup,
            argv: Sequence[str],
            timeout_s: float,
            environment: Mapping[str, str] | None = None,
        ) -> Finished | None:
            self.asked.append(("run", tuple(argv), timeout_s, dict(environment or {})))
            return Finished(0, "up to date")

        def read(
            self, engine: str, image: str, mounts: Sequence[BindMount], command: Sequence[str]
        ) -> Finished | None:
            self.asked.append(("read", engine, image, tuple(mounts), tuple(command)))
            return Finished(0, "EXPAND e")

    manage = _Manage()
    begin = _warm_beside_preflight(
        target_inventory(), cast(Drivers, SimpleNamespace(keystone_manage=manage)), "r1"
    )
    assert begin is not None
    mounts = (BindMount("/srv/keys", "/etc/keystone/fernet-keys", read_only=True),)
    warm = begin(ThrowawaySetup(mounts, (), None, ()))
    assert warm is not None
    assert warm.manage(["db_sync", "--check"]) == Finished(0, "up to date")
    assert warm.read(["python3", "-c", "print()"]) == Finished(0, "EXPAND e")
    assert manage.asked == [
        ("begin", "ks:29"),
        ("run", ("db_sync", "--check"), CONTAINER_EXITED.timeout_s, CHECKS_LOG_TO_OUTPUT),
        # A reading goes to the container begun for this setup: its engine, image and mounts.
        ("read", LOCAL_ENGINE, "ks:29", mounts, ("python3", "-c", "print()")),
    ]

"""The runner's own work keeps to one CPU of a host the nodes share: its process, and its throwaways."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from docker.errors import APIError

from runner.drivers.docker_engine import DockerEngine

CHILD = """
import os, threading
from runner.host import keep_to_last_cpu
before = sorted(os.sched_getaffinity(0))
kept = keep_to_last_cpu()
seen = []
thread = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
thread.start(); thread.join()
print(before, kept, sorted(os.sched_getaffinity(0)), seen[0])
"""


def test_the_runner_keeps_to_its_last_cpu_and_so_do_the_threads_it_starts() -> None:
    # In a child: the test process keeps its CPUs.
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
    allowed = sorted(os.sched_getaffinity(0))
    expected = [allowed[-1]] if len(allowed) > 1 else allowed
    assert out.strip() == f"{allowed} {allowed[-1] if len(allowed) > 1 else None} {expected} {expected}"


class _Api:
    """The docker API's two calls a throwaway's creation makes; a cpuset the engine refuses."""

    def __init__(self, refuse_cpuset: bool) -> None:
        self.refuse_cpuset = refuse_cpuset
        self.created: list[dict[str, Any]] = []

    def create_host_config(self, **config: Any) -> dict[str, Any]:
        return config

    def create_container(self, image: str, **settings: Any) -> dict[str, str]:
        if self.refuse_cpuset and settings["host_config"]["cpuset_cpus"] is not None:
            raise APIError(
                "400", explanation="Requested CPUs are not available - requested 3, available: 0-1"
            )
        self.created.append(settings["host_config"])
        return {"Id": f"c{len(self.created)}"}


class _Client:
    def __init__(self, cpus: int | Exception, refuse_cpuset: bool = False) -> None:
        self.cpus = cpus
        self.api = _Api(refuse_cpuset)

    def info(self) -> dict[str, int]:
        if isinstance(self.cpus, Exception):
            raise self.cpus
        return {"NCPU": self.cpus}


def _engine(client: _Client) -> DockerEngine:
    engine = DockerEngine()
    engine._client = client  # the SDK's client, faked
    return engine


def _create(engine: DockerEngine, **options: Any) -> str:
    """A throwaway's creation with nothing asked of it but ``options``."""
    settings: dict[str, Any] = {
        "mounts": (),
        "labels": {},
        "environment": None,
        "user": None,
        "entrypoint": None,
        "stdin_open": False,
        "tmpfs": (),
    }
    return engine._create_throwaway("keystone:29.1.0", ["true"], **{**settings, **options})


def test_throwaways_keep_to_the_engine_hosts_last_cpu() -> None:
    client = _Client(4)
    _create(_engine(client))
    assert client.api.created[0]["cpuset_cpus"] == "3"


def test_on_one_cpu_or_unknown_throwaways_run_anywhere() -> None:
    for cpus in (1, APIError("500", explanation="info failed")):
        client = _Client(cpus)
        _create(_engine(client))
        assert client.api.created[0]["cpuset_cpus"] is None


def test_an_engine_whose_cgroup_lacks_that_cpu_gets_throwaways_on_any_cpu_from_then_on() -> None:
    client = _Client(4, refuse_cpuset=True)
    engine = _engine(client)
    assert _create(engine) == "c1"
    assert _create(engine) == "c2"
    assert [c["cpuset_cpus"] for c in client.api.created] == [None, None]

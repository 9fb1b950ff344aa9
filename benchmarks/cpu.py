"""Where the CPU went during a measurement: this process (the probe), the procedure's process,
HAProxy, the Keystone nodes, the database, throwaway containers, and the machine as a whole.

Read from /proc/stat and the cgroup v1 ``cpuacct`` counters Docker keeps per container
(cgroupfs driver), sampled in a background thread so that containers removed during the run
still count up to their last sample. Where those files do not exist, only this process and
the machine are reported.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import docker

CGROUP = Path("/sys/fs/cgroup/cpuacct/docker")
SAMPLE_EVERY_S = 0.5


def _machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot."""
    fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields) - idle) / ticks


def _process_s() -> tuple[float, float]:
    """This process's CPU seconds, and its children's (counted once they have been waited for)."""
    times = os.times()
    return times.user + times.system, times.children_user + times.children_system


def _kind(name: str, project: str) -> str:
    if not name.startswith(project):
        return "throwaways"
    if "haproxy" in name:
        return "haproxy"
    if "keystone" in name:
        return "nodes"
    if "mariadb" in name or name.endswith("-db"):
        return "database"
    return "other"


class CpuMeter:
    """CPU seconds per part between ``mark`` calls; ``cores`` turns them into cores used."""

    def __init__(self, client: docker.DockerClient, project: str):
        self.client = client
        self.project = project
        self._last: dict[str, tuple[str, float]] = {}  # container id -> (kind, usage s)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)

    def _sample(self) -> None:
        if not CGROUP.is_dir():
            return
        try:
            running = self.client.containers.list()
        except docker.errors.DockerException:
            return
        for container in running:
            usage = CGROUP / container.id / "cpuacct.usage"
            try:
                seconds = int(usage.read_text()) / 1e9
            except (OSError, ValueError):
                continue
            with self._lock:
                self._last[container.id] = (_kind(container.name, self.project), seconds)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._sample()

    def start(self) -> CpuMeter:
        """Start sampling."""
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=5)

    def mark(self) -> dict[str, Any]:
        """The counters now (containers as last sampled), to subtract later."""
        self._sample()
        parts: dict[str, float] = {}
        with self._lock:
            for kind, seconds in self._last.values():
                parts[kind] = parts.get(kind, 0.0) + seconds
        process, children = _process_s()
        return {
            "at": time.monotonic(),
            "process": process,
            "children": children,
            "machine": _machine_busy_s(),
            "parts": parts,
        }


def cores(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Cores used on average between two marks, per part (a container seen only after counts whole)."""
    seconds = max(1e-6, after["at"] - before["at"])
    used = {
        "probe": after["process"] - before["process"],
        "procedure (runner)": after.get("children", 0.0) - before.get("children", 0.0),
        "machine": after["machine"] - before["machine"],
    }
    for kind, value in after["parts"].items():
        used[kind] = value - before["parts"].get(kind, 0.0)
    return {kind: round(value / seconds, 2) for kind, value in sorted(used.items())}


# A probe whose requests leave this late (p99) has run out of workers: it limits itself.
PROBE_BEHIND_MS = 100.0


def limiter(used: dict[str, float], machine_cores: int, sent_late_p99_ms: float = 0.0) -> str:
    """What most plausibly kept the rate from rising, from the cores each part used."""
    if used.get("machine", 0.0) >= 0.9 * machine_cores:
        parts = {k: v for k, v in used.items() if k != "machine"}
        top = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
        spent = ", ".join(f"{k} {v}" for k, v in top)
        return f"the machine's {machine_cores} cores were busy ({used['machine']} used: {spent})"
    if used.get("probe", 0.0) >= 0.9:
        return "the probe's own process: one core, Python's GIL"
    if sent_late_p99_ms > PROBE_BEHIND_MS:
        return f"the probe's workers: its requests left up to {sent_late_p99_ms:.0f} ms late (p99)"
    return "no CPU was saturated: the nodes' workers (latency-bound)"

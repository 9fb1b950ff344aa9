"""The few things the runner does to the host itself: installing a Debian package, keeping to one CPU."""

from __future__ import annotations

import os
import subprocess

from runner.errors import RunnerError


def apt_install(package: str, error: type[RunnerError], hint: str) -> None:
    """Install one Debian package with apt-get, or raise ``error`` with apt's last words."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise error(
                f"could not install {package}",
                observed=f"{' '.join(argv)} exited {result.returncode}: {result.stderr[-800:]}",
                hint=hint,
            )


def keep_to_last_cpu() -> int | None:
    """Keep the runner (this thread, and every thread it starts from now on) to the last CPU it may
    use, the one its throwaway containers are kept to on their engine's host: where the nodes
    share this host, they keep the other CPUs while the runner reads, waits and reports. The CPU,
    or None where there is only one or the platform cannot say."""
    try:
        allowed = os.sched_getaffinity(0)
        if len(allowed) < 2:
            return None
        last = max(allowed)
        os.sched_setaffinity(0, {last})
    except (AttributeError, OSError):  # not Linux, or not allowed
        return None
    return last

"""The few things the runner does to the host itself: installing a Debian package."""

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

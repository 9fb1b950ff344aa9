"""Remember a lab cluster's settings between commands (`lab up`, then `lab info` or `lab down`).

Non-secret settings go to lab.json in the state directory; the passwords stay
in the config directory's 0600 secret files and are read back from there.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from runner.errors import LabError
from runner.lab.render import SECRET_FILES
from runner.lab.settings import LabPorts, LabSecrets, LabSettings

SETTINGS_FILE = "lab.json"


def save_settings(settings: LabSettings) -> Path:
    """Write lab.json atomically (temp file, then rename)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    path = settings.state_dir / SETTINGS_FILE
    document = {
        "project": settings.project,
        "keystone_version": settings.keystone_version,
        "config_dir": str(settings.config_dir),
        "db_log_bin": settings.db_log_bin,
        "ports": {
            "db": settings.ports.db,
            "memcached": settings.ports.memcached,
            "lb": settings.ports.lb,
            "lb_external": settings.ports.lb_external,
            "nodes": list(settings.ports.nodes),
        },
    }
    handle, temp = tempfile.mkstemp(dir=settings.state_dir, prefix=".lab-", suffix=".json")
    with os.fdopen(handle, "w") as out:
        json.dump(document, out, indent=2)
    os.replace(temp, path)
    return path


def load_settings(state_dir: Path) -> LabSettings:
    """The settings `lab up` saved in ``state_dir``."""
    path = state_dir / SETTINGS_FILE
    try:
        document = json.loads(path.read_text())
        config_dir = Path(document["config_dir"])
        ports = document["ports"]
        return LabSettings(
            project=document["project"],
            keystone_version=document["keystone_version"],
            ports=LabPorts(
                db=ports["db"],
                memcached=ports["memcached"],
                lb=ports["lb"],
                nodes=tuple(ports["nodes"]),
            ),
            secrets=LabSecrets(**{f: (config_dir / rel).read_text() for f, rel in SECRET_FILES.items()}),
            config_dir=config_dir,
            state_dir=state_dir,
            db_log_bin=bool(document.get("db_log_bin", False)),
        )
    except (OSError, KeyError, ValueError) as exc:
        raise LabError(
            f"no lab cluster is recorded in {state_dir}",
            observed=str(exc),
            hint="bring one up first: keystone-upgrade lab up",
        ) from exc

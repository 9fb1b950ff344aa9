"""Which Keystone release a container or image carries, read inside it: labels are only hints.

Kolla's images and most hand-built ones carry no release label, and a label can
be wrong; the package installed in the container is what serves. Its metadata
answers in a tenth of a second; `keystone-manage --version` (a second: it
imports all of Keystone) is the fallback for images whose python3 is not
Keystone's.
"""

from __future__ import annotations

from runner.drivers.containers import Engine

# Read inside serving nodes too: at the lowest priority, the node's workers go first.
VERSION_FROM_METADATA = [
    "python3",
    "-c",
    "import os; os.nice(19); import importlib.metadata as m; print(m.version('keystone'))",
]
VERSION_FROM_MANAGE = ["keystone-manage", "--version"]

# The same two ways, inside a throwaway container's Python script (runner/facts.py).
RELEASE_FUNCTION = """\
def keystone_release():
    import importlib.metadata, subprocess
    try:
        return importlib.metadata.version('keystone')
    except importlib.metadata.PackageNotFoundError:
        done = subprocess.run(['keystone-manage', '--version'], capture_output=True, text=True)
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[-1].strip() if done.returncode == 0 and lines else None
"""


def release_inside(engine: Engine, container: str) -> str | None:
    """The Keystone release installed in a running container; None when neither way answers."""
    for command in (VERSION_FROM_METADATA, VERSION_FROM_MANAGE):
        finished = engine.exec_output(container, command)
        lines = finished.output.strip().splitlines()
        if finished.exit_code == 0 and lines:
            return lines[-1].strip()
    return None


def label_disagreement(label: str | None, observed: str | None) -> str | None:
    """What is wrong when a release label contradicts the package inside (None: nothing)."""
    if label and observed and label != observed:
        return f"its label says {label}, the Keystone package inside it is {observed}"
    return None


def release_of_image(engine: Engine, image: str, labels: dict[str, str]) -> str | None:
    """The Keystone release installed in ``image``, read in a throwaway container of it."""
    for command in (VERSION_FROM_METADATA, VERSION_FROM_MANAGE):
        finished = engine.run_once(image, command[1:], entrypoint=command[:1], mounts=[], labels=labels)
        lines = finished.output.strip().splitlines()
        if finished.exit_code == 0 and lines:
            return lines[-1].strip()
    return None

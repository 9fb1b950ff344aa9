"""What a key repository holds, as a digest read inside a container: nodes and throwaways compared by content.

Host paths say nothing across hosts (and a Kolla volume has none); the keys
themselves are what every node must share, or a token one node issues fails
on the next. Each repository's digest is a SHA-256 over its file names and
the SHA-256 of each file's content, so no key ever leaves the container.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runner.drivers.containers import Engine, Finished
from runner.drivers.keystone_release import RELEASE_FUNCTION
from runner.errors import DockerError

# Python's standard library only: it runs in node images and the target image alike.
# One line per repository: KEYDIGEST <repository> <files> <digest>; files is -1 when missing.
DIGEST_FUNCTION = """\
import hashlib, pathlib
def key_digest(repository):
    path = pathlib.Path(repository)
    if not path.is_dir():
        return -1, '-'
    total = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file())
    for file in files:
        total.update(file.name.encode() + b'\\0' + hashlib.sha256(file.read_bytes()).hexdigest().encode() + b'\\n')
    return len(files), total.hexdigest()
"""
# Run inside serving nodes: at the lowest priority within the container, its workers go first.
_LOWEST_PRIORITY = "import os\nos.nice(19)\n"
_DIGEST_EACH_ARGUMENT = """\
import sys
for repository in sys.argv[1:]:
    print('KEYDIGEST', repository, *key_digest(repository))
"""
KEY_DIGEST_SCRIPT = _LOWEST_PRIORITY + DIGEST_FUNCTION + _DIGEST_EACH_ARGUMENT
# A node's release and its keys in one process: each process started in a container costs the
# engine about 0.2 s of CPU (measured on the lab's 2 cores), beside the nodes serving. The
# release (its metadata, else keystone-manage) comes first and never fails the digests.
RELEASE_AND_KEY_DIGEST_SCRIPT = (
    _LOWEST_PRIORITY
    + RELEASE_FUNCTION
    + """\
try:
    print('RELEASE', keystone_release())
except Exception:
    print('RELEASE None')
"""
    + DIGEST_FUNCTION
    + _DIGEST_EACH_ARGUMENT
)
MISSING = "missing"
EMPTY = "empty"  # a repository with no key in it: nothing could be issued or validated


def digests_complete(finished: Finished, repositories: tuple[str, ...]) -> bool:
    """A reading that finished and has a digest for every repository (a missing one is a digest)."""
    return finished.exit_code == 0 and set(parse_key_digests(finished.output)) == set(repositories)


def parse_key_digests(output: str) -> dict[str, str]:
    """Repository -> digest (``MISSING`` for a repository that is not there) from KEYDIGEST lines."""
    digests = {}
    for line in output.splitlines():
        parts = line.split()
        if parts[:1] == ["KEYDIGEST"] and len(parts) == 4:
            digests[parts[1]] = {"-1": MISSING, "0": EMPTY}.get(parts[2], parts[3])
    return digests


def read_key_digests(engine: Engine, container: str, repositories: tuple[str, ...]) -> dict[str, str]:
    """The digests of ``repositories`` inside a running container (as the container's own user)."""
    finished = engine.exec_output(container, ["python3", "-c", KEY_DIGEST_SCRIPT, *repositories])
    digests = parse_key_digests(finished.output)
    if finished.exit_code != 0 or set(digests) != set(repositories):
        raise _unreadable(container, finished)
    return digests


def _unreadable(container: str, finished: Finished) -> DockerError:
    return DockerError(
        f"cannot read the key repositories inside {container}",
        observed=f"exit code {finished.exit_code}: {finished.tail(5)}",
        hint="the node's image needs python3, and its user must be able to read its keys",
    )


@dataclass(frozen=True)
class NodeReadings:
    """What one process in a node read: its release (``release_asked``: the script got as far as
    asking, both ways), and its key digests or why they could not be read."""

    release: str | None
    release_asked: bool
    digests: dict[str, str] | None
    error: DockerError | None


def read_release_and_key_digests(
    engine: Engine, container: str, repositories: tuple[str, ...]
) -> NodeReadings:
    """A running container's Keystone release and the digests of ``repositories``, from one process in it."""
    finished = engine.exec_output(container, ["python3", "-c", RELEASE_AND_KEY_DIGEST_SCRIPT, *repositories])
    answers = [
        parts[1]
        for parts in map(str.split, finished.output.splitlines())
        if parts[:1] == ["RELEASE"] and len(parts) == 2
    ]
    release = answers[0] if answers and answers[0] != "None" else None
    digests = parse_key_digests(finished.output)
    if finished.exit_code != 0 or set(digests) != set(repositories):
        return NodeReadings(release, bool(answers), None, _unreadable(container, finished))
    return NodeReadings(release, bool(answers), digests, None)


def key_differences(seen: Mapping[str, Mapping[str, str]], repositories: tuple[str, ...]) -> list[str]:
    """Each repository not the same everywhere, or missing or empty anywhere: who holds which."""
    differences = []
    for repository in repositories:
        by_holder = {holder: digests.get(repository, "unread") for holder, digests in seen.items()}
        if len(set(by_holder.values())) > 1 or {MISSING, EMPTY} & set(by_holder.values()):
            groups: dict[str, list[str]] = {}
            for holder, digest in by_holder.items():
                groups.setdefault(digest, []).append(holder)
            described = "; ".join(
                f"{digest[:12]} on {', '.join(holders)}" for digest, holders in sorted(groups.items())
            )
            differences.append(f"{repository}: {described}")
    return differences


def short(digests: Mapping[str, str]) -> dict[str, str]:
    """Digests cut to 12 characters, for the journal and messages."""
    return {repository: digest[:12] for repository, digest in digests.items()}

"""An image copied from one Docker engine to another, for an engine no registry serves.

``docker save`` on the source streams straight into ``docker load`` on the
destination: the archive (hundreds of MB for a Keystone image) passes through
in chunks and is never held whole. The copy counts only once the destination
holds the very image the source has, under the same name and id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from runner.drivers.containers import Engine
from runner.errors import DockerError


@dataclass(frozen=True)
class ImageCopied:
    """An image now on the destination engine, and what copying it took."""

    reference: str
    image_id: str
    source: str
    destination: str
    seconds: float
    size_bytes: int

    def describe(self) -> str:
        """One line for the log and the plan's notices."""
        return (
            f"loaded {self.reference} ({self.image_id}) onto {self.destination} from the engine "
            f"{self.source} in {self.seconds:.1f}s ({self.size_bytes / 1e6:.0f} MB)"
        )


def copy_image(source: Engine, destination: Engine, reference: str) -> ImageCopied:
    """Stream ``reference`` from ``source`` into ``destination``; DockerError unless it arrives intact."""
    original = source.image(reference)
    if original is None:
        raise DockerError(
            f"cannot copy {reference} to the engine {destination.endpoint}",
            observed=f"the engine {source.endpoint} it is copied from does not have it either",
            hint="build or load the image on the runner's engine (keystone-upgrade images build), "
            "or push it to a registry that engine pulls from",
        )
    sent = 0

    def counted() -> Iterator[bytes]:
        nonlocal sent
        for chunk in source.save_image(reference):
            sent += len(chunk)
            yield chunk

    started = time.monotonic()
    destination.load_image(counted())
    seconds = time.monotonic() - started
    loaded = destination.image(reference)
    if loaded is None or loaded.id != original.id:
        raise DockerError(
            f"{reference} loaded onto the engine {destination.endpoint} is not the image the engine "
            f"{source.endpoint} has",
            observed=f"image id on {source.endpoint}: {original.id}; on {destination.endpoint}: "
            f"{loaded.id if loaded is not None else 'no image of that name'} "
            f"(after {sent} bytes in {seconds:.1f}s)",
            hint=f"look at both engines (docker image inspect {reference}); remove the image on "
            f"{destination.endpoint} if it is another one, then run again",
        )
    return ImageCopied(reference, original.id, source.endpoint, destination.endpoint, seconds, sent)

"""Schema drift: the live schema against the one the running release's own migrations build.

Keystone's ``db_sync --check`` compares the database with itself (and on
23.x-25.x and 27.0.0 always says "up to date"), so a hand-patched schema, a
column dropped or an index added outside the migrations, goes unseen until a
migration trips over it. The reference here is built fresh: ``db_sync`` of the
nodes' own image into a scratch MariaDB, read from information_schema as the
live one is. A reference depends only on the two images, so it is kept on disk
by their ids and built once per pair.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from runner.drivers.containers import Engine
from runner.drivers.database import MysqlDatabase
from runner.drivers.ports import Database
from runner.drivers.scratch_database import keystone_manage, scratch_database
from runner.errors import MigrationError, RunnerError
from runner.facts.nodes import NodeFacts
from runner.schema import Difference, Schema, schema_differences

log = logging.getLogger(__name__)


def reference_cache_dir() -> Path:
    """Where built reference schemas are kept (the user's cache directory)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keystone-upgrade" / "schemas"


@dataclass(frozen=True)
class Reference:
    """What ``db_sync`` of one image builds from nothing: its heads and its schema."""

    image: str
    heads: frozenset[str]
    schema: Schema


@dataclass(frozen=True)
class DriftFacts:
    """The live schema compared with the running release's reference (or why it was not)."""

    image: str | None = None  # the image whose migrations built the reference
    differences: tuple[Difference, ...] = ()
    # Keys of differences the operator accepted for this run (--accept-drift).
    accepted: tuple[str, ...] = ()
    # Why the comparison was not made (a notice, not a refusal); None: it was made.
    skipped: str | None = None

    @property
    def refused(self) -> tuple[Difference, ...]:
        """The differences nobody accepted: each one refuses the upgrade."""
        return tuple(d for d in self.differences if d.key not in self.accepted)

    @property
    def accepted_unseen(self) -> tuple[str, ...]:
        """Accepted keys that match no difference (a typo, or drift that was repaired)."""
        keys = {d.key for d in self.differences}
        return tuple(k for k in self.accepted if k not in keys)


def build_reference(engine: Engine, image: str, server_image: str, labels: dict[str, str]) -> Reference:
    """``db_sync`` of ``image`` into a scratch database, read back; MigrationError when it fails."""
    with scratch_database(engine, server_image, labels, database_bytes=0) as scratch:
        scratch.create_database()
        finished = keystone_manage(scratch, image, ["db_sync"], labels)
        if finished.exit_code != 0:
            raise MigrationError(
                f"db_sync of {image} into an empty scratch database failed",
                observed=f"exit code {finished.exit_code}:\n{finished.tail()}",
                hint="the image cannot build its own schema; check that it is a Keystone image",
            )
        copy = MysqlDatabase(scratch.target)
        return Reference(image, copy.alembic_heads(), copy.schema())


def cached_reference(
    engine: Engine, image: str, server_image: str, labels: dict[str, str], cache_dir: Path
) -> Reference:
    """The reference of ``image`` from the cache, else built and kept (keyed by both images' ids)."""
    keystone, server = engine.image(image), engine.image(server_image)
    if keystone is None or server is None:
        missing = image if keystone is None else server_image
        raise MigrationError(
            f"cannot build the reference schema: {missing} is not on engine {engine.endpoint}",
            observed="the engine has no such image",
            hint=f"load or build {missing} there",
        )
    path = cache_dir / f"{_short(keystone.id)}-{_short(server.id)}.json"
    try:
        data = json.loads(path.read_text())
        return Reference(image, frozenset(data["heads"]), Schema.from_dict(data["schema"]))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("rebuilding the reference schema: the cached %s is unreadable (%s)", path, exc)
    reference = replace(build_reference(engine, keystone.id, server_image, labels), image=image)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"heads": sorted(reference.heads), "schema": reference.schema.to_dict()}))
    partial.replace(path)
    return reference


def _short(image_id: str) -> str:
    return image_id.rsplit(":", maxsplit=1)[-1][:16]


def running_images(nodes: tuple[NodeFacts, ...]) -> dict[str, str]:
    """Image id -> reference of every image the node containers run."""
    return {n.container.image_id: n.container.image_reference for n in nodes if n.container is not None}


def drift_facts(
    nodes: tuple[NodeFacts, ...],
    database: Database,
    engine: Engine,
    server_image: str,
    labels: dict[str, str],
    *,
    accepted: tuple[str, ...] = (),
    cache_dir: Path | None = None,
) -> DriftFacts:
    """Compare the live schema with the one the nodes' image builds; never raises."""
    images = running_images(nodes)
    if not images:
        return DriftFacts(skipped="no node container could be read")
    if len(images) > 1:
        return DriftFacts(skipped=f"the nodes run different images ({', '.join(sorted(images.values()))})")
    image_id, name = next(iter(images.items()))
    image = f"{name} ({image_id[:19]})"
    try:
        reference = cached_reference(
            engine, image_id, server_image, labels, cache_dir or reference_cache_dir()
        )
        live_heads = database.alembic_heads()
        if live_heads != reference.heads:
            return DriftFacts(
                image=image,
                skipped=f"the database's heads {sorted(live_heads)} are not the running release's "
                f"{sorted(reference.heads)} (a run under way, or a release the nodes do not run)",
            )
        differences = schema_differences(reference.schema, database.schema())
    except RunnerError as exc:
        return DriftFacts(image=image, skipped=f"{exc.what}: {exc.observed}")
    return DriftFacts(image=image, differences=differences, accepted=accepted)

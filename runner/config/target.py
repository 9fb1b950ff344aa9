"""[target] and a node's [nodes.target]: the target image, and what the new containers get
instead of, or on top of, the old containers' configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.config.table import Problems, Table, strings, top_table, unique
from runner.config.values import CONTROL, check_env_name, check_image
from runner.model import (
    DEFAULT_KEY_REPOSITORIES,
    MIGRATIONS_COMMAND,
    MIGRATIONS_KOLLA,
    BindMount,
    TargetConfig,
)


@dataclass(frozen=True)
class TargetSection:
    image: str | None
    backup_image: str | None
    config: TargetConfig
    key_repositories: tuple[str, ...]
    migrations: str | None
    # The images before the last when [target] image is a list (a release path, oldest first).
    through: tuple[str, ...] = ()


# The keys of a target configuration, in [target] and in a node's [nodes.target].
TARGET_CONFIG_KEYS = {"mounts", "environment", "environment_remove"}


def read_target_config(table: Table) -> TargetConfig:
    """Mounts that replace (same target path) or add to the old container's, and environment changes."""
    mount_fix = (
        'write e.g. mounts = ["/etc/keystone-29/keystone.conf:/etc/keystone/keystone.conf:ro", '
        '"keystone_fernet_tokens:/etc/keystone/fernet-keys"]'
    )
    mounts = []
    for text in strings(table, "mounts", mount_fix) or []:
        try:
            mounts.append(BindMount.parse(text))
        except ValueError as exc:
            table.add(str(exc), fix="write SOURCE:TARGET[:ro|rw]: an absolute host path or a volume name")
    unique([m.target for m in mounts], table.where, "mount target", table.problems)
    environment: dict[str, str] = {}
    env_fix = 'write e.g. environment = { KEYSTONE_WORKERS = "4" }'
    raw_env = table.raw.get("environment")
    if raw_env is not None and not isinstance(raw_env, dict):
        table.add("'environment' must be a table of strings", found=raw_env, fix=env_fix)
    for name, value in (raw_env or {}).items() if isinstance(raw_env, dict) else ():
        if check_env_name(name) is not None:
            table.add(f"environment: {name!r} {check_env_name(name)}", fix=env_fix)
        elif not isinstance(value, str) or CONTROL.search(value):
            table.add(f"environment: {name} must be a string without control characters", found=value)
        else:
            environment[name] = value
    removed = strings(table, "environment_remove", 'write e.g. environment_remove = ["OLD_SETTING"]') or []
    for name in removed:
        if check_env_name(name) is not None:
            table.add(f"environment_remove: {name!r} {check_env_name(name)}")
        elif name in environment:
            table.add(
                f"{name} is both set and removed", fix="keep it in one of environment, environment_remove"
            )
    return TargetConfig(tuple(mounts), tuple(sorted(environment.items())), tuple(sorted(set(removed))))


def read_target(raw: Any, problems: Problems, base: Path) -> TargetSection:
    known = {"image", "backup_image", "key_repositories", "migrations", *TARGET_CONFIG_KEYS}
    table = top_table(raw, "[target]", problems, known, base, required=True)
    if table is None:
        return TargetSection(None, None, TargetConfig(), (), None)
    config = read_target_config(table)
    repositories: tuple[str, ...] = DEFAULT_KEY_REPOSITORIES
    if "key_repositories" in table.raw:
        given = strings(table, "key_repositories", f"or leave it out for {list(DEFAULT_KEY_REPOSITORIES)}")
        repositories = tuple(given or ())
        for repository in repositories:
            if not repository.startswith("/"):
                table.add(
                    "key repositories must be absolute paths in the container",
                    found=repository,
                    fix="give where Keystone reads them, e.g. /etc/keystone/fernet-keys",
                )
        unique(list(repositories), "[target] key_repositories", "key repository", problems)
    migrations = None
    if "migrations" in table.raw:
        migrations = table.text(
            "migrations",
            check=lambda v: (
                None
                if v in (MIGRATIONS_COMMAND, MIGRATIONS_KOLLA)
                else f"must be {MIGRATIONS_COMMAND!r} or {MIGRATIONS_KOLLA!r}"
            ),
            fix=f"{MIGRATIONS_KOLLA!r}: the image's own start with KOLLA_UPGRADE / KOLLA_FINISH_UPGRADE; "
            f"{MIGRATIONS_COMMAND!r}: keystone-manage db_sync as the command; leave it out to detect",
        )
    images = _images(table)
    return TargetSection(
        image=images[-1] if images else None,
        through=tuple(images[:-1]),
        backup_image=table.text(
            "backup_image",
            check=check_image,
            fix="give an image with mariadb-dump and bash, e.g. keystone-upgrade/mariadb:10.11",
        ),
        config=config,
        key_repositories=repositories,
        migrations=migrations,
    )


IMAGE_FIX = (
    "give the Keystone image to upgrade to, e.g. keystone-upgrade/keystone:29.1.0, or the images of a "
    'release path in order, e.g. ["keystone-upgrade/keystone:28.1.0", "keystone-upgrade/keystone:29.1.0"]'
)


def _images(table: Table) -> list[str]:
    """[target] image: one image, or a list of them (one upgrade per image, in order)."""
    if not isinstance(table.raw.get("image"), list):
        image = table.text("image", check=check_image, fix=IMAGE_FIX)
        return [image] if image is not None else []
    images = strings(table, "image", IMAGE_FIX) or []
    for image in images:
        wrong = check_image(image)
        if wrong is not None:
            table.add(f"'image' {wrong}", found=image, fix=IMAGE_FIX)
            return []
    unique(images, "[target] image", "image", table.problems)
    return images

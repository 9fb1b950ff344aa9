"""What the runner reads of Keystone's own keystone.conf, from the host file the inventory mounts.

Read on the host, not in a container: the file the throwaway containers get
(a mount whose target ends in /keystone.conf, or one in a mounted directory).
Parsing is pure; a file that cannot be read or parsed says nothing.
"""

from __future__ import annotations

import configparser
import contextlib
from pathlib import Path

from runner.model import KOLLA_CONFIG_DIR, BindMount

# oslo.cache's backend when none is set: it caches nothing.
NULL_BACKEND = "dogpile.cache.null"


def mounted_keystone_conf(mounts: tuple[BindMount, ...]) -> Path | None:
    """The host path of the keystone.conf a container with ``mounts`` reads, where one can tell
    (None: none, or one in a named volume).

    Mounted as a file (.../keystone.conf), or in a directory mounted at /etc/keystone or at
    Kolla's config_files directory (which kolla_set_configs copies from).
    """
    for mount in mounts:
        if not mount.is_volume and mount.target.endswith("/keystone.conf"):
            return Path(mount.source)
    for mount in mounts:
        if not mount.is_volume and mount.target.rstrip("/") in ("/etc/keystone", KOLLA_CONFIG_DIR):
            candidate = Path(mount.source) / "keystone.conf"
            if candidate.is_file():
                return candidate
    return None


def cache_backend(conf_text: str) -> str | None:
    """Which cache keystone.conf's [cache] turns on (its backend, or "enabled"); None: it caches nothing.

    ``enabled = true`` counts even without a backend, and a backend other than the
    null one counts unless ``enabled = false`` says otherwise: the notice this leads
    to costs nothing when it is wrong, and stale cached data costs much when missed.
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(conf_text)
        backend = parser.get("cache", "backend", fallback="").strip()
        enabled = parser.getboolean("cache", "enabled", fallback=None)
    except (configparser.Error, ValueError):
        return None
    if enabled is False:
        return None
    if backend and backend != NULL_BACKEND:
        return backend
    return "enabled" if enabled else None


def mounted_cache_backend(mounts: tuple[BindMount, ...]) -> str | None:
    """``cache_backend`` of the mounted keystone.conf; None when there is none or it cannot be read."""
    path = mounted_keystone_conf(mounts)
    if path is None:
        return None
    with contextlib.suppress(OSError):
        return cache_backend(path.read_text(errors="replace"))
    return None

"""The database backup taken before any schema change: a consistent, compressed, verified dump.

mariadb-dump runs in a throwaway container of the backup client image on host
networking. Its password reaches it through a pipe (the container's stdin)
and is kept in the container's tmpfs: never on a command line or in an
environment, never on the host's disk, gone with the container however the
runner ends (SIGKILL included).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from runner.background import in_background
from runner.drivers.containers import PURPOSE_LABEL, Engine, Finished, StillRunning
from runner.drivers.database import MysqlDatabase, client_errors
from runner.drivers.scratch_database import ScratchDatabase, scratch_database
from runner.errors import BackupError, ConfigError, DatabaseError
from runner.model import BindMount, DatabaseTarget
from runner.waits import MIGRATION_FINISHES

log = logging.getLogger(__name__)

OPTIONS_FILE = "/run/keystone-upgrade/client.cnf"
OPTIONS_DIR = "/run/keystone-upgrade"  # a tmpfs of the backup container
DUMP_SCRIPT = (
    "set -eo pipefail; umask 077; "
    # The option file arrives on stdin (bounded: 30 s) and stays in the container's memory.
    f"timeout 30 cat > {OPTIONS_DIR}/client.cnf; "
    f"mariadb-dump --defaults-extra-file={OPTIONS_DIR}/client.cnf --single-transaction --quick "
    '--routines --triggers --events --databases "$0" | gzip -c > "/backup/$1.partial"; '
    'mv "/backup/$1.partial" "/backup/$1"'
)


@dataclass(frozen=True)
class BackupManifest:
    """What was dumped, its checksum, and the rows of every table when it was taken."""

    dump: str
    sha256: str
    bytes: int
    database: str
    tables: dict[str, int]
    started_at: float
    finished_at: float
    # What a faithful restore of this dump holds: rows and CHECKSUM TABLE per table, read from a
    # scratch database the dump was loaded into once when it was taken (empty: not restored then).
    restored_rows: dict[str, int] = field(default_factory=dict)
    restored_checksums: dict[str, int | None] = field(default_factory=dict)
    # What served on this database when it was taken: a restore starts the nodes on these again.
    release: str | None = None
    node_images: dict[str, str] = field(default_factory=dict)
    node_image_ids: dict[str, str] = field(default_factory=dict)  # the builds, not only the tags

    @classmethod
    def read(cls, path: Path) -> BackupManifest:
        """The manifest written next to a dump (``<dump>.manifest.json``)."""
        data = json.loads(path.read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# Where the CA bundle of [database.tls] appears inside the backup container.
CA_IN_CONTAINER = "/etc/keystone-upgrade/database-ca.pem"


def _client_options(target: DatabaseTarget) -> str:
    # Option files read backslash escapes inside quotes; escape what needs it.
    password = target.password.replace("\\", "\\\\").replace('"', '\\"')
    options = f'[client]\nhost={target.host}\nport={target.port}\nuser={target.user}\npassword="{password}"\n'
    if target.tls is not None:
        # The dump travels as the runner's own connections do: encrypted, verified unless told not to.
        options += "ssl\n"
        if target.tls.ca_file is not None:
            options += f"ssl-ca={CA_IN_CONTAINER}\n"
        if target.tls.verify:
            options += "ssl-verify-server-cert\n"
    return options


def _mounts(directory: Path, target: DatabaseTarget) -> list[BindMount]:
    mounts = [BindMount(str(directory), "/backup", read_only=False)]
    if target.tls is not None and target.tls.ca_file is not None:
        mounts.append(BindMount(target.tls.ca_file, CA_IN_CONTAINER, read_only=True))
    return mounts


def dump_verified(
    engine: Engine,
    image: str,
    target: DatabaseTarget,
    directory: Path,
    labels: dict[str, str],
    *,
    restore_check: bool = True,
) -> BackupManifest:
    """Dump the database into ``directory`` and verify it; raise BackupError when anything is off.

    The manifest it returns is not written yet and does not say what serves on the database
    (``write_manifest`` does both). ``restore_check``: load the dump into a scratch database once
    and record what it holds (rows, CHECKSUM TABLE), so that any later restore can be checked
    against it. The numbers come from the dump itself: the live tables, written to while the
    dump runs, would not match it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    started = time.time()
    name = f"{target.database}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started))}.sql.gz"
    live = MysqlDatabase(target)
    tables = live.table_row_counts()
    database_bytes = live.size_bytes() if restore_check else None
    with ExitStack() as stack:
        # The scratch database for the restore check boots while the dump runs (it waits for
        # nothing of the dump's until the load). The dump waits in a daemon thread: a forced stop
        # leaves its container running, as it would without the overlap, instead of waiting for it.
        dumping = in_background(
            lambda: engine.run_once(
                image,
                [target.database, name],
                entrypoint=["bash", "-c", DUMP_SCRIPT],
                mounts=_mounts(directory, target),
                labels={**labels, PURPOSE_LABEL: "backup"},
                stdin_secret=_client_options(target),
                tmpfs=(OPTIONS_DIR,),
            ),
            "backup-dump",
        )
        scratch = (
            stack.enter_context(
                scratch_database(
                    engine,
                    image,
                    labels,
                    database=target.database,
                    dumps=directory,
                    database_bytes=database_bytes,
                )
            )
            if restore_check
            else None
        )
        finished = dumping()
        dump = directory / name
        if finished.exit_code != 0 or not dump.exists():
            raise BackupError(
                "the database backup failed; nothing was changed",
                observed=f"mariadb-dump exited {finished.exit_code}:\n{finished.tail()}",
                hint="check the backup image and that the database user may dump (SELECT, LOCK TABLES, EVENT)",
            )
        sha256, size = _verify(dump, tables)
        manifest = BackupManifest(
            dump=str(dump),
            sha256=sha256,
            bytes=size,
            database=target.database,
            tables=tables,
            started_at=started,
            finished_at=time.time(),
        )
        if scratch is not None:
            rows, checksums = _restore_checked(
                scratch, dump, engine=engine, image=image, labels=labels, database=target.database
            )
            manifest = replace(manifest, restored_rows=rows, restored_checksums=checksums)
    return manifest


def write_manifest(
    manifest: BackupManifest,
    *,
    release: str | None = None,
    node_images: dict[str, str] | None = None,
    node_image_ids: dict[str, str] | None = None,
) -> BackupManifest:
    """The manifest beside its dump, saying what serves on the database (a restore starts it again)."""
    manifest = replace(
        manifest,
        release=release,
        node_images=dict(node_images or {}),
        node_image_ids=dict(node_image_ids or {}),
    )
    Path(f"{manifest.dump}.manifest.json").write_text(json.dumps(asdict(manifest), indent=2))
    return manifest


def _contents_after_load(
    scratch: ScratchDatabase, dump_name: str
) -> tuple[dict[str, int], dict[str, int | None]]:
    """Rows and CHECKSUM TABLE per table once ``dump_name`` (in the scratch's dumps) is loaded."""
    scratch.load(dump_name)
    copy = MysqlDatabase(scratch.target)
    return copy.table_row_counts(), copy.table_checksums()


def _restore_checked(
    scratch: ScratchDatabase, dump: Path, *, engine: Engine, image: str, labels: dict[str, str], database: str
) -> tuple[dict[str, int], dict[str, int | None]]:
    """The restore check in ``scratch``; where its copy was in memory and did not load (the size
    information_schema gave was too low: its statistics lag), once more on disk."""
    try:
        return _contents_after_load(scratch, dump.name)
    except DatabaseError as exc:
        if scratch.memory_bytes is None:
            raise
        log.warning("the restore check in memory failed (%s); loading the dump again on disk", exc)
        return restored_contents(engine, image, dump, database, labels)


def restored_contents(
    engine: Engine, image: str, dump: Path, database: str, labels: dict[str, str]
) -> tuple[dict[str, int], dict[str, int | None]]:
    """Rows and CHECKSUM TABLE per table of ``dump`` loaded into a scratch database."""
    with scratch_database(engine, image, labels, database=database, dumps=dump.parent) as scratch:
        return _contents_after_load(scratch, dump.name)


def require_faithful(
    manifest: BackupManifest,
    rows: dict[str, int],
    checksums: dict[str, int | None] | None,
    *,
    what: str,
    hint: str,
) -> None:
    """BackupError (``what``, ``hint``) naming every table where a restore differs from what the
    manifest says a faithful one holds. ``checksums`` None: rows only (another server's
    CHECKSUM TABLE is not comparable)."""
    differences = []
    for table in sorted(set(manifest.restored_rows) | set(rows)):
        expected, found = manifest.restored_rows.get(table), rows.get(table)
        if expected != found:
            differences.append(f"{table}: {expected} rows expected, {found} restored")
        elif checksums is not None and manifest.restored_checksums.get(table) != checksums.get(table):
            differences.append(
                f"{table}: CHECKSUM TABLE {manifest.restored_checksums.get(table)} expected, "
                f"{checksums.get(table)} restored"
            )
    if differences:
        raise BackupError(what, observed="; ".join(differences), hint=hint)


LOAD_SCRIPT = (
    "set -eo pipefail; umask 077; "
    f"timeout 30 cat > {OPTIONS_DIR}/client.cnf; "
    f'mariadb --defaults-extra-file={OPTIONS_DIR}/client.cnf -e "DROP DATABASE IF EXISTS \\`$0\\`"; '
    f'gunzip -c "/backup/$1" | mariadb --defaults-extra-file={OPTIONS_DIR}/client.cnf'
)


def _load(
    engine: Engine,
    image: str,
    *,
    target: DatabaseTarget,
    account: DatabaseTarget,
    dump: Path,
    labels: dict[str, str],
) -> Finished:
    """The load container: bounded like a migration, and never killed mid-load (left running)."""
    return engine.run_once(
        image,
        [target.database, dump.name],
        entrypoint=["bash", "-c", LOAD_SCRIPT],
        mounts=[BindMount(str(dump.parent), "/backup", read_only=True), *_mounts(dump.parent, account)[1:]],
        labels={**labels, PURPOSE_LABEL: "restore"},
        stdin_secret=_client_options(account),
        tmpfs=(OPTIONS_DIR,),
        policy=MIGRATION_FINISHES,
        keep_on_timeout=True,
    )


def load_backup(
    engine: Engine,
    image: str,
    *,
    target: DatabaseTarget,
    account: DatabaseTarget,
    dump: Path,
    sha256: str,
    labels: dict[str, str],
) -> dict[str, int]:
    """Replace ``target``'s database with ``dump`` (loaded as ``account``); its rows, checked against
    the manifest. BackupError when the dump is not the one planned or the result is not what it held."""
    digest = file_sha256(dump)
    if digest != sha256:
        raise BackupError(
            f"the dump {dump} changed since the restore was planned; nothing was loaded",
            observed=f"sha256 {digest}, planned {sha256}",
            hint="plan the restore again with a verified backup",
        )
    try:
        finished = _load(engine, image, target=target, account=account, dump=dump, labels=labels)
    except StillRunning as exc:
        raise BackupError(
            f"loading {dump} is still running after {MIGRATION_FINISHES.timeout_s:.0f}s; it was left to finish",
            observed=exc.observed,
            hint=f"{exc.hint}; then run restore again (it drops what is there and loads the whole dump)",
        ) from exc
    if finished.exit_code != 0:
        raise BackupError(
            f"loading {dump} into the database failed; the database may be partly loaded",
            observed=f"mariadb exited {finished.exit_code}:\n{client_errors(finished.output)}",
            hint="fix the cause (the account needs DROP and CREATE on the database) and run restore again: "
            "it drops what is there and loads the whole dump",
        )
    rows = MysqlDatabase(target).table_row_counts()
    manifest = BackupManifest.read(dump.parent / f"{dump.name}.manifest.json")
    # Rows only: CHECKSUM TABLE depends on the server's version and row format, and the live server
    # need not be the scratch one the manifest's checksums came from (rehearse compares those).
    if manifest.restored_rows:
        require_faithful(
            manifest,
            rows,
            None,
            what=f"the database does not hold what {dump} held when it was taken",
            hint="load it again (restore drops what is there first); if it stays so, the dump is damaged",
        )
    return rows


def _verify(dump: Path, tables: dict[str, int]) -> tuple[str, int]:
    """Read the whole dump back: gzip intact, every table created, the dump complete."""
    digest = file_sha256(dump)
    created = set()
    last_line = ""
    try:
        with gzip.open(dump, "rt", errors="replace") as text:
            for line in text:
                if line.startswith("CREATE TABLE `"):
                    created.add(line.split("`")[1])
                if line.strip():
                    last_line = line.strip()
    except (OSError, EOFError) as exc:
        raise BackupError("the database dump is damaged", observed=str(exc), hint="run again") from exc
    missing = sorted(set(tables) - created)
    if missing or not last_line.startswith("-- Dump completed"):
        raise BackupError(
            "the database dump is incomplete",
            observed=f"tables without CREATE TABLE: {missing or 'none'}; last line: {last_line[:120]!r}",
            hint="look at the backup container's output and the database's log",
        )
    return digest, dump.stat().st_size


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks (a dump may be larger than memory)."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def newest_dump(backup_dir: Path) -> Path:
    """The dump of the newest manifest under ``backup_dir``; ConfigError when there is none."""
    manifest = latest_manifest(backup_dir)
    return manifest.with_name(manifest.name.removesuffix(".manifest.json"))


def latest_manifest(backup_dir: Path) -> Path:
    """The newest manifest under ``backup_dir``; ConfigError when there is none."""
    manifests = sorted(backup_dir.rglob("*.sql.gz.manifest.json"), key=lambda p: p.stat().st_mtime)
    if not manifests:
        raise ConfigError(
            f"no backup to rehearse with under {backup_dir}",
            observed="no *.sql.gz.manifest.json there",
            hint="give one with --dump, or let rehearse dump the live database with --from-live",
        )
    return manifests[-1]


def checked_manifest(dump: Path) -> BackupManifest:
    """The dump's manifest, with the dump's sha256 checked against it; BackupError when it differs."""
    manifest_path = dump.parent / f"{dump.name}.manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(
            f"the dump {dump} has no manifest beside it",
            observed=f"{manifest_path} does not exist",
            hint="rehearse with a backup the runner took (its manifest says what a restore must hold)",
        )
    manifest = BackupManifest.read(manifest_path)
    digest = file_sha256(dump)
    if digest != manifest.sha256:
        raise BackupError(
            f"the dump {dump} is not the one that was taken: it changed after the backup",
            observed=f"sha256 {digest}, the manifest says {manifest.sha256}",
            hint="do not restore it; take a new backup (rehearse --from-live) or use an older verified one",
        )
    return manifest

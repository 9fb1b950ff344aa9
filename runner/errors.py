"""One root exception for everything the runner reports, one exit code per kind.

Drivers translate library errors into these at their boundary; ``cli.run`` is
the only place that catches them, once, for every command. Every message says what failed, what was
observed, and what to do next.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, stable for scripts that call the runner."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2  # click's own code for bad arguments
    CONFIG = 3
    PREFLIGHT = 4
    MIGRATION = 5
    DRAIN = 6  # HAProxy answered, but a node's sessions did not end in time
    HEALTH = 7
    ROLLBACK = 8
    LOCKED = 9
    ENGINE = 10  # no Docker engine answers here and none could be provisioned
    IMAGE = 11
    LAB = 12
    BACKUP = 13
    DATABASE = 14
    HAPROXY = 15
    DOCKER = 16
    INTERRUPTED = 17  # SIGINT or SIGTERM: stopped between steps (resume goes on), or at once on a second
    KEYS = 18  # the key repositories do not hold the same keys on every node and throwaway
    CACHE = 19  # a memcached did not empty itself when the run asked it to ([cache] flush_after_upgrade)
    DRIFT = 20  # the live schema differs from the one the running release's migrations build


class RunnerError(Exception):
    """Root of every error the runner reports to an operator."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, what: str, *, observed: str | None = None, hint: str | None = None):
        self.what = what
        self.observed = observed
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """The message as an operator reads it: what, what was seen, what to do."""
        lines = [self.what]
        if self.observed:
            lines.append(f"  observed: {self.observed}")
        if self.hint:
            lines.append(f"  what to do: {self.hint}")
        return "\n".join(lines)


class ConfigError(RunnerError):
    """The inventory or a command-line option is wrong; nothing was touched."""

    exit_code = ExitCode.CONFIG


class EngineError(RunnerError):
    """No Docker engine answers on this machine and none could be provisioned (setup, not a node)."""

    exit_code = ExitCode.ENGINE


class ImageError(RunnerError):
    """An image is missing, could not be pulled, or failed to build."""

    exit_code = ExitCode.IMAGE


class LabError(RunnerError):
    """The demo/test cluster could not be brought up or torn down."""

    exit_code = ExitCode.LAB


class HaproxyError(RunnerError):
    """The HAProxy runtime API refused a command or could not be reached."""

    exit_code = ExitCode.HAPROXY


class DrainError(RunnerError):
    """HAProxy took a node out, but its sessions did not end within the drain timeout."""

    exit_code = ExitCode.DRAIN


class DatabaseError(RunnerError):
    """The database could not be reached or refused a statement."""

    exit_code = ExitCode.DATABASE


class RollbackError(RunnerError):
    """Undoing a step failed, or the run is past the point where it can be undone."""

    exit_code = ExitCode.ROLLBACK


class HealthError(RunnerError):
    """A node did not become healthy in time."""

    exit_code = ExitCode.HEALTH


class PreflightError(RunnerError):
    """A preflight check refused the run; nothing was changed."""

    exit_code = ExitCode.PREFLIGHT


class BackupError(RunnerError):
    """No verified database dump, so no upgrade; nothing was changed."""

    exit_code = ExitCode.BACKUP


class MigrationError(RunnerError):
    """A db_sync step failed or left the schema other than expected."""

    exit_code = ExitCode.MIGRATION


class LockedError(RunnerError):
    """Another runner holds the database's advisory lock."""

    exit_code = ExitCode.LOCKED


class DockerError(RunnerError):
    """A Docker engine (a node's, or the local one) refused or failed an operation."""

    exit_code = ExitCode.DOCKER


class CacheError(RunnerError):
    """A memcached did not answer ``flush_all`` (or refused it)."""

    exit_code = ExitCode.CACHE


class KeysError(RunnerError):
    """The key repositories differ between nodes (or the throwaway containers): tokens would fail."""

    exit_code = ExitCode.KEYS


class DriftError(RunnerError):
    """The live schema differs from the one the running release's own migrations build."""

    exit_code = ExitCode.DRIFT

"""Every wait and retry the runner does, as named tenacity policies.

Nothing in the runner sleeps and hopes: it polls observed state with a bounded
timeout. A policy is a function returning a fresh ``Retrying`` so that each
wait has its own clock; callers name the state they wait for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaitPolicy:
    """How long to wait for a state, how often to look, and what is transient."""

    name: str
    timeout_s: float
    interval_s: float
    transient: tuple[type[BaseException], ...] = (OSError,)

    def with_timeout(self, timeout_s: float) -> WaitPolicy:
        """The same policy with another bound (for example from the inventory)."""
        return WaitPolicy(self.name, timeout_s, self.interval_s, self.transient)


class WaitTimeout(Exception):
    """A policy ran out of time; carries the last thing observed."""

    def __init__(self, policy: WaitPolicy, last_observed: object):
        self.policy = policy
        self.last_observed = last_observed
        super().__init__(
            f"{policy.name}: not reached within {policy.timeout_s:.0f}s; last observed: {last_observed!r}"
        )


class WaitProgress(Protocol):
    """Told how every wait goes, so that a long one can be shown while it lasts (the CLI's status line).

    Called from whichever thread waits; a reporter that fails is logged and never fails the wait.
    """

    def waiting(self, policy: WaitPolicy, elapsed_s: float, observed: object) -> None:
        """After each look: how long the wait has lasted, and what it saw (a result or a transient error)."""
        ...

    def done(self, policy: WaitPolicy, elapsed_s: float, reached: bool) -> None:
        """The wait ended: the state was reached, or not (a timeout, an error that is not transient)."""
        ...


class _NoProgress:
    """The default: waits are shown to no one."""

    def waiting(self, policy: WaitPolicy, elapsed_s: float, observed: object) -> None:
        return None

    def done(self, policy: WaitPolicy, elapsed_s: float, reached: bool) -> None:
        return None


_progress: WaitProgress = _NoProgress()


def set_progress(reporter: WaitProgress | None) -> WaitProgress:
    """Tell ``reporter`` about every wait from now on (None: no one); returns the reporter it replaces."""
    global _progress
    previous, _progress = _progress, reporter if reporter is not None else _NoProgress()
    return previous


def _tell(report: Callable[[], None]) -> None:
    try:
        report()
    except Exception:  # a status line that cannot be written must not stop a drain or a migration
        log.debug("the wait progress reporter failed", exc_info=True)


def wait_until(policy: WaitPolicy, probe: Callable[[], T], done: Callable[[T], bool]) -> T:
    """Call ``probe`` until ``done(result)`` holds; raise WaitTimeout with the last result.

    Exceptions of ``policy.transient`` count as "not yet" and are kept as the
    last observation. The progress reporter (``set_progress``) hears of every look.
    """
    last: list[object] = ["nothing observed yet"]
    reporter, started = _progress, time.monotonic()

    def observe() -> T:
        try:
            result = probe()
            last[0] = result
            return result
        except policy.transient as exc:
            last[0] = exc
            raise
        finally:
            _tell(lambda: reporter.waiting(policy, time.monotonic() - started, last[0]))

    retrying = Retrying(
        stop=stop_after_delay(policy.timeout_s),
        wait=wait_fixed(policy.interval_s),
        retry=retry_if_exception_type(policy.transient) | retry_if_result(lambda r: not done(r)),
        reraise=False,
    )
    reached = False
    try:
        result = retrying(observe)
        reached = True
        return result
    except RetryError as exc:
        raise WaitTimeout(policy, last[0]) from exc
    finally:
        _tell(lambda: reporter.done(policy, time.monotonic() - started, reached))


# The named policies. Bounds are generous for a loaded 2-core machine; the
# inventory may override them for a given cluster.
ENGINE_ANSWERS = WaitPolicy("docker engine answers", timeout_s=60, interval_s=0.5)
CONTAINER_HEALTHY = WaitPolicy("container reports healthy", timeout_s=240, interval_s=0.25)
# A new lab's nodes, booting together: UP in HAProxy, or one of them exited or restarted.
LAB_NODES_UP = WaitPolicy("HAProxy reports every lab node UP", timeout_s=240, interval_s=0.25)
CONTAINER_EXITED = WaitPolicy("one-shot container exits", timeout_s=600, interval_s=0.1)
# After `systemctl stop` of a node's unit: its ExecStop has stopped the container, or systemd killed
# `docker start -a`, which passes the signal on and the container may still be stopping.
UNIT_CONTAINER_EXITED = WaitPolicy("the unit's container has exited", timeout_s=60, interval_s=0.2)
# A schema migration: the inventory's run.migration_timeout_s bounds it; past it the container is
# reported and left running (never killed mid-statement).
MIGRATION_FINISHES = WaitPolicy("the migration container exits", timeout_s=3600, interval_s=0.2)
HAPROXY_SOCKET_ANSWERS = WaitPolicy("HAProxy runtime socket answers", timeout_s=60, interval_s=0.5)
# During a run, a socket that stops answering is most likely HAProxy being restarted or
# reloaded: its commands are tried again for this long before the run gives up.
HAPROXY_RECONNECT = WaitPolicy("HAProxy runtime socket answers again", timeout_s=30, interval_s=0.2)
# A health check caught between UP and DOWN ("UP 1/2") at preflight: let it settle.
HAPROXY_CHECKS_SETTLED = WaitPolicy("HAProxy health checks settle", timeout_s=15, interval_s=0.25)
HAPROXY_SERVERS_UP = WaitPolicy("HAProxy reports servers UP", timeout_s=120, interval_s=0.1)
# Asks every node for its release (a command inside it) on each look: not as often as HAProxy.
CLUSTER_READY_FOR_CONTRACT = WaitPolicy(
    "every node on the target release and UP", timeout_s=120, interval_s=0.5
)
SERVER_DRAINED = WaitPolicy(
    "HAProxy reports no sessions on the drained servers", timeout_s=120, interval_s=0.1
)
NODE_HEALTHY = WaitPolicy("the new node answers its health URL", timeout_s=180, interval_s=0.1)
# The token gate tries again through a node's or the database's hiccup (a 5xx, no answer).
TOKENS_ACCEPTED = WaitPolicy("a node and a peer accept each other's tokens", timeout_s=60, interval_s=1)
# A migration that timed out waiting for a metadata lock is tried again (after idle
# transactions are ended), for up to this long.
MIGRATION_LOCK_RETRY = WaitPolicy("migration gets its metadata locks", timeout_s=60, interval_s=1)
# A memcached asked to flush (after contract, [cache] flush_after_upgrade): one being restarted
# gets a moment; one that stays silent is named.
MEMCACHED_ANSWERS = WaitPolicy("memcached answers flush_all", timeout_s=15, interval_s=0.5)
# The warm keystone-manage container, its input ended while idle, exits and is removed.
WARM_KEYSTONE_EXITS = WaitPolicy("the warm keystone-manage container is gone", timeout_s=15, interval_s=0.1)
# A scratch MariaDB (a throwaway server for a copy of the database) initialises its data
# directory and starts; a loaded host gets a minute.
SCRATCH_DATABASE_ANSWERS = WaitPolicy("the scratch database answers", timeout_s=90, interval_s=0.25)

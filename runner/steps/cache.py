"""After contract: Keystone's memcached emptied, so no node serves what the old release cached."""

from __future__ import annotations

from dataclasses import dataclass

from runner.errors import CacheError
from runner.journal import Event
from runner.steps.base import RunContext, Step, StepKind


@dataclass(frozen=True, kw_only=True)
class FlushCache(Step):
    """``flush_all`` on every memcached of [cache]; skipped at plan time unless flush_after_upgrade asks.

    Each server is tried even when one before it failed, and each flush is
    journalled as intended before it is sent. Flushing again is harmless, so a
    resumed run simply sends it again.
    """

    kind = StepKind.FLUSH_CACHE

    servers: tuple[str, ...]  # HOST:PORT of each memcached

    def apply(self, context: RunContext) -> None:
        """Flush each server; one CacheError naming every server that did not flush."""
        cache = context.drivers.cache
        if cache is None:
            raise CacheError(
                "the run has no memcached client to flush [cache] memcached with",
                hint="run it through keystone-upgrade (upgrade or resume), which connects one",
            )
        failures = []
        for server in self.servers:
            context.journal.intend(self.id, Event.FLUSHED, server=server)
            try:
                cache.flush_all(server)
            except CacheError as exc:
                failures.append(exc)
                continue
            context.journal.event(self.id, Event.FLUSHED, server=server)
        if failures:
            flushed = len(self.servers) - len(failures)
            raise CacheError(
                f"{len(failures)} memcached server(s) were not flushed ({flushed} of {len(self.servers)} were)",
                observed="\n" + "\n".join(exc.render() for exc in failures),
                hint="the upgrade itself is done (every node runs the target, contract has run), but Keystone "
                "may serve entries the old release cached: bring each memcached named back (or correct "
                "[cache] memcached), then run keystone-upgrade resume -i INVENTORY, which flushes again and "
                "cleans up; restarting a memcached empties it too",
            )

"""Watch HAProxy while something runs: every server's status and admin state over time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from runner.drivers.haproxy import HaproxyRuntime
from runner.errors import RunnerError


@dataclass(frozen=True)
class StateSample:
    """One server's state at one time, as HAProxy reported it."""

    at: float
    server: str  # backend/server
    status: str  # show stat's status: UP, DOWN, DRAIN, MAINT, ...
    admin: str  # READY, DRAIN or MAINT (show servers state)


class HaproxyWatcher:
    """Polls one runtime socket in a background thread, bounded in time."""

    def __init__(self, runtime: HaproxyRuntime, interval_s: float = 0.25, max_seconds: float = 3600.0):
        self.runtime = runtime
        self.interval_s = interval_s
        self.max_seconds = max_seconds
        self.samples: list[StateSample] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="haproxy-watch", daemon=True)

    def _poll(self) -> None:
        now = time.time()
        stats = self.runtime.show_stat()
        admin = {}
        for state in self.runtime.show_servers_state():
            label = "MAINT" if state.in_maintenance else "DRAIN" if state.draining else "READY"
            admin[f"{state.backend}/{state.server}"] = label
        for stat in stats:
            key = f"{stat.backend}/{stat.server}"
            self.samples.append(StateSample(now, key, stat.status, admin.get(key, "?")))

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while time.monotonic() < deadline:
            try:
                self._poll()
            except RunnerError:
                self.errors += 1
            # The poll interval; stop() ends the wait at once.
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> HaproxyWatcher:
        """Start polling."""
        self._thread.start()
        return self

    def stop(self) -> list[StateSample]:
        """Stop polling; every sample taken."""
        self._stop.set()
        self._thread.join(timeout=10)
        return list(self.samples)

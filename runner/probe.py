"""Bounded traffic through the load balancer while an upgrade runs, every request recorded.

Each worker issues a token with a password (POST /v3/auth/tokens) and then
validates it (GET /v3/auth/tokens), paced so that all workers together keep
the configured rate. Traffic stops by itself after ``max_requests`` or
``max_seconds``, whichever comes first, or when ``stop()`` is called.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import requests

from runner.drivers.keystone import Credentials

ISSUE = "token_issue"
VALIDATE = "token_validate"
EXPECTED = {ISSUE: 201, VALIDATE: 200}


@dataclass(frozen=True)
class Sample:
    """One request: when, what, how it ended, how long it took, who answered."""

    at: float
    operation: str
    status: int | None
    latency_s: float
    served_by: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        """The request got the answer it should."""
        return self.error is None and self.status == EXPECTED[self.operation]


@dataclass(frozen=True)
class ProbeSettings:
    """How much traffic, for how long at most."""

    rate_per_s: float = 30.0
    concurrency: int = 6
    max_requests: int = 20000
    max_seconds: float = 900.0
    timeout_s: float = 10.0


class Probe:
    """Traffic in background threads; ``samples`` holds every request once stopped."""

    def __init__(self, lb_url: str, credentials: Credentials, settings: ProbeSettings | None = None):
        self.lb_url = lb_url.rstrip("/")
        self.credentials = credentials
        self.settings = settings or ProbeSettings()
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._slots = itertools.count()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def _body(self) -> dict[str, object]:
        c = self.credentials
        return {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": c.username, "domain": {"id": c.domain}, "password": c.password}
                    },
                },
                "scope": {"project": {"name": c.project, "domain": {"id": c.domain}}},
            }
        }

    def _next_slot(self) -> float | None:
        """The time this worker may send its next request, or None when the budget is spent."""
        with self._lock:
            index = next(self._slots)
        if index >= self.settings.max_requests:
            return None
        at = self._started + index / self.settings.rate_per_s
        if at - self._started > self.settings.max_seconds:
            return None
        return at

    def _send(
        self, session: requests.Session, operation: str, token: str | None
    ) -> tuple[Sample, str | None]:
        began = time.monotonic()
        wall = time.time()
        status = served_by = error = None
        new_token = None
        try:
            if operation == ISSUE:
                response = session.post(
                    f"{self.lb_url}/v3/auth/tokens", json=self._body(), timeout=self.settings.timeout_s
                )
                new_token = response.headers.get("X-Subject-Token")
            else:
                assert token is not None
                response = session.get(
                    f"{self.lb_url}/v3/auth/tokens",
                    headers={"X-Auth-Token": token, "X-Subject-Token": token},
                    timeout=self.settings.timeout_s,
                )
            status, served_by = response.status_code, response.headers.get("X-Served-By")
            if status != EXPECTED[operation]:
                error = f"HTTP {status}: {response.text[:200]}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        sample = Sample(wall, operation, status, time.monotonic() - began, served_by, error)
        return sample, new_token

    def _worker(self) -> None:
        session = requests.Session()
        token: str | None = None
        try:
            while not self._stop.is_set():
                at = self._next_slot()
                if at is None:
                    return
                # Pacing: wait for this request's slot; stop() interrupts the wait.
                if self._stop.wait(max(0.0, at - time.monotonic())):
                    return
                operation = VALIDATE if token else ISSUE
                sample, new_token = self._send(session, operation, token)
                token = new_token if operation == ISSUE else None
                with self._lock:
                    self.samples.append(sample)
        finally:
            session.close()

    def start(self) -> Probe:
        """Start the workers."""
        self._started = time.monotonic()
        for index in range(self.settings.concurrency):
            thread = threading.Thread(target=self._worker, name=f"probe-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Sample]:
        """Stop the workers, wait for them, return every sample in time order."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.settings.timeout_s + 5)
        return sorted(self.samples, key=lambda s: s.at)

    def __enter__(self) -> Probe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class ProbeSummary:
    """Requests, failures and their reasons."""

    requests: int
    failed: int
    rate_per_s: float
    served_by: dict[str, int]
    failures: list[Sample]


def summarize(samples: list[Sample]) -> ProbeSummary:
    """Counts over a list of samples."""
    failures = [s for s in samples if not s.ok]
    span = (samples[-1].at - samples[0].at) if len(samples) > 1 else 0.0
    served: dict[str, int] = {}
    for sample in samples:
        if sample.served_by:
            served[sample.served_by] = served.get(sample.served_by, 0) + 1
    return ProbeSummary(len(samples), len(failures), len(samples) / span if span else 0.0, served, failures)

"""Bounded traffic through the load balancer while an upgrade runs, every request recorded.

Each worker cycles through four requests: issue a token with a password,
validate it, create a credential with it (encrypted with the cluster's
credential keys), and delete that credential. (Credentials rather than
projects: deleting a project scans the role assignments, which on a large
database measures that scan, not the upgrade.) Workers are
paced so that together they keep the configured rate, and traffic stops by
itself after ``max_requests`` or ``max_seconds`` (or on ``stop()``). Every
write that Keystone acknowledged is kept in a ledger and read back afterwards
(``verify_writes``), so a write that was acknowledged and then lost shows.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests

from runner.drivers.keystone import Credentials, base_url

ISSUE = "token_issue"
VALIDATE = "token_validate"
CREATE = "credential_create"
DELETE = "credential_delete"
EXPECTED = {ISSUE: 201, VALIDATE: 200, CREATE: 201, DELETE: 204}
BLOB_PREFIX = "ku-probe-"
CREDENTIAL_TYPE = "cert"


@dataclass(frozen=True)
class Sample:
    """One request: when, what, how it ended, how long it took, who answered, and why it failed.

    ``at`` is the time the request was due (its slot in the schedule) and ``latency_s`` runs from
    then to the answer: a probe that falls behind counts its own queueing as latency instead of
    hiding it (coordinated omission). ``sent_late_s`` is how much of that was spent waiting to send.
    """

    at: float
    operation: str
    status: int | None
    latency_s: float
    served_by: str | None
    error: str | None
    sent_late_s: float = 0.0

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
    writes: bool = True


@dataclass
class WriteLedger:
    """Projects the probe created and deleted, as Keystone acknowledged them."""

    attempted: dict[str, str] = field(default_factory=dict)  # blob -> "" until acknowledged, then id
    created: dict[str, str] = field(default_factory=dict)  # id -> blob (201 received)
    deleted: set[str] = field(default_factory=set)  # ids whose DELETE got 204
    # ids whose DELETE was sent but not acknowledged: either outcome is then correct.
    delete_unanswered: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class WriteCheck:
    """The read-back of every acknowledged write."""

    acknowledged_creates: int
    acknowledged_deletes: int
    lost: list[str]  # what was acknowledged but is not so now
    unacknowledged_applied: int  # writes that got no acknowledgement but did happen

    @property
    def ok(self) -> bool:
        """No acknowledged write was lost."""
        return not self.lost


class Probe:
    """Traffic in background threads; ``stop()`` returns every request in time order."""

    def __init__(self, lb_url: str, credentials: Credentials, settings: ProbeSettings | None = None):
        self.lb_url = base_url(lb_url)  # http://lb:5000 or http://lb:5000/v3 alike
        self.credentials = credentials
        self.settings = settings or ProbeSettings()
        self.samples: list[Sample] = []
        self.ledger = WriteLedger()
        self.started_at = 0.0
        self.stopped_at = 0.0
        self._run = uuid.uuid4().hex[:8]
        self._names = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._slots = itertools.count()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def _auth_body(self) -> dict[str, object]:
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
        offset = index / self.settings.rate_per_s
        return None if offset > self.settings.max_seconds else self._started + offset

    def _request(self, session: requests.Session, operation: str, state: dict[str, str]) -> requests.Response:
        url, timeout = f"{self.lb_url}/v3", self.settings.timeout_s
        token = state.get("token", "")
        if operation == ISSUE:
            return session.post(f"{url}/auth/tokens", json=self._auth_body(), timeout=timeout)
        if operation == VALIDATE:
            headers = {"X-Auth-Token": token, "X-Subject-Token": token}
            return session.get(f"{url}/auth/tokens", headers=headers, timeout=timeout)
        if operation == CREATE:
            blob = f"{BLOB_PREFIX}{self._run}-{next(self._names)}"
            state["blob"] = blob
            with self._lock:
                self.ledger.attempted[blob] = ""
            body = {"credential": {"type": CREDENTIAL_TYPE, "user_id": state["user_id"], "blob": blob}}
            return session.post(
                f"{url}/credentials", json=body, headers={"X-Auth-Token": token}, timeout=timeout
            )
        return session.delete(
            f"{url}/credentials/{state['credential']}", headers={"X-Auth-Token": token}, timeout=timeout
        )

    def _send(self, session: requests.Session, operation: str, state: dict[str, str], due: float) -> Sample:
        sent = time.monotonic()
        status = served_by = error = None
        try:
            response = self._request(session, operation, state)
            status, served_by = response.status_code, response.headers.get("X-Served-By")
            if status != EXPECTED[operation]:
                error = f"HTTP {status}: {response.text[:200]}"
            elif operation == ISSUE:
                state["token"] = response.headers["X-Subject-Token"]
                state["user_id"] = response.json()["token"]["user"]["id"]
            elif operation == CREATE:
                state["credential"] = response.json()["credential"]["id"]
                with self._lock:
                    self.ledger.created[state["credential"]] = state["blob"]
                    self.ledger.attempted[state["blob"]] = state["credential"]
            elif operation == DELETE:
                with self._lock:
                    self.ledger.deleted.add(state.pop("credential"))
        except (requests.RequestException, KeyError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if operation == DELETE and error is not None and "credential" in state:
            with self._lock:
                self.ledger.delete_unanswered.add(state.pop("credential"))
        due_wall = self.started_at + (due - self._started)
        return Sample(
            due_wall, operation, status, time.monotonic() - due, served_by, error, max(0.0, sent - due)
        )

    def _next_operation(self, previous: str | None, previous_ok: bool, state: dict[str, str]) -> str:
        """The cycle, restarting from a new token when a step failed or writes are off."""
        if previous is None or not previous_ok or "token" not in state:
            return ISSUE
        follows = {
            ISSUE: VALIDATE,
            VALIDATE: CREATE if self.settings.writes else ISSUE,
            CREATE: DELETE,
            DELETE: ISSUE,
        }
        return follows[previous]

    def _worker(self) -> None:
        session = requests.Session()
        state: dict[str, str] = {}
        previous: str | None = None
        previous_ok = True
        try:
            while not self._stop.is_set():
                at = self._next_slot()
                if at is None:
                    return
                # Pacing: wait for this request's slot; stop() interrupts the wait.
                if self._stop.wait(max(0.0, at - time.monotonic())):
                    return
                operation = self._next_operation(previous, previous_ok, state)
                if operation == ISSUE:
                    state.pop("token", None)
                sample = self._send(session, operation, state, at)
                previous, previous_ok = operation, sample.ok
                with self._lock:
                    self.samples.append(sample)
        finally:
            session.close()

    def start(self) -> Probe:
        """Start the workers."""
        self._started = time.monotonic()
        self.started_at = time.time()
        for index in range(self.settings.concurrency):
            thread = threading.Thread(target=self._worker, name=f"probe-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def join(self) -> None:
        """Wait until the workers have spent their budget (bounded by max_seconds)."""
        for thread in self._threads:
            thread.join(timeout=self.settings.max_seconds + self.settings.timeout_s + 5)

    def stop(self) -> list[Sample]:
        """Stop the workers, wait for them, return every sample in time order."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.settings.timeout_s + 5)
        self.stopped_at = self.stopped_at or time.time()
        with self._lock:
            return sorted(self.samples, key=lambda s: s.at)

    def verify_writes(self) -> WriteCheck:
        """Read back every acknowledged write; remove what the probe left behind."""
        session = requests.Session()
        timeout = self.settings.timeout_s
        url = f"{self.lb_url}/v3"
        issued = session.post(f"{url}/auth/tokens", json=self._auth_body(), timeout=timeout)
        issued.raise_for_status()
        headers = {"X-Auth-Token": issued.headers["X-Subject-Token"]}
        lost: list[str] = []
        applied = 0
        for credential_id, blob in self.ledger.created.items():
            status = session.get(
                f"{url}/credentials/{credential_id}", headers=headers, timeout=timeout
            ).status_code
            if credential_id in self.ledger.deleted:
                if status != 404:
                    lost.append(f"delete of {blob} was acknowledged but it is there (HTTP {status})")
            elif status == 200:
                session.delete(f"{url}/credentials/{credential_id}", headers=headers, timeout=timeout)
            elif status == 404 and credential_id in self.ledger.delete_unanswered:
                applied += 1  # its delete got no answer, yet happened: not a lost write
            else:
                lost.append(f"create of {blob} was acknowledged but it is not there (HTTP {status})")
        # Creates that got no answer may still have happened: find them by their blob and remove them.
        unanswered = {blob for blob, credential_id in self.ledger.attempted.items() if not credential_id}
        if unanswered:
            listed = session.get(
                f"{url}/credentials", params={"type": CREDENTIAL_TYPE}, headers=headers, timeout=timeout
            )
            for credential in listed.json().get("credentials", []) if listed.ok else []:
                if credential.get("blob") in unanswered:
                    applied += 1
                    session.delete(f"{url}/credentials/{credential['id']}", headers=headers, timeout=timeout)
        session.close()
        return WriteCheck(len(self.ledger.created), len(self.ledger.deleted), lost, applied)

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

"""The token gate: a swapped node and a peer accept each other's tokens before the node serves.

``GET /v3`` touches neither the database nor the keys; a token issued on one
node and validated on another touches the database and the login, and is what
clients do. (With a memcached the nodes share, Keystone caches a token's
validation as it issues it, so keys that differ are not seen here: the key
check by content catches those.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from runner.drivers.ports import Tokens
from runner.errors import HealthError
from runner.waits import TOKENS_ACCEPTED, WaitTimeout, wait_until

# (node name, base URL)
Endpoint = tuple[str, str]


def _one_round(
    tokens: Tokens, node: Endpoint, peer: Endpoint, peer_token: list[str]
) -> tuple[tuple[str, int] | None, str | None]:
    """One round, both ways: who rejected and the status (None when both accept), and the token
    ``node`` issued (the warm-up's). ``peer_token`` keeps the peer's across rounds: a round tried
    again for the node's sake logs in on the serving peer no more.

    A token is its own credential: sent as both the request's token and the subject, the checker
    lets the request in and validates it (Keystone's default policy lets a token's user validate
    it; a 401 when the checker cannot read it, unless a memcached the nodes share answers: see the
    module's note). One login per node, each a deliberately slow password hash: both at once,
    so that the node waits out of rotation for the slower one only.
    """
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            node_login = pool.submit(tokens.issue, node[1])
            peer_login = pool.submit(lambda: peer_token[0] if peer_token else tokens.issue(peer[1]))
        if not peer_token and peer_login.exception() is None:
            peer_token.append(peer_login.result())  # kept even when the node's failed
        # The node's failure first: it is the one being gated.
        issued = {node[0]: node_login.result(), peer[0]: peer_login.result()}
    except PermissionError as exc:  # an answer: retrying a refused login changes nothing
        return (
            f"{exc}; preflight got a token with them, so look at that node's [auth] (or [probe])",
            401,
        ), None
    for (issuer, _), (checker, checker_url) in ((node, peer), (peer, node)):
        token = issued[issuer]
        status = tokens.validate(checker_url, token, token)
        if status != 200:
            return (f"node {checker} rejects a token node {issuer} issued", status), issued[node[0]]
    return None, issued[node[0]]


def accepted_both_ways(tokens: Tokens, node: Endpoint, peer: Endpoint, hint: str) -> str | None:
    """The token ``node`` issued, once ``node`` and ``peer`` accept each other's; else HealthError.

    A node that does not answer, a 5xx (the database restarting) or a refused
    login is tried again, bounded by TOKENS_ACCEPTED; a token rejected with a
    4xx is an answer, not a hiccup.
    """
    peer_token: list[str] = []
    try:
        rejected, token = wait_until(
            TOKENS_ACCEPTED,
            lambda: _one_round(tokens, node, peer, peer_token),
            lambda r: r[0] is None or r[0][1] < 500,
        )
    except WaitTimeout as exc:
        raise HealthError(
            f"tokens could not be checked between node {node[0]} and node {peer[0]}",
            observed=str(exc),
            hint=hint,
        ) from exc
    if rejected is not None:
        what, status = rejected
        raise HealthError(what, observed=f"GET /v3/auth/tokens answered {status}", hint=hint)
    return token


def _login(tokens: Tokens, url: str) -> str | None:
    """A token issued on ``url``; None when refused, unanswered, or answered without a token."""
    try:
        return tokens.issue(url)
    except (OSError, KeyError, ValueError):
        return None


# A swapped node's first requests are its slowest: each worker opens its database and memcached
# connections, loads the keys, its password and token code and fills its caches on first use.
# Sent by the runner directly to the node before it goes back into rotation, they are no
# client's. Each thread logs in once, all at once, so that every worker has its first login (a
# free worker takes the next connection): a worker's first login took 80-150 ms against 14 ms
# for its next, measured on a restarted 29.1.0 node, and one login (the token gate's) reaches one
# worker. A password check is a deliberately slow hash, so one per thread, no more; then
# validations, several rounds per thread.
WARM_UP_THREADS = 4
WARM_UP_ROUNDS = 3


def warm_up(
    tokens: Tokens | None, url: str, health: Callable[[], int], token: str | None = None
) -> dict[str, object]:
    """Logins, one per thread at once, then validations of a token they got (else of ``token``,
    the token gate's), sent straight to a node; health requests without credentials.

    Failures are counted, not raised: the gates before it have decided whether the node serves.
    """
    started = time.monotonic()

    def one_round(subject: str | None) -> bool:
        try:
            if tokens is None:
                return health() == 200
            return subject is not None and tokens.validate(url, subject, subject) == 200
        except (OSError, KeyError, ValueError):
            return False

    with ThreadPoolExecutor(max_workers=WARM_UP_THREADS) as pool:
        logins = (
            [] if tokens is None else list(pool.map(lambda _: _login(tokens, url), range(WARM_UP_THREADS)))
        )
        subject = next((issued for issued in logins if issued is not None), token)
        answers = list(pool.map(lambda _: one_round(subject), range(WARM_UP_THREADS * WARM_UP_ROUNDS)))
    return {
        "requests": len(answers) + len(logins),
        "failed_rounds": answers.count(False),
        "failed_logins": logins.count(None),
        "seconds": round(time.monotonic() - started, 2),
    }

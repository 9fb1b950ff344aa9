"""The token gate: what is retried and what is an answer."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from runner.drivers.keystone import base_url
from runner.errors import HealthError
from runner.facts import probe_login_error
from runner.plan import build_plan
from runner.steps.tokens import accepted_both_ways
from tests.unit.test_plan import _facts, _inventory


class Flaky:
    """Tokens whose first ``failures`` validations answer ``status``; then every node accepts."""

    def __init__(self, failures: int, status: int) -> None:
        self.failures, self.status = failures, status
        self.validations = 0
        self.issued: list[str] = []
        self.asked: list[tuple[str, str, str]] = []

    def issue(self, base_url: str) -> str:
        self.issued.append(base_url)
        return f"token@{base_url}"

    def validate(self, base_url: str, auth_token: str, subject_token: str) -> int:
        self.validations += 1
        self.asked.append((base_url, auth_token, subject_token))
        return self.status if self.validations <= self.failures else 200


def test_a_database_hiccup_is_tried_again_and_then_passes() -> None:
    tokens = Flaky(failures=1, status=503)
    token = accepted_both_ways(tokens, ("k1", "http://k1"), ("k2", "http://k2"), hint="h")
    assert tokens.validations == 3  # one failed round, then both ways
    assert token == "token@http://k1"  # the node's own, for its warm-up


def test_each_node_logs_in_once_a_round_and_its_token_is_its_own_credential_on_the_other() -> None:
    tokens = Flaky(failures=0, status=200)
    accepted_both_ways(tokens, ("k1", "http://k1"), ("k2", "http://k2"), hint="h")
    assert sorted(tokens.issued) == ["http://k1", "http://k2"]  # a login is a slow password hash: one each
    assert tokens.asked == [
        ("http://k2", "token@http://k1", "token@http://k1"),
        ("http://k1", "token@http://k2", "token@http://k2"),
    ]


class Together(Flaky):
    """Logins that each wait for the other: they pass only when both are asked at once."""

    def __init__(self) -> None:
        super().__init__(failures=0, status=200)
        self.both = threading.Barrier(2, timeout=5)

    def issue(self, base_url: str) -> str:
        self.both.wait()  # BrokenBarrierError after 5 s alone
        return super().issue(base_url)


def test_the_node_and_its_peer_log_in_at_once() -> None:
    tokens = Together()
    assert accepted_both_ways(tokens, ("k1", "http://k1"), ("k2", "http://k2"), hint="h") == "token@http://k1"


class NodeRefusesFirst(Flaky):
    """The node's first login finds nothing listening; the peer answers every time."""

    def issue(self, base_url: str) -> str:
        if base_url == "http://k1" and "http://k1" not in self.issued:
            self.issued.append(base_url)
            raise ConnectionRefusedError("nothing listens on k1 yet")
        return super().issue(base_url)


def test_a_round_tried_again_for_the_node_does_not_log_in_on_the_peer_again() -> None:
    tokens = NodeRefusesFirst(failures=0, status=200)
    assert accepted_both_ways(tokens, ("k1", "http://k1"), ("k2", "http://k2"), hint="h") == "token@http://k1"
    assert sorted(tokens.issued) == ["http://k1", "http://k1", "http://k2"]
    assert ("http://k1", "token@http://k2", "token@http://k2") in tokens.asked


def test_a_rejected_token_is_an_answer_at_once() -> None:
    tokens = Flaky(failures=99, status=404)
    with pytest.raises(HealthError, match="node k2 rejects a token node k1 issued"):
        accepted_both_ways(tokens, ("k1", "http://k1"), ("k2", "http://k2"), hint="h")
    assert tokens.validations == 1


@pytest.mark.parametrize(
    ("health_url", "base"),
    [
        ("http://h:5000/v3", "http://h:5000"),
        ("https://h/identity/v3/", "https://h/identity"),
        ("http://h:1/", "http://h:1"),
    ],
)
def test_the_base_url_comes_from_the_health_url(health_url: str, base: str) -> None:
    assert base_url(health_url) == base


class Refusing(Flaky):
    """Every login refused, as with a wrong probe password."""

    def issue(self, base_url: str) -> str:
        raise PermissionError(f"{base_url} refused the probe's credentials (HTTP 401)")


def test_refused_credentials_are_an_answer_at_once_not_a_node_to_wait_for() -> None:
    tokens = Refusing(failures=0, status=200)
    with pytest.raises(
        HealthError, match=r"http://k1 refused the probe's credentials \(HTTP 401\); preflight got a token"
    ):
        accepted_both_ways(tokens, ("k1", "http://k1"), ("k2", "http://k2"), hint="h")
    assert tokens.validations == 0


def test_preflight_refuses_probe_credentials_that_get_no_token() -> None:
    assert probe_login_error(Refusing(0, 200), "http://lb:5000/v3") == (
        "http://lb:5000 refused the probe's credentials (HTTP 401)"
    )
    assert probe_login_error(Flaky(0, 200), "http://lb:5000/v3") is None
    assert probe_login_error(None, None) is None
    inventory = _inventory()
    plan = build_plan(inventory, replace(_facts(inventory), probe_login_error="HTTP 401"), run_id="r")
    assert [f.check for f in plan.findings] == ["probe"]

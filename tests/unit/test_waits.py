"""The named wait policies: they return on the observed state, or time out saying what they saw."""

from __future__ import annotations

import pytest

from runner.waits import WaitPolicy, WaitTimeout, wait_until

FAST = WaitPolicy("unit wait", timeout_s=0.3, interval_s=0.01)


def test_returns_the_first_observation_that_satisfies() -> None:
    values = iter([1, 2, 3, 4])
    assert wait_until(FAST, lambda: next(values), lambda v: v >= 3) == 3


def test_transient_errors_count_as_not_yet() -> None:
    calls = {"n": 0}

    def probe() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionRefusedError("not listening yet")
        return "up"

    assert wait_until(FAST, probe, lambda v: v == "up") == "up"


def test_timeout_names_the_policy_and_the_last_observation() -> None:
    with pytest.raises(WaitTimeout) as raised:
        wait_until(FAST, lambda: "DOWN", lambda v: v == "UP")
    assert "unit wait" in str(raised.value)
    assert "'DOWN'" in str(raised.value)


def test_an_error_that_is_not_transient_is_not_swallowed() -> None:
    def probe() -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        wait_until(FAST, probe, bool)

"""Preflight's `db_sync --check` and `doctor` of the target: in the warm keystone-manage container
beside a throwaway that reads only what needs no Keystone import, or in that throwaway when the
warm container did not run them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from runner.drivers.containers import Finished, ImageFacts, StillRunning
from runner.facts.target import target_facts
from runner.model import DatabaseConfig, Inventory, SecretSource
from runner.waits import CONTAINER_EXITED, WaitPolicy
from tests.unit.fakes import FakeEngine

HEADS = "RELEASE 29.1.0\nEXPAND e-new\nCONTRACT c-new\n"
CHECKS_IN_THROWAWAY = (
    "BEGIN check\nthrowaway check\nEND check 2\nBEGIN doctor\nthrowaway doctor\nEND doctor 0\n"
)


class _Target(FakeEngine):
    """The target image is there; its throwaway prints the heads (and the checks when asked)."""

    def __init__(self) -> None:
        super().__init__([])

    def image(self, reference: str) -> ImageFacts | None:
        return ImageFacts("sha256:new", reference, "29.1.0", {})

    def run_once(
        self, image: str, command: Sequence[str], *, policy: WaitPolicy = CONTAINER_EXITED, **_: object
    ) -> Finished:
        self.commands.append(list(command))
        return Finished(0, HEADS + (CHECKS_IN_THROWAWAY if "with-database" in command else ""))


def _inventory() -> Inventory:
    return Inventory(
        path=Path("inventory.toml"),
        database=DatabaseConfig("127.0.0.1", 3306, "keystone", "keystone", SecretSource("PW", None)),
        target_image="ks:29",
        backup_image="db:1",
        mounts=(),
        key_repositories=(),
        haproxy_sockets=(),
        nodes=(),
        state_dir=Path("state"),
        backup_dir=Path("state/backups"),
    )


class _Warm:
    """What the warm container answers each command (None: it did not run it)."""

    def __init__(self, answers: Mapping[str, Finished | Exception | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, argv: Sequence[str]) -> Finished | None:
        shown = " ".join(argv)
        self.asked.append(shown)
        answer = self.answers[shown]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _modes(engine: _Target) -> list[str]:
    return [next(a for a in c if a.endswith("-database")) for c in engine.commands]


def test_the_checks_run_in_the_warm_container_and_the_throwaway_imports_no_keystone() -> None:
    engine = _Target()
    warm = _Warm({"db_sync --check": Finished(2, "warm check"), "doctor": Finished(0, "warm doctor")})
    facts = target_facts(_inventory(), engine, {}, database_ok=True, checks=warm)
    assert _modes(engine) == ["without-database"]
    assert warm.asked == ["db_sync --check", "doctor"]
    assert (facts.check, facts.doctor) == (Finished(2, "warm check"), Finished(0, "warm doctor"))
    assert (facts.expand_head, facts.release, facts.image is not None) == ("e-new", "29.1.0", True)


@pytest.mark.parametrize(
    "answers",
    [
        {"db_sync --check": None, "doctor": Finished(0, "warm doctor")},
        {"db_sync --check": Finished(2, "warm check"), "doctor": None},
    ],
)
def test_checks_the_warm_container_did_not_run_run_in_the_throwaway(
    answers: Mapping[str, Finished | None],
) -> None:
    engine = _Target()
    facts = target_facts(_inventory(), engine, {}, database_ok=True, checks=_Warm(answers))
    assert _modes(engine) == ["without-database", "with-database"]
    assert (facts.check, facts.doctor) == (Finished(2, "throwaway check"), Finished(0, "throwaway doctor"))


def test_a_check_left_running_in_the_warm_container_is_an_error_of_the_target() -> None:
    still = StillRunning(
        "keystone-manage db_sync --check is still running after 600s",
        observed="-",
        hint="-",
        container_id="warm",
    )
    facts = target_facts(
        _inventory(), _Target(), {}, database_ok=True, checks=_Warm({"db_sync --check": still})
    )
    assert facts.error is not None
    assert "still running after 600s" in facts.error
    assert facts.image is not None


def test_without_the_database_nothing_is_checked() -> None:
    engine = _Target()
    warm = _Warm({})
    facts = target_facts(_inventory(), engine, {}, database_ok=False, checks=warm)
    assert (_modes(engine), warm.asked) == (["without-database"], [])
    assert (facts.check, facts.doctor, facts.expand_head) == (None, None, "e-new")

"""Preflight's `db_sync --check` and `doctor` of the target: in the warm keystone-manage container
beside a throwaway that reads only what needs no Keystone import, or in that throwaway when the
warm container did not run them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from types import SimpleNamespace
from typing import cast

import pytest

from runner.drivers.containers import ContainerFacts, Finished, ImageFacts, StillRunning
from runner.drivers.ports import Drivers
from runner.drivers.warm_keystone import STILL_RUNNING
from runner.facts.gather import _begun, _setup_from_container
from runner.facts.target import ManageCheck, target_facts
from runner.model import LOCAL_ENGINE, NodeConfig
from runner.waits import CONTAINER_EXITED, WaitPolicy
from tests.unit.fakes import FakeEngine, target_inventory

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


class _Warm:
    """What the warm container answers each command (None: it did not run it)."""

    def __init__(self, answers: Mapping[str, Finished | Exception | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []
        self.closed = False

    def __call__(self, argv: Sequence[str]) -> Finished | None:
        shown = " ".join(argv)
        self.asked.append(shown)
        if self.closed:
            return None  # as WarmKeystone once it has closed its container
        answer = self.answers[shown]
        if isinstance(answer, StillRunning):
            self.closed = True
        if isinstance(answer, Exception):
            raise answer
        return answer


def _modes(engine: _Target) -> list[str]:
    return [next(a for a in c if a.endswith("-database")) for c in engine.commands]


def test_the_checks_run_in_the_warm_container_and_the_throwaway_imports_no_keystone() -> None:
    engine = _Target()
    warm = _Warm({"db_sync --check": Finished(2, "warm check"), "doctor": Finished(0, "warm doctor")})
    facts = target_facts(target_inventory(), engine, {}, database_ok=True, checks=lambda: warm)
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
    facts = target_facts(target_inventory(), engine, {}, database_ok=True, checks=lambda: _Warm(answers))
    assert _modes(engine) == ["without-database", "with-database"]
    assert (facts.check, facts.doctor) == (Finished(2, "throwaway check"), Finished(0, "throwaway doctor"))


def test_a_check_left_running_in_the_warm_container_is_a_failed_check_and_the_rest_is_kept() -> None:
    still = StillRunning(
        "keystone-manage db_sync --check is still running after 600s",
        observed="-",
        hint="-",
        container_id="warm",
    )
    engine = _Target()
    warm = _Warm({"db_sync --check": still})
    facts = target_facts(target_inventory(), engine, {}, database_ok=True, checks=lambda: warm)
    assert facts.check is not None
    assert facts.check.exit_code == STILL_RUNNING
    assert "still running after 600s" in facts.check.output
    assert facts.doctor == Finished(STILL_RUNNING, "not run: db_sync --check was left running")
    assert (facts.error, facts.expand_head) == (None, "e-new")
    assert warm.asked == ["db_sync --check"], "the warm container, closed with it, is asked nothing more"
    assert _modes(engine) == ["without-database"], "nor is anything run again in the throwaway"


def test_without_a_warm_container_the_throwaway_runs_the_checks_once() -> None:
    engine = _Target()  # the Kolla way, or a warm container that could not be begun
    facts = target_facts(target_inventory(), engine, {}, database_ok=True, checks=lambda: None)
    assert _modes(engine) == ["with-database"]
    assert facts.check == Finished(2, "throwaway check")


def test_a_warm_container_whose_start_failed_leaves_the_checks_to_the_throwaway() -> None:
    failed: Future[ManageCheck | None] = Future()
    failed.set_exception(PermissionError("keystone.conf"))
    assert _begun(failed) is None
    begun: Future[ManageCheck | None] = Future()
    warm = _Warm({})
    begun.set_result(warm)
    assert _begun(begun) is warm


def test_preflight_starts_early_only_where_the_runners_engine_has_the_target_image() -> None:
    node = NodeConfig("k1", LOCAL_ENGINE, "c-k1", "http://k1/v3", ())
    container = ContainerFacts(
        "id-k1", "c-k1", "running", "sha256:old", "ks:28", "28.1.0", {}, {"Config": {}, "HostConfig": {}}
    )

    class _Local(FakeEngine):
        def __init__(self, target_present: bool) -> None:
            super().__init__([])
            self.target_present = target_present

        def container(self, name: str) -> ContainerFacts | None:
            return container

        def image(self, reference: str) -> ImageFacts | None:
            if reference == "ks:29" and not self.target_present:
                return None
            return ImageFacts("sha256:x", reference, None, {"Config": {}})

    def drivers(target_present: bool) -> Drivers:
        engine = _Local(target_present)
        return cast(Drivers, SimpleNamespace(engine=lambda _name: engine))

    assert _setup_from_container(target_inventory(), node, drivers(target_present=True)) is not None
    assert _setup_from_container(target_inventory(), node, drivers(target_present=False)) is None, (
        "its reading pulls the image first"
    )
    remote = NodeConfig("k2", "ssh://host", "c-k2", "http://k2/v3", ())
    assert _setup_from_container(target_inventory(), remote, drivers(target_present=True)) is None


def test_without_the_database_nothing_is_checked() -> None:
    engine = _Target()
    warm = _Warm({})
    facts = target_facts(target_inventory(), engine, {}, database_ok=False, checks=lambda: warm)
    assert (_modes(engine), warm.asked) == (["without-database"], [])
    assert (facts.check, facts.doctor, facts.expand_head) == (None, None, "e-new")

"""Preflight's readings of the target: in the warm keystone-manage container (the heads, release
and keys by a process started in it, `db_sync --check` and `doctor` forked from its Keystone),
or in a throwaway for what the warm container did not read or run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from types import SimpleNamespace
from typing import cast

import pytest

from runner.drivers.containers import ContainerFacts, Finished, ImageFacts, StillRunning
from runner.drivers.ports import Drivers
from runner.drivers.warm_keystone import STILL_RUNNING
from runner.facts.gather import _begun, _setup_from_container
from runner.facts.target import FACTS_SCRIPT, InWarm, WarmReading, target_facts
from runner.model import LOCAL_ENGINE, Inventory, NodeConfig
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


def _not_read(command: Sequence[str]) -> Finished | None:
    return None  # as WarmKeystone.read for a container it cannot read in


def _in(warm: _Warm, read: WarmReading = _not_read) -> InWarm:
    return InWarm(manage=warm, read=read)


def _modes(engine: _Target) -> list[str]:
    return [next(a for a in c if a.endswith("-database")) for c in engine.commands]


def test_the_checks_run_in_the_warm_container_and_the_throwaway_imports_no_keystone() -> None:
    engine = _Target()
    warm = _Warm({"db_sync --check": Finished(2, "warm check"), "doctor": Finished(0, "warm doctor")})
    facts = target_facts(target_inventory(), engine, {}, database_ok=True, warm=lambda: _in(warm))
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
    facts = target_facts(target_inventory(), engine, {}, database_ok=True, warm=lambda: _in(_Warm(answers)))
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
    facts = target_facts(target_inventory(), engine, {}, database_ok=True, warm=lambda: _in(warm))
    assert facts.check is not None
    assert facts.check.exit_code == STILL_RUNNING
    assert "still running after 600s" in facts.check.output
    assert facts.doctor == Finished(STILL_RUNNING, "not run: db_sync --check was left running")
    assert (facts.error, facts.expand_head) == (None, "e-new")
    assert warm.asked == ["db_sync --check"], "the warm container, closed with it, is asked nothing more"
    assert _modes(engine) == ["without-database"], "nor is anything run again in the throwaway"


def test_without_a_warm_container_the_throwaway_runs_the_checks_once() -> None:
    engine = _Target()  # the Kolla way, or a warm container that could not be begun
    facts = target_facts(target_inventory(), engine, {}, database_ok=True, warm=lambda: None)
    assert _modes(engine) == ["with-database"]
    assert facts.check == Finished(2, "throwaway check")


def test_a_warm_container_whose_start_failed_leaves_the_checks_to_the_throwaway() -> None:
    failed: Future[InWarm | None] = Future()
    failed.set_exception(PermissionError("keystone.conf"))
    assert _begun(failed) is None
    begun: Future[InWarm | None] = Future()
    warm = _in(_Warm({}))
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
    facts = target_facts(target_inventory(), engine, {}, database_ok=False, warm=lambda: _in(warm))
    assert (_modes(engine), warm.asked) == (["without-database"], [])
    assert (facts.check, facts.doctor, facts.expand_head) == (None, None, "e-new")


KEYS_READ = "KEYS /etc/keystone/fernet-keys 3\nKEYDIGEST /etc/keystone/fernet-keys 3 abc\n"


def _with_keys() -> Inventory:
    return dataclasses.replace(target_inventory(), key_repositories=("/etc/keystone/fernet-keys",))


class _Reads:
    """What the warm container prints for a reading (None: it could not run it)."""

    def __init__(self, answer: Finished | None) -> None:
        self.answer = answer
        self.asked: list[list[str]] = []

    def __call__(self, command: Sequence[str]) -> Finished | None:
        self.asked.append(list(command))
        return self.answer


@pytest.mark.parametrize("database_ok", [True, False])
def test_the_heads_and_keys_are_read_in_the_warm_container_and_no_throwaway_is_started(
    database_ok: bool,
) -> None:
    engine = _Target()
    warm = _Warm({"db_sync --check": Finished(2, "warm check"), "doctor": Finished(0, "warm doctor")})
    reads = _Reads(Finished(0, HEADS + KEYS_READ))
    inventory = _with_keys()
    facts = target_facts(inventory, engine, {}, database_ok=database_ok, warm=lambda: _in(warm, reads))
    assert engine.commands == [], "no throwaway: everything was read in the warm container"
    assert reads.asked == [["python3", "-c", FACTS_SCRIPT, "without-database", *inventory.key_repositories]]
    assert (facts.expand_head, facts.contract_head, facts.release) == ("e-new", "c-new", "29.1.0")
    assert facts.key_digests == {"/etc/keystone/fernet-keys": "abc"}
    assert facts.image is not None
    checked = (Finished(2, "warm check"), Finished(0, "warm doctor")) if database_ok else (None, None)
    assert (facts.check, facts.doctor) == checked


@pytest.mark.parametrize(
    "answer",
    [
        Finished(1, HEADS + KEYS_READ),  # it failed after printing
        Finished(0, KEYS_READ),  # no heads
        Finished(0, HEADS),  # a repository unread
    ],
)
def test_a_reading_the_warm_container_did_not_complete_is_made_in_a_throwaway(answer: Finished) -> None:
    engine = _Target()
    warm = _Warm({"db_sync --check": Finished(0, "warm check"), "doctor": Finished(0, "warm doctor")})
    facts = target_facts(_with_keys(), engine, {}, database_ok=True, warm=lambda: _in(warm, _Reads(answer)))
    assert _modes(engine) == ["without-database"], (
        "the throwaway reads; the checks stay in the warm container"
    )
    assert (facts.expand_head, facts.check) == ("e-new", Finished(0, "warm check"))

"""The target image copied onto a node's engine that no registry serves: only by an upgrade, checked by id."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import pytest

from runner.drivers.containers import ImageFacts
from runner.drivers.image_copy import copy_image
from runner.errors import DockerError
from runner.facts import NodeFacts, node_facts
from runner.plan import Plan, build_plan
from tests.unit.fakes import Calls, FakeEngine, FakeHttp
from tests.unit.test_plan import _facts, _inventory, _node

TARGET = "ks:29"


class _Engine(FakeEngine):
    """An engine with images by name; a load gives each image in the archive the id it carries."""

    def __init__(self, calls: Calls, endpoint: str, images: dict[str, str], loads_as: str | None = None):
        super().__init__(calls)
        self.endpoint = endpoint
        self.images = images
        self.loads_as = loads_as  # the id a load ends with (another one: a damaged copy)

    def image(self, reference: str) -> ImageFacts | None:
        found = self.images.get(reference)
        return ImageFacts(found, reference, "29.1.0", {}) if found else None

    def save_image(self, reference: str) -> Iterator[bytes]:
        self.calls.append(f"save {reference} on {self.endpoint}")
        yield from (b"x" * 1000, b"y" * 500)

    def load_image(self, archive: Iterable[bytes]) -> None:
        received = sum(len(chunk) for chunk in archive)
        self.calls.append(f"load {received} bytes on {self.endpoint}")
        self.images[TARGET] = self.loads_as or "sha256:new"


def _engines(loads_as: str | None = None) -> tuple[Calls, _Engine, _Engine]:
    calls: Calls = []
    return calls, _Engine(calls, "local", {TARGET: "sha256:new"}), _Engine(calls, "ssh://k2", {}, loads_as)


def test_the_archive_streams_from_one_engine_into_the_other_and_arrives_with_its_id() -> None:
    calls, local, remote = _engines()
    copied = copy_image(local, remote, TARGET)
    assert calls == [f"save {TARGET} on local", "load 1500 bytes on ssh://k2"]
    assert (copied.image_id, copied.size_bytes, copied.destination) == ("sha256:new", 1500, "ssh://k2")
    assert copied.describe().startswith(
        f"loaded {TARGET} (sha256:new) onto ssh://k2 from the engine local in "
    )


def test_a_copy_that_arrives_as_another_image_says_both_ids() -> None:
    _, local, remote = _engines(loads_as="sha256:other")
    with pytest.raises(DockerError, match="is not the image the engine local has") as raised:
        copy_image(local, remote, TARGET)
    assert raised.value.observed is not None
    assert "on local: sha256:new; on ssh://k2: sha256:other" in raised.value.observed


def test_nothing_is_sent_when_the_runner_s_engine_lacks_the_image_too() -> None:
    calls, local, remote = _engines()
    local.images.clear()
    with pytest.raises(DockerError, match="does not have it either"):
        copy_image(local, remote, TARGET)
    assert calls == []


def _remote_node_facts(pull_missing: bool, loads_as: str | None = None) -> tuple[Calls, NodeFacts]:
    calls, local, remote = _engines(loads_as)
    node = replace(_inventory().nodes[1], engine="ssh://k2")
    facts = node_facts(node, remote, FakeHttp(), TARGET, pull_missing=pull_missing, image_source=local)
    return calls, facts


def _plan_with_k2(observed: NodeFacts) -> Plan:
    """The plan when node k2 (on ssh://k2) is as ``observed`` says about the target image, and well."""
    inventory = _inventory()
    remote = replace(inventory.nodes[1], engine="ssh://k2")
    inventory = replace(inventory, nodes=(inventory.nodes[0], remote, inventory.nodes[2]))
    facts = _facts(inventory)
    k2 = replace(
        _node(remote),
        target_image_present=observed.target_image_present,
        target_image_copy=observed.target_image_copy,
    )
    return build_plan(inventory, replace(facts, nodes=(facts.nodes[0], k2, facts.nodes[2])), run_id="r")


def test_plan_copies_nothing() -> None:
    calls, facts = _remote_node_facts(pull_missing=False)
    assert calls == []
    assert (facts.target_image_present, facts.target_image_copy) == (False, None)


def test_an_upgrade_loads_the_missing_image_and_the_plan_says_so() -> None:
    calls, facts = _remote_node_facts(pull_missing=True)
    assert calls == [f"save {TARGET} on local", "load 1500 bytes on ssh://k2"]
    assert facts.target_image_present is True
    plan = _plan_with_k2(facts)
    assert plan.findings == ()
    loaded = [n for n in plan.notices if n.startswith("node k2: loaded ks:29 (sha256:new) onto ssh://k2")]
    assert len(loaded) == 1, plan.notices
    assert "push the image to a registry" in loaded[0]
    # The notices travel with the plan into the journal.
    assert loaded[0] in plan.to_dict()["notices"]


def test_a_copy_that_fails_its_id_check_is_a_finding_that_says_what_was_seen() -> None:
    _, facts = _remote_node_facts(pull_missing=True, loads_as="sha256:other")
    assert (facts.target_image_present, facts.engine_error) == (False, None)
    plan = _plan_with_k2(facts)
    assert [f.check for f in plan.findings] == ["target-image"]
    assert "loading it from the runner's engine failed" in plan.findings[0].observed
    assert "sha256:other" in plan.findings[0].observed
    assert not [n for n in plan.notices if "loaded" in n]


def test_a_node_on_the_runner_s_own_engine_is_never_copied_onto_itself() -> None:
    calls, local, _ = _engines()
    local.images.clear()
    node = _inventory().nodes[0]
    facts = node_facts(node, local, FakeHttp(), TARGET, pull_missing=True, image_source=local)
    assert calls == []
    assert (facts.target_image_present, facts.target_image_copy) == (False, None)

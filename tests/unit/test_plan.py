"""Building the plan and the preflight findings from facts: pure, with hand-made facts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from runner.cli_render import render_plan
from runner.drivers.containers import ContainerFacts, Finished, ImageFacts
from runner.drivers.docker_blueprint import ThrowawaySetup
from runner.drivers.haproxy import OperationalState, ServerStat, ServerState
from runner.facts import ClusterFacts, DatabaseFacts, NodeFacts, SocketFacts, TargetFacts, throwaway_setup
from runner.model import (
    BindMount,
    DatabaseConfig,
    Inventory,
    NodeConfig,
    SecretSource,
    ServerRef,
    SocketAddress,
    TargetConfig,
)
from runner.plan import Plan, build_plan, with_current_environment, with_current_timeouts
from runner.preflight import preflight_findings
from runner.steps import Contract, Expand, Migrate, NodeUpgrade, StepKind

BACKENDS = ("internal", "external")
KEYS = ("/etc/keystone/fernet-keys", "/etc/keystone/credential-keys")
OLD_HEADS = frozenset({"e-old", "c-old"})
NEW_HEADS = frozenset({"e-new", "c-new"})


def _inventory(names: tuple[str, ...] = ("k1", "k2", "k3")) -> Inventory:
    return Inventory(
        path=Path("inventory.toml"),
        database=DatabaseConfig("127.0.0.1", 3306, "keystone", "keystone", SecretSource("PW", None)),
        target_image="ks:29",
        backup_image="db:1",
        mounts=tuple(BindMount(f"/host{k}", k, False) for k in KEYS),
        key_repositories=KEYS,
        haproxy_sockets=(SocketAddress(unix_path="/admin.sock"),),
        nodes=tuple(
            NodeConfig(n, "local", f"c-{n}", f"http://{n}/v3", tuple(ServerRef(b, n) for b in BACKENDS))
            for n in names
        ),
        state_dir=Path("state"),
        backup_dir=Path("state/backups"),
    )


def _node(config: NodeConfig, version: str = "28.1.0") -> NodeFacts:
    container = ContainerFacts(
        id=f"id-{config.name}",
        name=config.container,
        status="running",
        image_id="sha256:old",
        image_reference=f"ks:{version}",
        keystone_version=version,
        mounts={k: f"/host{k}" for k in KEYS},
        inspect={},
    )
    return NodeFacts(config, container, None, 200, None, release=version)


def _socket(inventory: Inventory, admin: dict[str, int] | None = None, status: str = "UP") -> SocketFacts:
    admin = admin or {}
    stats, states = [], []
    for node in inventory.nodes:
        for ref in node.servers:
            flags = admin.get(str(ref), 0)
            shown = "MAINT" if flags & 1 else "DRAIN" if flags & 8 else status
            stats.append(ServerStat(ref.backend, ref.server, shown, 0, 0))
            states.append(ServerState(ref.backend, ref.server, OperationalState.RUNNING, flags))
    return SocketFacts("unix:/admin.sock", "admin", None, tuple(stats), tuple(states))


def _facts(inventory: Inventory, **changes: object) -> ClusterFacts:
    target = TargetFacts(
        image=ImageFacts("sha256:new", "ks:29", "29.1.0", {}),
        release="29.1.0",
        expand_head="e-new",
        contract_head="c-new",
        key_files=dict.fromkeys(KEYS, 2),
        check=Finished(2, "Your database is not up to date."),
        doctor=Finished(0, ""),
    )
    facts = ClusterFacts(
        nodes=tuple(_node(n) for n in inventory.nodes),
        sockets=(_socket(inventory),),
        database=DatabaseFacts(None, OLD_HEADS),
        target=target,
    )
    return replace(facts, **changes)  # type: ignore[arg-type]


def test_a_healthy_old_cluster_gets_every_step_in_order() -> None:
    inventory = _inventory()
    plan = build_plan(inventory, _facts(inventory), run_id="r")
    assert not plan.refused
    assert [s.id for s in plan.steps] == [
        "backup", "expand", "migrate", "keys-before", "node:k1", "node:k2", "node:k3", "keys-after",
        "contract", "flush-cache", "cleanup",
    ]  # fmt: skip
    # migrate: a no-op on every alembic release; flush-cache: not asked for.
    assert [s.id for s in plan.steps if s.skipped] == ["migrate", "flush-cache"]
    assert "no-op" in ({s.id: s for s in plan.steps}["migrate"].skip_reason or "")
    assert plan.source_versions == ("28.1.0",)
    assert plan.target_version == "29.1.0"
    assert plan.check_exit_code == 2


def test_steps_already_done_are_skipped_with_their_reason() -> None:
    inventory = _inventory()
    done = _facts(
        inventory,
        nodes=tuple(_node(n, "29.1.0") for n in inventory.nodes),
        database=DatabaseFacts(None, NEW_HEADS),
    )
    plan = build_plan(inventory, done, run_id="r")
    by_id = {s.id: s for s in plan.steps}
    assert "backup" not in by_id  # nothing will change the schema: no dump needed
    assert by_id["expand"].skipped
    assert by_id["contract"].skipped
    assert by_id["node:k2"].skip_reason == "already runs 29.1.0"


def test_expanded_but_not_contracted_skips_expand_and_keeps_contract() -> None:
    inventory = _inventory()
    plan = build_plan(
        inventory, _facts(inventory, database=DatabaseFacts(None, frozenset({"e-new", "c-old"}))), run_id="r"
    )
    by_id = {s.id: s for s in plan.steps}
    assert by_id["expand"].skipped
    assert by_id["migrate"].skipped
    assert not by_id["contract"].skipped
    assert by_id["contract"].kind is StepKind.CONTRACT


def _checks(inventory: Inventory, facts: ClusterFacts) -> list[str]:
    return [f.check for f in preflight_findings(inventory, facts)]


def test_a_server_in_maint_or_drain_anywhere_refuses() -> None:
    inventory = _inventory()
    for flags in (0x01, 0x08):
        facts = _facts(inventory, sockets=(_socket(inventory, {"external/k2": flags}),))
        findings = preflight_findings(inventory, facts)
        assert [f.check for f in findings] == ["haproxy"]
        assert "external/k2" in findings[0].what


def test_a_drained_server_whose_check_fails_is_not_up() -> None:
    inventory = _inventory()
    facts = _facts(inventory, sockets=(_socket(inventory, status="DOWN"),))
    assert set(_checks(inventory, facts)) == {"haproxy"}


def test_operator_level_missing_image_mixed_releases_and_database_each_refuse() -> None:
    inventory = _inventory()
    operator = replace(_socket(inventory), level="operator")
    assert _checks(inventory, _facts(inventory, sockets=(operator,))) == ["haproxy"]
    assert _checks(inventory, _facts(inventory, target=TargetFacts(None))) == ["target-image"]
    mixed = (_node(inventory.nodes[0]), _node(inventory.nodes[1], "29.1.0"), _node(inventory.nodes[2]))
    assert _checks(inventory, _facts(inventory, nodes=mixed)) == ["releases"]
    assert _checks(inventory, _facts(inventory, database=DatabaseFacts("Access denied"))) == ["database"]


def test_keys_that_differ_by_content_refuse_and_host_paths_do_not_matter() -> None:
    inventory = _inventory()
    same = dict.fromkeys(KEYS, "d" * 64)
    # Another host directory with the same keys (another host, a Kolla volume): no finding.
    node = _node(inventory.nodes[0])
    assert node.container is not None
    elsewhere = replace(
        node, container=replace(node.container, mounts={KEYS[0]: "/elsewhere"}), key_digests=same
    )
    others = tuple(replace(_node(n), key_digests=same) for n in inventory.nodes[1:])
    target = replace(_facts(inventory).target, key_digests=same)
    assert _checks(inventory, _facts(inventory, nodes=(elsewhere, *others), target=target)) == []
    # One node with one more key: refused, naming who holds what.
    extra = replace(elsewhere, key_digests={**same, KEYS[0]: "e" * 64})
    facts = _facts(inventory, nodes=(extra, *others), target=target)
    assert _checks(inventory, facts) == ["keys"]
    (finding,) = build_plan(inventory, facts, run_id="r").findings
    assert (
        f"{KEYS[0]}: dddddddddddd on node k2, node k3, the throwaway container; eeeeeeeeeeee on node k1"
        in (finding.observed)
    )
    assert KEYS[1] not in finding.observed
    # A node whose keys cannot be read is a finding of its own.
    unread = replace(_node(inventory.nodes[0]), key_error="exit code 126")
    assert _checks(inventory, _facts(inventory, nodes=(unread, *others))) == ["keys"]
    empty = replace(_facts(inventory).target, key_files={KEYS[0]: 0, KEYS[1]: 2})
    assert _checks(inventory, _facts(inventory, target=empty)) == ["keys"]


def test_an_unhealthy_or_missing_node_refuses() -> None:
    inventory = _inventory()
    sick = replace(_node(inventory.nodes[0]), health_status=None, health_error="connection refused")
    assert _checks(inventory, _facts(inventory, nodes=(sick, *(_node(n) for n in inventory.nodes[1:])))) == [
        "health"
    ]
    gone = replace(_node(inventory.nodes[0]), container=None)
    assert _checks(inventory, _facts(inventory, nodes=(gone, *(_node(n) for n in inventory.nodes[1:])))) == [
        "container"
    ]


def test_a_check_that_errors_instead_of_answering_refuses() -> None:
    inventory = _inventory()
    broken = replace(_facts(inventory).target, check=Finished(1, "OperationalError: Access denied"))
    findings = preflight_findings(inventory, _facts(inventory, target=broken))
    assert [f.check for f in findings] == ["migrations"]
    assert "Access denied" in findings[0].observed


def test_a_remote_engine_without_the_target_image_is_a_finding_before_anything_drains() -> None:
    inventory = _inventory()
    remote = replace(inventory.nodes[1], engine="ssh://root@k2")
    inventory = replace(inventory, nodes=(inventory.nodes[0], remote, inventory.nodes[2]))
    facts = _facts(inventory)
    facts = replace(
        facts,
        nodes=(
            facts.nodes[0],
            replace(_node(remote), target_image_present=False),
            replace(facts.nodes[2], target_image_present=True),
        ),
    )
    # plan copies nothing: upgrade will load it from the runner's engine, which has it.
    planned = build_plan(inventory, facts, run_id="r")
    assert not planned.findings
    assert any("upgrade loads it there" in n and "ssh://root@k2" in n for n in planned.notices)
    # upgrade tried the copy, and it failed: a finding before anything drains.
    failed = replace(facts.nodes[1], target_image_copy="loading failed: no space left on device")
    plan = build_plan(inventory, replace(facts, nodes=(facts.nodes[0], failed, facts.nodes[2])), run_id="r")
    assert [f.check for f in plan.findings] == ["target-image"]
    assert "node k2: the target image ks:29 is not on its engine ssh://root@k2" in plan.findings[0].what
    assert "no space left on device" in plan.findings[0].observed


def test_throwaways_copy_a_remote_node_when_no_node_is_on_the_runner_s_engine() -> None:
    inventory = _inventory()
    remote = tuple(replace(n, engine=f"ssh://root@{n.name}") for n in inventory.nodes)
    inventory = replace(inventory, nodes=remote)
    facts = _facts(inventory)
    inspect = {"Config": {"Env": [], "Cmd": ["kolla_start"], "User": "root"}, "Mounts": []}
    nodes = tuple(
        replace(n, container=replace(n.container, inspect=inspect)) if n.container else n for n in facts.nodes
    )

    class Engines:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def __call__(self, endpoint: str) -> Any:
            self.asked.append(endpoint)
            return self

        def image(self, reference: str) -> ImageFacts:
            return ImageFacts("sha256:old", reference, None, {"Config": {"Cmd": ["gunicorn"]}})

    engines = Engines()
    setup = throwaway_setup(inventory, nodes, engines)
    assert (setup.engine, setup.command, setup.user) == ("ssh://root@k1", ("kolla_start",), "root")
    plan = build_plan(inventory, replace(facts, nodes=nodes, throwaway=setup), run_id="r")
    assert {s.engine for s in plan.steps if isinstance(s, Expand | Migrate | Contract)} == {"ssh://root@k1"}


def test_a_throwaway_container_still_running_from_an_earlier_run_is_a_finding() -> None:
    inventory = _inventory()
    leftover = "0123456789ab (expand, ks:29, run r0) on local"
    plan = build_plan(inventory, _facts(inventory, throwaways_running=(leftover,)), run_id="r")
    assert [f.check for f in plan.findings] == ["throwaway"]
    assert leftover in plan.findings[0].observed


def test_a_resumed_plan_takes_the_inventorys_timeouts_and_nothing_else() -> None:
    inventory = _inventory()
    plan = build_plan(inventory, _facts(inventory), run_id="r")
    raised = replace(inventory, migration_timeout_s=7200.0, drain_timeout_s=300.0, health_timeout_s=400.0)
    resumed = with_current_timeouts(plan, raised)
    assert [s.id for s in resumed.steps] == [s.id for s in plan.steps]
    assert {s.timeout_s for s in resumed.steps if isinstance(s, Expand | Migrate | Contract)} == {7200.0}
    nodes = [s for s in resumed.steps if isinstance(s, NodeUpgrade)]
    assert {(s.drain_timeout_s, s.health_timeout_s) for s in nodes} == {(300.0, 400.0)}
    back = [
        replace(s, timeout_s=3600.0) if isinstance(s, Expand | Migrate | Contract) else s
        for s in resumed.steps
    ]
    assert [
        replace(s, drain_timeout_s=120.0, health_timeout_s=180.0) if isinstance(s, NodeUpgrade) else s
        for s in back
    ] == list(plan.steps)


def test_releases_are_read_inside_and_labels_are_only_checked_hints() -> None:
    inventory = _inventory()
    unlabelled_target = replace(_facts(inventory).target, image=ImageFacts("sha256:new", "ks:29", None, {}))
    unlabelled_nodes = tuple(
        replace(n, container=replace(n.container, keystone_version=None)) if n.container else n
        for n in _facts(inventory).nodes
    )
    plan = build_plan(
        inventory, _facts(inventory, target=unlabelled_target, nodes=unlabelled_nodes), run_id="r"
    )
    assert not plan.refused
    assert (plan.source_versions, plan.target_version) == (("28.1.0",), "29.1.0")

    lying = replace(unlabelled_target, image=ImageFacts("sha256:new", "ks:29", "30.0.0", {}))
    findings = preflight_findings(inventory, _facts(inventory, target=lying))
    assert [f.check for f in findings] == ["target-image"]
    assert "label says 30.0.0" in findings[0].observed

    unreadable = replace(unlabelled_target, release=None)
    assert _checks(inventory, _facts(inventory, target=unreadable)) == ["target-image"]

    mislabelled = (replace(_node(inventory.nodes[0]), release="28.0.0"), *_facts(inventory).nodes[1:])
    assert "releases" in _checks(inventory, _facts(inventory, nodes=mislabelled))
    silent = (replace(_node(inventory.nodes[0]), release=None), *_facts(inventory).nodes[1:])
    assert "releases" in _checks(inventory, _facts(inventory, nodes=silent))


def test_the_kolla_way_migrates_in_the_expand_container_and_nodes_carry_their_target_config() -> None:
    inventory = replace(
        _inventory(),
        environment=(("SHARED", "1"),),
        node_targets=(("k2", TargetConfig(environment=(("OWN", "2"),))),),
    )
    kolla_mounts = (
        BindMount("/etc/kolla/keystone", "/var/lib/kolla/config_files", True),
        BindMount("keystone_fernet_tokens", "/etc/keystone/fernet-keys", False),
    )
    setup = ThrowawaySetup(
        kolla_mounts, (("KOLLA_CONFIG_STRATEGY", "COPY_ALWAYS"),), "root", ("kolla_start",)
    )
    plan = build_plan(inventory, _facts(inventory, throwaway=setup), run_id="r")
    by_id = {s.id: s for s in plan.steps}
    expand, migrate = by_id["expand"], by_id["migrate"]
    assert isinstance(expand, Expand)
    assert isinstance(migrate, Migrate)
    assert expand.kolla
    assert not expand.skipped
    assert expand.mounts == kolla_mounts
    assert (expand.user, expand.command) == ("root", ("kolla_start",))
    assert dict(expand.environment)["KOLLA_CONFIG_STRATEGY"] == "COPY_ALWAYS"
    assert "KOLLA_UPGRADE" in (migrate.skip_reason or "")
    k1, k2 = by_id["node:k1"], by_id["node:k2"]
    assert isinstance(k1, NodeUpgrade)
    assert isinstance(k2, NodeUpgrade)
    assert k1.config.environment == (("SHARED", "1"),)
    assert k2.config.environment == (("OWN", "2"), ("SHARED", "1"))
    # The plan as data: the journal's copy reads back exactly.
    written = json.dumps(plan.to_dict())
    assert "COPY_ALWAYS" not in written  # values never written down, names only
    assert "KOLLA_CONFIG_STRATEGY" in written
    assert with_current_environment(Plan.from_dict(json.loads(written)), inventory, setup) == plan


def test_kolla_s_socket_below_admin_level_names_haproxy_socket_level_admin() -> None:
    inventory = _inventory()
    kolla = replace(
        _socket(inventory),
        address="unix:/var/lib/docker/volumes/haproxy_socket/_data/haproxy.sock",
        level="user",
    )
    findings = preflight_findings(inventory, _facts(inventory, sockets=(kolla,)))
    assert [f.check for f in findings] == ["haproxy"]
    assert "haproxy_socket_level_admin" in findings[0].hint


def test_a_node_s_own_configuration_that_the_target_cannot_use_refuses() -> None:
    inventory = _inventory()
    broken = replace(_facts(inventory).target, check=Finished(1, "NoSuchModuleError: nosuchdialect"))
    facts = _facts(inventory, node_targets=(("k3", broken), ("k2", _facts(inventory).target)))
    findings = preflight_findings(inventory, facts)
    assert [f.check for f in findings] == ["target-config"]
    assert findings[0].what.startswith("node k3:")
    assert "nosuchdialect" in findings[0].observed


def test_the_printed_plan_says_where_and_how_the_throwaway_containers_migrate() -> None:
    inventory = _inventory()
    shown = render_plan(build_plan(inventory, _facts(inventory), run_id="r"))
    assert (
        "throwaway containers: engine local; keystone-manage db_sync; mounts /etc/keystone/fernet-keys"
        in shown
    )
    kolla = ThrowawaySetup(
        (BindMount("/etc/kolla/keystone", "/var/lib/kolla/config_files", True),), (), "root", (), "ssh://k1"
    )
    shown = render_plan(build_plan(inventory, _facts(inventory, throwaway=kolla), run_id="r"))
    assert "throwaway containers: engine ssh://k1; KOLLA_UPGRADE / KOLLA_FINISH_UPGRADE" in shown


def test_an_unchecked_node_configuration_and_a_plain_tcp_engine_are_noticed() -> None:
    inventory = _inventory()
    tcp = replace(inventory.nodes[2], engine="tcp://k3:2375")
    inventory = replace(
        inventory,
        nodes=(*inventory.nodes[:2], tcp),
        node_targets=(("k2", TargetConfig(environment=(("A", "1"),))),),
    )
    facts = _facts(inventory)
    facts = replace(facts, nodes=(*facts.nodes[:2], replace(facts.nodes[2], config=tcp)))
    notices = build_plan(inventory, facts, run_id="r").notices
    assert any(n.startswith("node k2: its own [nodes.target] configuration was not checked") for n in notices)
    assert any(
        n.startswith("node k3: its engine tcp://k3:2375 is tcp:// without docker_tls_dir") for n in notices
    )
    checked = replace(facts, node_targets=(("k2", facts.target),))
    assert not any("was not checked" in n for n in build_plan(inventory, checked, run_id="r").notices)

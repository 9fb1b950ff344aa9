"""Preflight: every reason not to start, from inventory and facts. Pure, no I/O.

Each finding says what failed, what was observed and what to do; the plan
refuses to run while there is any.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.drivers.key_digests import key_differences
from runner.drivers.keystone_release import label_disagreement
from runner.facts import ClusterFacts, NodeFacts, SocketFacts
from runner.model import LOCAL_ENGINE, Inventory

# db_sync --check: 0 up to date, 2 expand needed, 3 migrate needed, 4 contract needed; others are errors.
CHECK_EXIT_CODES = frozenset({0, 2, 3, 4})


@dataclass(frozen=True)
class Finding:
    """One preflight refusal: what failed, what was observed, what to do."""

    check: str
    what: str
    observed: str
    hint: str

    def render(self) -> str:
        """As an operator reads it."""
        return f"[{self.check}] {self.what}\n    observed: {self.observed}\n    what to do: {self.hint}"


def _image_findings(inventory: Inventory, facts: ClusterFacts) -> list[Finding]:
    target = facts.target
    engine = facts.throwaway.engine if facts.throwaway is not None else LOCAL_ENGINE
    if target.image is None:
        hint = "build or load the image (keystone-upgrade images build --keystone VERSION) and run again"
        if engine != LOCAL_ENGINE:
            hint = (
                "upgrade loads it there from the runner's engine before anything changes; plan does not: "
                f"to plan first, load it (docker save IMAGE | docker -H {engine} load)"
            )
        return [
            Finding(
                "target-image",
                f"the target image {inventory.target_image} is not on the engine {engine}, where the "
                "throwaway containers run (with the volumes and mounts of a node there)",
                target.error or "docker image inspect found nothing, and pulling it failed",
                hint,
            )
        ]
    if target.error:
        return [
            Finding("target-image", "the target image could not be inspected", target.error, "fix the image")
        ]
    if target.release is None:
        return [
            Finding(
                "target-image",
                f"which Keystone release {inventory.target_image} carries could not be read",
                "a container of it answered neither importlib.metadata.version('keystone') nor "
                "keystone-manage --version",
                "give an image with Keystone installed (its python3 or keystone-manage on PATH)",
            )
        ]
    wrong_label = label_disagreement(target.image.keystone_version, target.release)
    if wrong_label:
        return [
            Finding(
                "target-image",
                f"{inventory.target_image} is labelled with another Keystone release than it carries",
                wrong_label,
                "fix or drop the image's org.openstack.keystone.version label; the package decides",
            )
        ]
    return []


def _node_findings(inventory: Inventory, node: NodeFacts) -> list[Finding]:
    name = node.config.name
    if node.engine_error:
        return [
            Finding(
                "docker",
                f"node {name}: its Docker engine does not answer",
                node.engine_error,
                "start the engine or fix the node's docker endpoint",
            )
        ]
    if node.container is None:
        return [
            Finding(
                "container",
                f"node {name}: container {node.config.container} does not exist",
                "docker inspect found nothing",
                "fix the container name in the inventory",
            )
        ]
    findings = []
    if node.container.status != "running":
        findings.append(
            Finding(
                "container",
                f"node {name}: container {node.container.name} is not running",
                f"status {node.container.status}",
                "start it, or take the node out of the inventory",
            )
        )
    if node.container.status == "running" and node.release is None:
        findings.append(
            Finding(
                "releases",
                f"node {name}: which Keystone release {node.container.name} runs could not be read inside it",
                "neither importlib.metadata.version('keystone') nor keystone-manage --version answered",
                "the node's image needs Keystone's python3 or keystone-manage on its PATH",
            )
        )
    wrong_label = label_disagreement(node.container.keystone_version, node.release)
    if wrong_label:
        findings.append(
            Finding(
                "releases",
                f"node {name}: {node.container.name}'s image is labelled with another release than it runs",
                wrong_label,
                "fix or drop the image's org.openstack.keystone.version label; the package decides",
            )
        )
    # The local engine's copy is the target-image finding's; a remote engine needs its own.
    if node.target_image_present is False and node.config.engine != LOCAL_ENGINE:
        observed = "docker image inspect found nothing there, and no registry gave it"
        if node.target_image_copy:
            observed += f"; loading it from the runner's engine failed: {node.target_image_copy}"
        findings.append(
            Finding(
                "target-image",
                f"node {name}: the target image {inventory.target_image} is not on its engine {node.config.engine}",
                observed,
                "load the image on that engine (docker save | docker -H ENGINE load) or push it to a registry "
                "the engine can pull from, then run again",
            )
        )
    if node.health_status != 200:
        findings.append(
            Finding(
                "health",
                f"node {name} does not answer its health URL {node.config.health_url}",
                node.health_error or f"HTTP {node.health_status}",
                "make the node healthy before upgrading",
            )
        )
    if node.key_error:
        findings.append(
            Finding(
                "keys",
                f"node {name}: its key repositories cannot be read inside the container",
                node.key_error,
                "the node's image needs python3 and its user must read its keys",
            )
        )
    return findings


def _key_findings(facts: ClusterFacts) -> list[Finding]:
    """The keys themselves, by content: every node and the throwaway container must hold the same."""
    seen = {f"node {n.config.name}": n.key_digests for n in facts.nodes if n.key_digests is not None}
    if facts.target.key_digests:
        seen["the throwaway container"] = facts.target.key_digests
    repositories = tuple(sorted({r for digests in seen.values() for r in digests}))
    differences = key_differences(seen, repositories)
    if not differences:
        return []
    return [
        Finding(
            "keys",
            "the key repositories do not hold the same keys everywhere: a token one node issues would "
            "fail on another, and the throwaway containers would see other keys than the nodes",
            "; ".join(differences),
            "give every node and [target] mounts the same keys (sync the repositories), then run again",
        )
    ]


def _release_findings(facts: ClusterFacts) -> list[Finding]:
    # A cluster half-way through an upgrade is for resume (from its journal), not a fresh run.
    running = {n.config.name: n.known_release for n in facts.nodes if n.container}
    if len(set(running.values())) > 1:
        return [
            Finding(
                "releases",
                "the nodes do not all run the same release",
                ", ".join(f"{name}={version}" for name, version in running.items()),
                "finish or roll back the earlier upgrade so that every node runs one release",
            )
        ]
    return []


def _admin_level_hint(address: str) -> str:
    """What to do about a socket below admin level; Kolla's says how Kolla declares it."""
    if "haproxy_socket" in address or "/kolla/" in address:
        return (
            "this is Kolla's HAProxy socket, declared 'level admin' only with haproxy_socket_level_admin: "
            "set it to true in globals.yml and run kolla-ansible reconfigure -t loadbalancer"
        )
    return "declare the stats socket with 'level admin' (operator cannot set drain or maint)"


def _socket_findings(socket: SocketFacts, facts: ClusterFacts) -> list[Finding]:
    if socket.error:
        return [
            Finding(
                "haproxy",
                f"HAProxy runtime socket {socket.address} does not answer",
                socket.error,
                "check that HAProxy runs and the socket path is right",
            )
        ]
    findings = []
    if socket.level != "admin":
        findings.append(
            Finding(
                "haproxy",
                f"HAProxy runtime socket {socket.address} is not at admin level",
                f"show cli level: {socket.level}",
                _admin_level_hint(socket.address),
            )
        )
    for node in facts.nodes:
        for ref in node.config.servers:
            stat, state = socket.stat(ref.backend, ref.server), socket.state(ref.backend, ref.server)
            if stat is None or state is None:
                findings.append(
                    Finding(
                        "haproxy",
                        f"{socket.address} has no server {ref}",
                        "not in show stat",
                        f"fix the backend/server names of node {node.config.name}",
                    )
                )
            elif not state.ready or not stat.is_up:
                admin = "MAINT" if state.in_maintenance else "DRAIN" if state.draining else "READY"
                findings.append(
                    Finding(
                        "haproxy",
                        f"{ref} on {socket.address} is not UP and READY",
                        f"status {stat.status}, admin state {admin}",
                        "bring it back into rotation (or find out why it is out) before upgrading",
                    )
                )
    return findings


def _upgrade_loads_it(node: NodeFacts, facts: ClusterFacts) -> bool:
    """A node's engine lacks the target image, and only ``plan`` saw it so: ``upgrade`` loads it
    there from the runner's engine, which has it (no copy was tried yet)."""
    return (
        node.target_image_present is False
        and node.target_image_copy is None
        and facts.target.image is not None
        and (facts.throwaway is None or facts.throwaway.engine == LOCAL_ENGINE)
    )


def _rotation_findings(inventory: Inventory) -> list[Finding]:
    """Swapping [run] nodes_at_once nodes together must leave [run] min_in_rotation serving."""
    at_once, total = inventory.nodes_at_once, len(inventory.nodes)
    # One at a time with the default minimum: a one-node cluster is upgraded as before, with an outage.
    asked = at_once > 1 or inventory.min_in_rotation > 1
    if not asked or total - at_once >= inventory.min_in_rotation:
        return []
    return [
        Finding(
            "in-rotation",
            f"swapping {at_once} nodes at once would leave {max(0, total - at_once)} of {total} in rotation, "
            f"fewer than [run] min_in_rotation = {inventory.min_in_rotation}",
            f"{total} nodes, nodes_at_once = {at_once}, min_in_rotation = {inventory.min_in_rotation}",
            f"lower nodes_at_once to {max(1, total - inventory.min_in_rotation)} or less (or min_in_rotation)",
        )
    ]


def preflight_findings(inventory: Inventory, facts: ClusterFacts) -> list[Finding]:
    """Every reason not to start, each with what to do about it."""
    findings = _image_findings(inventory, facts)
    for node in facts.nodes:
        own = _node_findings(inventory, node)
        if _upgrade_loads_it(node, facts):  # a notice of plan's, not a reason to refuse
            own = [f for f in own if f.check != "target-image"]
        findings += own
    findings += _release_findings(facts)
    findings += _key_findings(facts)
    for socket in facts.sockets:
        findings += _socket_findings(socket, facts)
    if facts.probe_login_error:
        findings.append(
            Finding(
                "probe",
                "the probe's credentials do not get a token through the load balancer",
                facts.probe_login_error,
                "fix [probe] (url, username, project, password): the token gate of every node uses them",
            )
        )
    findings += _rotation_findings(inventory)
    if facts.throwaways_running:
        findings.append(
            Finding(
                "throwaway",
                "a throwaway container of an earlier run is still running (a migration is never killed)",
                "; ".join(facts.throwaways_running),
                "wait until it has exited (docker logs -f ID), read its output, remove it, then run again",
            )
        )
    binlog = facts.database.binlog
    if binlog is not None and binlog.needs_trust and inventory.database.admin_user is None:
        findings.append(
            Finding(
                "database",
                "binary logging is on and the Keystone user lacks SUPER: expand may not create triggers",
                "log_bin=ON, log_bin_trust_function_creators=OFF, no SUPER in SHOW GRANTS",
                "give [database.admin] (an account with SUPER) so the runner can set "
                "log_bin_trust_function_creators=1 for the run, or set it yourself",
            )
        )
    if facts.database.error:
        findings.append(
            Finding(
                "database",
                "the database does not answer with the configured user",
                facts.database.error,
                "check database host, port, user and password",
            )
        )
    check = facts.target.check
    if check is not None and check.exit_code not in CHECK_EXIT_CODES:
        findings.append(
            Finding(
                "migrations",
                "keystone-manage db_sync --check in the target image failed",
                f"exit code {check.exit_code}: {check.tail(8)}",
                "the target image must reach the database with the mounted keystone.conf; fix the mounts or config",
            )
        )
    for name, seen in facts.node_targets:
        node_check = seen.check
        failed = node_check is not None and node_check.exit_code not in CHECK_EXIT_CODES
        if seen.error or failed:
            observed = seen.error or (
                f"db_sync --check exit code {node_check.exit_code}: {node_check.tail(8)}"
                if node_check
                else ""
            )
            findings.append(
                Finding(
                    "target-config",
                    f"node {name}: the target image does not work with the node's own configuration "
                    "([nodes.target] over [target])",
                    observed,
                    "fix that node's [nodes.target] mounts and environment (its replacement would get them)",
                )
            )
    for repository, entries in facts.target.key_files.items():
        if entries <= 0:
            findings.append(
                Finding(
                    "keys",
                    f"the key repository {repository} is {'missing' if entries < 0 else 'empty'}",
                    f"{entries} entries seen by the throwaway container",
                    "mount the key repository the nodes use",
                )
            )
    return findings


def preflight_notices(inventory: Inventory, facts: ClusterFacts) -> tuple[str, ...]:
    """What does not stop the run but should be known, each with what to do."""
    notices = [
        f"HAProxy's {path} has no server-state-file / load-server-state-from-file: a reload during the "
        "run forgets DRAIN and MAINT. The runner sets them again when it sees them lost; to keep them "
        "across reloads, add both and save the states (show servers state) before each reload"
        for path in facts.haproxy_configs_losing_states
    ]
    notices += [
        f"HAProxy's {path} has no slowstart on its servers: a node back from MAINT gets its full share of "
        "requests at once. The runner warms each node up first; a ramp (default-server ... slowstart 10s, "
        "with health checks more frequent than that) spreads what is left over its first seconds"
        for path in facts.haproxy_configs_without_slowstart
    ]
    notices += [
        f"node {node.config.name}: {node.target_image_copy}, as no registry gave it; to skip the copy, "
        "push the image to a registry that engine pulls from"
        for node in facts.nodes
        if node.target_image_present and node.target_image_copy
    ]
    notices += [
        f"node {node.config.name}: {inventory.target_image} is not on its engine {node.config.engine} yet; "
        "upgrade loads it there from the runner's engine before anything is drained (plan loads nothing)"
        for node in facts.nodes
        if _upgrade_loads_it(node, facts)
    ]
    checked = {name for name, _ in facts.node_targets}
    notices += [
        f"node {node.config.name}: its own [nodes.target] configuration was not checked with the target "
        f"image (the image is not on {node.config.engine} yet, or the node could not be read); upgrade "
        "checks it once the image is there, before anything changes"
        for node in facts.nodes
        if node.config.name in dict(inventory.node_targets) and node.config.name not in checked
    ]
    notices += [
        f"node {node.config.name}: its engine {node.config.engine} is tcp:// without docker_tls_dir: the "
        "Docker API (root on that host) is reached unauthenticated and unencrypted; give docker_tls_dir"
        for node in facts.nodes
        if node.config.engine.startswith("tcp://") and node.config.docker_tls_dir is None
    ]
    flush_asked = inventory.cache is not None and inventory.cache.flush_after_upgrade
    if facts.cache_backend is not None and not flush_asked:
        notices.append(
            f"keystone.conf turns Keystone's cache on ([cache] {facts.cache_backend}) and the inventory does "
            "not ask for it to be flushed: after the schema change the cache may hold data the old release "
            "wrote, served until it expires. To empty it after contract, add [cache] with memcached = "
            '["HOST:PORT", ...] (keystone.conf\'s memcache_servers) and flush_after_upgrade = true'
        )
    return tuple(notices)

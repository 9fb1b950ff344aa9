"""Everything preflight and the plan need, observed at one time."""

from __future__ import annotations

from dataclasses import dataclass

from runner.drivers.docker_blueprint import ThrowawaySetup
from runner.facts.drift import DriftFacts
from runner.facts.nodes import DatabaseFacts, NodeFacts, SocketFacts
from runner.facts.target import TargetFacts


@dataclass(frozen=True)
class ClusterFacts:
    """Everything preflight and the plan need, observed at one time."""

    nodes: tuple[NodeFacts, ...]
    sockets: tuple[SocketFacts, ...]
    database: DatabaseFacts
    target: TargetFacts
    # Throwaway containers of earlier runs still running (a migration left to finish), per engine.
    throwaways_running: tuple[str, ...] = ()
    # Given haproxy.cfg files without server-state-file / load-server-state-from-file.
    haproxy_configs_losing_states: tuple[str, ...] = ()
    # The probe's login through the load balancer failed (None: it worked, or no probe is given).
    probe_login_error: str | None = None
    # What the throwaway containers get from a node (None: no node container could be read).
    throwaway: ThrowawaySetup | None = None
    # Nodes with their own configuration ([nodes.target]): the target image as it sees that one.
    node_targets: tuple[tuple[str, TargetFacts], ...] = ()
    # The cache the mounted keystone.conf turns on ([cache] backend, or "enabled"); None: no cache.
    cache_backend: str | None = None
    # The live schema against the running release's own (None: not compared, as on resume).
    drift: DriftFacts | None = None
    # Given haproxy.cfg files with no slowstart: a node back in rotation gets its full share at once.
    haproxy_configs_without_slowstart: tuple[str, ...] = ()

    def node(self, name: str) -> NodeFacts:
        """The facts of the node named ``name``."""
        return next(n for n in self.nodes if n.config.name == name)

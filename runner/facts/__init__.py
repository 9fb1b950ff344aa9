"""Read-only facts about the live cluster: containers, images, HAProxy states, the database,
and the target image as a throwaway container of it sees them.

Gathering facts changes nothing (except that throwaway containers of the
target image come and go to read its migration heads and run
`db_sync --check` and `doctor`). Every probe's failure is recorded as a fact,
not raised, so that preflight can report every problem at once.
"""

from runner.facts.cluster import ClusterFacts
from runner.facts.nodes import (
    DatabaseFacts,
    NodeFacts,
    SocketFacts,
    database_facts,
    haproxy_configs_losing_states,
    haproxy_configs_without_slowstart,
    keeps_states_across_reloads,
    node_facts,
    probe_login_error,
    socket_facts,
    throwaways_running,
)
from runner.facts.target import (
    TargetFacts,
    node_target_facts,
    parse_facts_output,
    target_facts,
    throwaway_setup,
)

__all__ = [
    "ClusterFacts",
    "DatabaseFacts",
    "NodeFacts",
    "SocketFacts",
    "TargetFacts",
    "database_facts",
    "haproxy_configs_losing_states",
    "haproxy_configs_without_slowstart",
    "keeps_states_across_reloads",
    "node_facts",
    "node_target_facts",
    "parse_facts_output",
    "probe_login_error",
    "socket_facts",
    "target_facts",
    "throwaway_setup",
    "throwaways_running",
]

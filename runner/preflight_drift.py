"""Preflight's findings and notices about schema drift (see runner/facts/drift.py). Pure, no I/O."""

from __future__ import annotations

from runner.facts import ClusterFacts
from runner.preflight import Finding


def drift_findings(facts: ClusterFacts) -> list[Finding]:
    """One finding per difference between the live schema and the running release's, not accepted."""
    drift = facts.drift
    if drift is None:
        return []
    return [
        Finding(
            "schema-drift",
            f"the live schema differs from what {drift.image or 'the running release'}'s migrations build: "
            f"{difference.key}",
            difference.describe(),
            "repair the schema (or restore a backup) so that it is what Keystone's migrations made; if this "
            f"difference is known and harmless, accept it for the run: --accept-drift {difference.key}",
        )
        for difference in drift.refused
    ]


def drift_notices(facts: ClusterFacts) -> tuple[str, ...]:
    """Drift not compared, accepted, or accepted but not seen."""
    drift = facts.drift
    if drift is None:
        return ()
    notices = []
    if drift.skipped:
        notices.append(
            f"the schema was not compared with the running release's own (drift): {drift.skipped}; "
            "run 'keystone-upgrade drift' once the cause is fixed"
        )
    accepted = [d.describe() for d in drift.differences if d.key in drift.accepted]
    if accepted:
        notices.append("schema drift accepted for this run (--accept-drift): " + "; ".join(accepted))
    if drift.accepted_unseen:
        notices.append(
            "--accept-drift names differences the schema does not have (repaired, or mistyped): "
            + ", ".join(drift.accepted_unseen)
        )
    return tuple(notices)

"""Preflight's findings about the schema and the release path: drift (runner/facts/drift.py), a
database alembic never migrated, a downgrade or a hop Keystone does not support. Pure, no I/O."""

from __future__ import annotations

from runner.errors import PreflightError
from runner.facts import ClusterFacts
from runner.preflight import Finding
from runner.release_path import check_release_path, refuse_without_alembic


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


def release_path_findings(facts: ClusterFacts) -> list[Finding]:
    """The nodes' release to the target's: a downgrade, an unsupported skip, a database alembic never
    migrated, each with the path to use instead."""
    current = sorted({n.known_release for n in facts.nodes if n.container and n.known_release})
    target = facts.target.known_release
    try:
        if current and target:
            path = check_release_path(current, [target])
            if path.hops and facts.database.tables:
                refuse_without_alembic(facts.database.tables, path.hops[0])
    except PreflightError as exc:
        return [Finding("release-path", exc.what, exc.observed or "", exc.hint or "")]
    return []

"""The run's report: each step's outcome and duration, as a table and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.journal import Journal


def build_report(journal: Journal, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report of a run, from its journal."""
    document = journal.as_dict()
    started, finished = document["started_at"], document["finished_at"]
    return {
        "run_id": journal.run_id,
        "status": document["status"],
        "inventory": document["inventory"],
        "target_image": document["plan"]["target_image"],
        "target_version": document["plan"]["target_version"],
        "source_versions": document["plan"]["source_versions"],
        "seconds": (finished - started) if finished else None,
        "steps": [
            {
                "id": step.id,
                "status": step.status.value,
                "seconds": step.seconds,
                "detail": step.detail,
            }
            for step in journal.steps
        ],
        **(extra or {}),
    }


def write_report(report: dict[str, Any], state_dir: Path) -> Path:
    """report-<run id>.json in the state directory."""
    path = state_dir / f"report-{report['run_id']}.json"
    path.write_text(json.dumps(report, indent=2))
    return path


def render_report(report: dict[str, Any]) -> str:
    """A short table for the terminal."""
    lines = [
        f"run {report['run_id']}: {report['status']} "
        f"({', '.join(report['source_versions'])} -> {report['target_version']})",
    ]
    width = max(len(step["id"]) for step in report["steps"])
    for step in report["steps"]:
        seconds = f"{step['seconds']:7.1f}s" if step["seconds"] is not None else "        "
        note = f"  {step['detail'].splitlines()[0]}" if step["detail"] else ""
        lines.append(f"  {step['id']:<{width}}  {step['status']:<8} {seconds}{note}")
    if report.get("seconds") is not None:
        lines.append(f"  total {report['seconds']:.1f}s")
    probe = report.get("probe")
    if probe:
        nodes = ", ".join(f"{node} {count}" for node, count in sorted(probe["served_by"].items()))
        lines.append(
            f"traffic: {probe['requests']} requests at {probe['rate_per_s']}/s, {probe['failed']} failed; served by {nodes}"
        )
        for failure in probe["failures"][:10]:
            lines.append(f"  failed {failure['operation']} via {failure['served_by']}: {failure['error']}")
    return "\n".join(lines)

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
                "intended": step.intended,
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
        intended = step.get("intended")
        if intended:
            # Announced and not recorded as done: the run stopped between the two.
            data = ", ".join(f"{k}={v}" for k, v in intended.items() if k not in ("at", "event"))
            lines.append(f"  {'':<{width}}  may not have finished: {intended['event']} {data}".rstrip())
    if report.get("seconds") is not None:
        lines.append(f"  total {report['seconds']:.1f}s")
    probe = report.get("probe")
    if probe:
        lines += render_traffic(probe)
    return "\n".join(lines)


def render_traffic(probe: dict[str, Any]) -> list[str]:
    """The probe's part, for the terminal: totals, each phase, the failures, the writes."""
    nodes = ", ".join(f"{node} {count}" for node, count in sorted(probe["served_by"].items()))
    writes = probe["writes"]
    lines = [
        f"traffic: {probe['requests']} requests at {probe['rate_per_s']}/s, {probe['failed']} failed, "
        f"longest outage {probe['longest_outage_s']}s; served by {nodes}",
        f"  writes: {writes['acknowledged_creates']} creates and {writes['acknowledged_deletes']} deletes "
        f"acknowledged, {len(writes['lost'])} lost on read-back",
        f"  {'phase':<24} {'requests':>8} {'failed':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}",
    ]
    for phase in probe["phases"]:
        cells = [phase[k] if phase[k] is not None else "-" for k in ("p50_ms", "p95_ms", "p99_ms")]
        lines.append(
            f"  {phase['phase']:<24} {phase['requests']:>8} {phase['failed']:>6} {cells[0]:>8} {cells[1]:>8} {cells[2]:>8}"
        )
    lines += [f"  failed {f['operation']} via {f['served_by']}: {f['error']}" for f in probe["failures"][:10]]
    lines += [f"  LOST: {lost}" for lost in writes["lost"]]
    if probe.get("timeline_png"):
        lines.append(f"  timeline: {probe['timeline_png']}")
    return lines

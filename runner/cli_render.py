"""How the commands show plans, reports and questions (people, --quiet, --json)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from runner.plan import Plan
from runner.report import render_report
from runner.steps import Expand
from runner.terminal import Output


def render_plan(plan: Plan) -> str:
    """The plan for people: what runs, what is skipped and why."""
    offline = f" [{plan.procedure}: every node stopped at once]" if plan.procedure != "rolling" else ""
    verb = "restore" if plan.procedure == "restore" else "upgrade"
    lines = [
        f"{verb} {', '.join(plan.source_versions) or '?'} -> {plan.target_version} ({plan.target_image}){offline}"
    ]
    if plan.procedure != "restore":  # a restore's database is the dump's, whatever the heads are now
        lines += [
            f"  database heads {', '.join(plan.database_heads) or '-'}; target heads "
            f"{', '.join(plan.target_heads) or '-'}",
            f"  db_sync --check with the target: exit {plan.check_exit_code}",
        ]
    if plan.doctor_findings is not None and plan.procedure != "restore":
        said = [line for line in plan.doctor_findings.splitlines() if line.strip()]
        lines.append(f"  keystone-manage doctor (target image): {'says:' if said else 'no findings'}")
        lines += [f"    {line}" for line in said]
    expand = next((s for s in plan.steps if isinstance(s, Expand)), None)
    if expand is not None:
        lines.append(
            f"  throwaway containers: engine {expand.engine}; "
            + ("KOLLA_UPGRADE / KOLLA_FINISH_UPGRADE" if expand.kolla else "keystone-manage db_sync")
            + f"; mounts {', '.join(m.target for m in expand.mounts) or 'none'}"
        )
    for number, step in enumerate(plan.steps, start=1):
        verdict = f"skip: {step.skip_reason}" if step.skipped else step.why
        lines.append(f"  {number:2}. {step.id:<22} {verdict}")
    if plan.notices:
        lines.append("notices:")
        lines += [f"  - {notice}" for notice in plan.notices]
    if plan.findings:
        lines.append("preflight findings:")
        lines += ["  " + finding.render().replace("\n", "\n  ") for finding in plan.findings]
    return "\n".join(lines)


def plan_line(plan: Plan) -> str:
    """The plan in one line (--quiet, and its question)."""
    skipped = sum(1 for step in plan.steps if step.skipped)
    notices = f", {len(plan.notices)} notice(s)" if plan.notices else ""
    return (
        f"upgrade {', '.join(plan.source_versions) or '?'} -> {plan.target_version} ({plan.target_image}): "
        f"{len(plan.steps)} steps, {skipped} skipped{notices}"
    )


def report_line(report: dict[str, Any], path: Path) -> str:
    """A run's report in one line (--quiet)."""
    seconds = f" in {report['seconds']:.0f}s" if report.get("seconds") is not None else ""
    probe = report.get("probe")
    traffic = f"; {probe['requests']} requests, {probe['failed']} failed" if probe else ""
    versions = f"{', '.join(report['source_versions'])} -> {report['target_version']}"
    return f"run {report['run_id']} {report['status']} ({versions}){seconds}{traffic}; report: {path}"


def confirmed(out: Output, shown: str, summary: str, question: str, yes: bool) -> bool:
    """``shown`` as the mode allows, then the question unless --yes (on stderr with --json)."""
    out.say(shown)
    if yes:
        return True
    if out.as_json:
        click.echo(shown, err=True)  # stdout holds only the JSON document; the operator still sees the plan
    return click.confirm(f"{summary}; {question}" if out.quiet else question, default=False, err=out.as_json)


def show_report(out: Output) -> Callable[[dict[str, Any], Path], None]:
    """What a run does with its report: shown as the mode allows, and kept for --json."""

    def show(report: dict[str, Any], path: Path) -> None:
        out.say(f"{render_report(report)}\nreport: {path}", line=report_line(report, path))
        out.attach("report", {**report, "report_file": str(path)})

    return show


def run_document(out: Output, plan: Plan | None) -> None:
    """The one document of upgrade and resume: the run's report, or the plan that was not confirmed."""
    report = out.attached.get("report")
    if report is None:
        out.say(None, line=NOT_CONFIRMED)
    out.document(report or {"status": "not confirmed", "plan": plan.to_dict() if plan else None})


NOT_CONFIRMED = "not confirmed: nothing was changed"

"""Traffic during a run: start the probe and the HAProxy watcher, then turn what they saw into the report."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runner.analysis import longest_outage_s, per_phase, phases_from_journal, stats
from runner.credentials import read_secret
from runner.drivers.haproxy import HaproxyRuntime
from runner.drivers.keystone import Credentials
from runner.errors import ConfigError
from runner.model import Inventory
from runner.probe import Probe, ProbeSettings, summarize
from runner.watch import HaproxyWatcher


@dataclass
class Traffic:
    """A running probe and the watcher beside it."""

    probe: Probe
    watcher: HaproxyWatcher | None

    def stop(self) -> None:
        """Stop both (idempotent)."""
        self.probe.stop()
        if self.watcher is not None:
            self.watcher.stop()


def replace_probe_seconds(inventory: Inventory, seconds: float) -> Inventory:
    """The inventory with its probe bounded to ``seconds``."""
    if inventory.probe is None:
        return inventory
    return replace(inventory, probe=replace(inventory.probe, max_seconds=seconds))


def start_traffic(inventory: Inventory, runtime: HaproxyRuntime | None) -> Traffic:
    """Traffic through the load balancer as the inventory's [probe] says, and HAProxy watched."""
    config = inventory.probe
    if config is None:
        raise ConfigError(
            "--probe needs a [probe] table in the inventory",
            hint="add [probe] with url, username, project and password_file or password_env",
        )
    password = read_secret(config.password, "probe password", "probe")
    settings = ProbeSettings(
        rate_per_s=config.rate_per_s,
        concurrency=config.concurrency,
        max_requests=int(config.rate_per_s * config.max_seconds),
        max_seconds=config.max_seconds,
    )
    probe = Probe(config.url, Credentials(config.username, password, config.project, config.domain), settings)
    watcher = HaproxyWatcher(runtime, max_seconds=config.max_seconds) if runtime is not None else None
    if watcher is not None:
        watcher.start()
    return Traffic(probe.start(), watcher)


def traffic_report(traffic: Traffic, journal: dict[str, Any], png: Path) -> dict[str, Any]:
    """The traffic part of the report: totals, per phase, the outage, writes read back, the timeline PNG."""
    traffic.stop()
    samples = sorted(traffic.probe.samples, key=lambda s: s.at)
    states = traffic.watcher.samples if traffic.watcher is not None else []
    summary = summarize(samples)
    phases = phases_from_journal(journal, traffic.probe.started_at, traffic.probe.stopped_at)
    writes = traffic.probe.verify_writes()
    section: dict[str, Any] = {
        "requests": summary.requests,
        "failed": summary.failed,
        "rate_per_s": round(summary.rate_per_s, 1),
        "served_by": summary.served_by,
        "longest_outage_s": longest_outage_s(samples),
        "overall": stats(samples),
        "phases": per_phase(samples, phases),
        "writes": {
            "acknowledged_creates": writes.acknowledged_creates,
            "acknowledged_deletes": writes.acknowledged_deletes,
            "lost": writes.lost,
            "unacknowledged_applied": writes.unacknowledged_applied,
        },
        "failures": [
            {
                "at": s.at,
                "operation": s.operation,
                "status": s.status,
                "served_by": s.served_by,
                "error": s.error,
            }
            for s in summary.failures
        ],
        "timeline_png": None,
    }
    if samples:
        title = f"run {journal['run_id']}: {summary.requests} requests, {summary.failed} failed"
        # Imported here: matplotlib costs most of a second, and most commands draw nothing.
        from runner.plot import timeline_png  # noqa: PLC0415

        section["timeline_png"] = str(timeline_png(png, samples, phases, states, title))
    return section

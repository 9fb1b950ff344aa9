"""The report's pictures: the run's timeline, and the benchmark's comparison (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from runner.analysis import Phase
from runner.probe import Sample
from runner.watch import StateSample

STATE_COLOURS = {"UP": "#2e7d32", "DRAIN": "#f9a825", "MAINT": "#757575", "DOWN": "#c62828"}
PHASE_COLOURS = ("#e3f2fd", "#fff3e0")


def _state_colour(sample: StateSample) -> str:
    if sample.admin == "MAINT":
        return STATE_COLOURS["MAINT"]
    if sample.admin == "DRAIN":
        return STATE_COLOURS["DRAIN"] if sample.status != "DOWN" else STATE_COLOURS["DOWN"]
    return STATE_COLOURS.get(sample.status.split()[0], "#fdd835")


def timeline_png(
    path: Path,
    samples: Sequence[Sample],
    phases: Sequence[Phase],
    states: Sequence[StateSample],
    title: str,
) -> Path:
    """Request rate and latency over time, failures marked, phases shaded, each server's state as a band."""
    if not samples:
        raise ValueError("no requests to plot")
    origin = min(s.at for s in samples)
    servers = sorted({s.server for s in states})
    figure, (rate_ax, latency_ax, state_ax) = plt.subplots(
        3,
        1,
        figsize=(12, 8 + 0.25 * len(servers)),
        sharex=True,
        height_ratios=(2, 2, 0.6 + 0.25 * len(servers)),
    )
    seconds = [s.at - origin for s in samples]
    end = max(seconds) + 1
    bins = [float(i) for i in range(int(end) + 2)]
    ok_times = [t for t, s in zip(seconds, samples, strict=True) if s.ok]
    failed_times = [t for t, s in zip(seconds, samples, strict=True) if not s.ok]
    rate_ax.hist(
        [ok_times, failed_times],
        bins=bins,
        stacked=True,
        color=["#1565c0", "#c62828"],
        label=["ok", "failed"],
    )
    rate_ax.set_ylabel("requests / s")
    rate_ax.legend(loc="upper right")

    latency_ax.scatter(
        ok_times, [s.latency_s * 1000 for s in samples if s.ok], s=3, color="#1565c0", label="ok"
    )
    if failed_times:
        latency_ax.scatter(
            failed_times, [s.latency_s * 1000 for s in samples if not s.ok], s=30, marker="x", color="#c62828",
            label=f"failed ({len(failed_times)})",
        )  # fmt: skip
    latency_ax.set_ylabel("latency (ms)")
    latency_ax.set_yscale("log")
    latency_ax.legend(loc="upper right")

    for index, phase in enumerate(phases):
        start, stop = phase.start - origin, phase.end - origin
        for axis in (rate_ax, latency_ax):
            axis.axvspan(start, stop, color=PHASE_COLOURS[index % 2], zorder=0)
        rate_ax.text((start + stop) / 2, 1.01, phase.name, transform=rate_ax.get_xaxis_transform(),
                     rotation=35, fontsize=7, ha="left", va="bottom")  # fmt: skip

    for row, server in enumerate(servers):
        mine = [s for s in states if s.server == server]
        for current, following in zip(mine, [*mine[1:], None], strict=True):
            stop = (following.at if following else current.at + 0.25) - origin
            state_ax.broken_barh([(current.at - origin, stop - (current.at - origin))], (row - 0.4, 0.8),
                                 color=_state_colour(current))  # fmt: skip
    state_ax.set_yticks(range(len(servers)), servers, fontsize=7)
    state_ax.set_xlabel("seconds since traffic started")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in STATE_COLOURS.values()]
    state_ax.legend(handles, list(STATE_COLOURS), loc="upper right", fontsize=7, ncol=4)
    state_ax.set_xlim(0, end)

    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def comparison_png(path: Path, results: Sequence[dict[str, Any]], title: str) -> Path:
    """The benchmark: failed requests, longest outage and wall time per procedure, every repetition."""
    procedures = list(dict.fromkeys(r["procedure"] for r in results))
    metrics = (
        ("failed", "failed requests"),
        ("longest_outage_s", "longest outage (s)"),
        ("wall_s", "wall time (s)"),
    )
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 4))
    for axis, (key, label) in zip(axes, metrics, strict=True):
        for x, procedure in enumerate(procedures):
            values = [r[key] for r in results if r["procedure"] == procedure]
            axis.bar(x, sum(values) / len(values), color="#90caf9")
            axis.scatter([x] * len(values), values, color="#0d47a1", zorder=3, s=15)
        axis.set_xticks(range(len(procedures)), procedures, rotation=15)
        axis.set_title(label)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

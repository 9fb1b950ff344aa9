"""The benchmark's figure: the five procedures side by side, the rate search and the scaling curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _per_procedure(axis: Any, runs: list[dict[str, Any]], key: str, label: str) -> None:
    procedures = list(dict.fromkeys(r["procedure"] for r in runs))
    for x, procedure in enumerate(procedures):
        values = [r[key] for r in runs if r["procedure"] == procedure and r.get(key) is not None]
        if not values:
            continue
        axis.bar(x, sum(values) / len(values), color="#90caf9")
        axis.scatter([x] * len(values), values, color="#0d47a1", zorder=3, s=15)
    axis.set_xticks(range(len(procedures)), procedures, rotation=25, fontsize=8)
    axis.set_title(label, fontsize=10)


def benchmark_png(path: Path, document: dict[str, Any]) -> Path:
    """Two rows: per procedure (failed, outage, wall, p99 during); the limit search and scaling."""
    runs = [r for r in document["runs"] if "error" not in r]
    rate = document["rate"]
    if not runs and document.get("at_limit"):  # a run of the rate search alone: its procedures at the limit
        runs = [r for r in document["at_limit"] if "error" not in r]
        rate = runs[0]["rate_target"] if runs else rate
    for r in runs:
        r["p99_ratio"] = (
            round(r["during_p99_ms"] / r["steady_p99_ms"], 2)
            if r["during_p99_ms"] and r["steady_p99_ms"]
            else None
        )
    figure, axes = plt.subplots(2, 4, figsize=(18, 8))
    for axis, (key, label) in zip(
        axes[0],
        (
            ("failed", "failed requests"),
            ("longest_outage_s", "longest outage (s)"),
            ("wall_s", "wall time (s)"),
            ("p99_ratio", "p99 during / p99 steady"),
        ),
        strict=True,
    ):
        _per_procedure(axis, runs, key, label)
    # A rate or a node count whose run did not complete has an error and no figures.
    search = [r for r in (document.get("limit") or {}).get("tried") or [] if "error" not in r]
    if search:
        targets = [r["rate_target"] for r in search]
        axes[1][0].plot(targets, targets, "--", color="#9e9e9e", label="asked")
        axes[1][0].plot(
            targets, [r["achieved_rate"] for r in search], "o-", color="#0d47a1", label="delivered"
        )
        axes[1][0].set_title("rate asked vs delivered (req/s)", fontsize=10)
        axes[1][0].legend(fontsize=8)
        axes[1][1].plot(
            targets, [r["during_p99_ms"] for r in search], "o-", color="#c62828", label="p99 during"
        )
        axes[1][1].plot(
            targets, [r["steady_p99_ms"] for r in search], "o-", color="#2e7d32", label="p99 steady"
        )
        axes[1][1].set_title("p99 latency (ms) by rate", fontsize=10)
        axes[1][1].legend(fontsize=8)
    scaling = [r for r in document.get("scaling") or [] if "error" not in r]
    if scaling:
        for at_once in sorted({r["nodes_at_once"] for r in scaling}):
            shown = [r for r in scaling if r["nodes_at_once"] == at_once]
            alone = at_once == 1
            style = {
                "marker": "o" if alone else "s",
                "linestyle": "-" if alone else "none",
                "label": "one at a time" if alone else f"{at_once} at a time",
            }
            counts = [r["nodes"] for r in shown]
            axes[1][2].plot(
                counts, [r["wall_s"] for r in shown], color="#0d47a1" if alone else "#ef6c00", **style
            )
            axes[1][3].plot(
                counts, [r["failed"] for r in shown], color="#c62828" if alone else "#ef6c00", **style
            )
        axes[1][2].set_title("keystone-upgrade wall time (s) by nodes", fontsize=10)
        axes[1][2].legend(fontsize=8)
        axes[1][3].set_title("failed requests by nodes", fontsize=10)
        axes[1][3].set_ylim(bottom=-0.5, top=max(5, *[r["failed"] for r in scaling]) + 0.5)
    figure.suptitle(f"{document['source']} -> {document['target']} at {rate}/s")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path

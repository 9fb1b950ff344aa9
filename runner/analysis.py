"""What the recorded traffic says about a run: per phase, latencies, the longest outage. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runner.probe import Sample


@dataclass(frozen=True)
class Phase:
    """A named span of time: preflight, a step of the run, or the time after it."""

    name: str
    start: float
    end: float


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def phases_from_journal(journal: dict[str, Any], traffic_start: float, traffic_end: float) -> list[Phase]:
    """Preflight (traffic before the first step), each step that ran, and the time after the last."""
    ran = [
        s for s in journal["steps"] if s.get("started_at") is not None and s.get("finished_at") is not None
    ]
    if not ran:
        return [Phase("preflight", traffic_start, traffic_end)]
    phases = [Phase("preflight", traffic_start, ran[0]["started_at"])]
    phases += [Phase(s["id"], s["started_at"], s["finished_at"]) for s in ran]
    phases.append(Phase("after", ran[-1]["finished_at"], traffic_end))
    return phases


def stats(samples: Sequence[Sample]) -> dict[str, Any]:
    """Requests, failures and latency percentiles (milliseconds) of some samples."""
    latencies = [s.latency_s * 1000 for s in samples if s.ok]

    def ms(value: float | None) -> float | None:
        return round(value, 1) if value is not None else None

    return {
        "requests": len(samples),
        "failed": sum(1 for s in samples if not s.ok),
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p95_ms": ms(percentile(latencies, 0.95)),
        "p99_ms": ms(percentile(latencies, 0.99)),
    }


def per_phase(samples: Sequence[Sample], phases: Sequence[Phase]) -> list[dict[str, Any]]:
    """Stats of the requests sent within each phase."""
    return [
        {"phase": phase.name, "seconds": round(phase.end - phase.start, 2)}
        | stats([s for s in samples if phase.start <= s.at < phase.end])
        for phase in phases
    ]


def longest_outage_s(samples: Sequence[Sample]) -> float:
    """The longest run of consecutive failed requests: from its first failure to the next success."""
    longest, run_start = 0.0, None
    for sample in sorted(samples, key=lambda s: s.at):
        if not sample.ok:
            run_start = sample.at if run_start is None else run_start
        elif run_start is not None:
            longest = max(longest, sample.at - run_start)
            run_start = None
    if run_start is not None and samples:
        longest = max(longest, max(s.at for s in samples) - run_start)
    return round(longest, 3)

"""Reading the recorded traffic: percentiles, phases, the longest outage."""

from __future__ import annotations

from runner.analysis import Phase, longest_outage_s, per_phase, percentile, phases_from_journal
from runner.probe import ISSUE, Sample


def _sample(at: float, ok: bool = True, latency_s: float = 0.01) -> Sample:
    return Sample(at, ISSUE, 201 if ok else 502, latency_s, "k1", None if ok else "HTTP 502")


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    assert percentile([], 0.5) is None


def test_the_longest_outage_runs_from_the_first_failure_to_the_next_success() -> None:
    samples = [
        _sample(0),
        _sample(1, ok=False),
        _sample(1.5, ok=False),
        _sample(3),
        _sample(4, ok=False),
        _sample(4.2),
    ]
    assert longest_outage_s(samples) == 2.0
    assert longest_outage_s([_sample(0), _sample(1)]) == 0
    # Still failing at the end: the outage lasts until the last request seen.
    assert longest_outage_s([_sample(0), _sample(1, ok=False), _sample(5, ok=False)]) == 4.0


def test_phases_come_from_the_journal_with_preflight_before_and_after_behind() -> None:
    journal = {
        "steps": [
            {"id": "backup", "started_at": 10.0, "finished_at": 11.0},
            {"id": "node:k1", "started_at": 11.0, "finished_at": 15.0},
            {"id": "contract", "started_at": None, "finished_at": None},
        ]
    }
    phases = phases_from_journal(journal, 5.0, 20.0)
    assert phases == [
        Phase("preflight", 5.0, 10.0),
        Phase("backup", 10.0, 11.0),
        Phase("node:k1", 11.0, 15.0),
        Phase("after", 15.0, 20.0),
    ]
    samples = [_sample(6), _sample(10.5, ok=False), _sample(12, latency_s=0.2), _sample(13, latency_s=0.1)]
    table = {row["phase"]: row for row in per_phase(samples, phases)}
    assert table["preflight"]["requests"] == 1
    assert table["backup"]["failed"] == 1
    assert table["backup"]["p50_ms"] is None  # failed requests have no latency worth ranking
    assert table["node:k1"]["p99_ms"] == 200.0
    assert table["after"]["requests"] == 0

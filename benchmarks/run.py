"""The benchmark: cold, rolling without drain and keystone-upgrade, side by side on fresh clusters.

Same release pair, same traffic, each procedure repeated N times; then the
highest rate keystone-upgrade sustains with no failed request, and one run on
a large database. Results: a table on the terminal, JSON and a comparison PNG
under benchmarks/results/. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import docker

from benchmarks.large_db import Size, generate
from benchmarks.procedures import PROCEDURES, describe
from runner.analysis import longest_outage_s, per_phase, percentile, phases_from_journal
from runner.config import load_inventory
from runner.drivers.keystone import Credentials
from runner.journal import Journal
from runner.lab.inventory import write_inventory
from runner.lab.temporary import temporary_cluster
from runner.model import DatabaseTarget
from runner.plot import comparison_png
from runner.probe import Probe, ProbeSettings, Sample
from runner.upgrade import connect
from runner.waits import WaitPolicy, wait_until
from runner.watch import HaproxyWatcher

RESULTS = Path(__file__).parent / "results"
WARM_UP_S = 3.0
TRAFFIC_FLOWING = WaitPolicy("benchmark traffic flowing", timeout_s=120, interval_s=0.2)


def _ms(samples: list[Sample], fraction: float) -> float | None:
    value = percentile([s.latency_s * 1000 for s in samples if s.ok], fraction)
    return round(value, 1) if value is not None else None


def measure(
    client: docker.DockerClient,
    procedure: str,
    *,
    source: str,
    target: str,
    rate: float,
    steady_s: float,
    large: Size | None = None,
) -> dict[str, Any]:
    """One fresh cluster, steady traffic, the procedure under traffic, a little after; the numbers."""
    with temporary_cluster(client, source, project_prefix="kubench", temp_prefix="ku-bench-") as cluster:
        generated = None
        if large is not None:
            generated = generate(
                DatabaseTarget(
                    cluster.db_host, cluster.db_port, cluster.db_user, cluster.db_name, cluster.db_password
                ),
                large,
            )
        inventory_path = write_inventory(
            cluster, target, cluster.state_dir / "inventory.toml", cluster.state_dir / "upgrade"
        )
        inventory = load_inventory(inventory_path)
        drivers = connect(inventory)
        credentials = Credentials(cluster.admin_username, cluster.admin_password, cluster.admin_project)
        settings = ProbeSettings(rate_per_s=rate, concurrency=max(6, int(rate / 5)), max_seconds=1800)
        probe = Probe(cluster.lb_url, credentials, settings).start()
        watcher = HaproxyWatcher(drivers.runtimes[0]).start()
        try:
            wait_until(TRAFFIC_FLOWING, lambda: len(probe.samples), lambda n: n >= rate * steady_s)
            began = time.time()
            parts = PROCEDURES[procedure](inventory, drivers)
            ended = time.time()
            seen = len(probe.samples)
            wait_until(TRAFFIC_FLOWING, lambda: len(probe.samples), lambda n: n >= seen + rate * 3)
        finally:
            samples = probe.stop()
            watcher.stop()
        writes = probe.verify_writes()
        journal = Journal.load(inventory.state_dir) if procedure == "keystone-upgrade" else None
    # Steady state: the traffic before the procedure, less its first seconds (connections
    # and first tokens warming up).
    steady = [s for s in samples if samples[0].at + WARM_UP_S <= s.at < began]
    during = [s for s in samples if began <= s.at <= ended]
    irreducible = sum(parts.values())
    wall = ended - began
    result: dict[str, Any] = {
        "procedure": procedure,
        "rate_target": rate,
        "requests": len(samples),
        "failed": sum(1 for s in samples if not s.ok),
        "failed_during": sum(1 for s in during if not s.ok),
        "achieved_rate": round(len(samples) / (samples[-1].at - samples[0].at), 1) if len(samples) > 1 else 0,
        "longest_outage_s": longest_outage_s(samples),
        "steady_p50_ms": _ms(steady, 0.5),
        "steady_p99_ms": _ms(steady, 0.99),
        "during_p50_ms": _ms(during, 0.5),
        "during_p99_ms": _ms(during, 0.99),
        "wall_s": round(wall, 2),
        "irreducible_s": round(irreducible, 2),
        "overhead_s": round(wall - irreducible, 2),
        "overhead_pct": round(100 * (wall - irreducible) / irreducible, 1) if irreducible else None,
        "parts": describe(parts),
        "writes_acknowledged": writes.acknowledged_creates + writes.acknowledged_deletes,
        "writes_lost": len(writes.lost),
        "failure_reasons": sorted({(s.error or "")[:80] for s in samples if not s.ok})[:5],
    }
    if journal is not None:
        phases = phases_from_journal(journal.as_dict(), samples[0].at, samples[-1].at)
        result["phases"] = per_phase(samples, phases)
    if generated is not None:
        result["large_database"] = generated
    return result


def _row(r: dict[str, Any]) -> str:
    ratio = (
        f"{r['during_p99_ms'] / r['steady_p99_ms']:.2f}x"
        if r["during_p99_ms"] and r["steady_p99_ms"]
        else "-"
    )
    return (
        f"{r['procedure']:<18} {r['requests']:>8} {r['failed']:>6} {r['longest_outage_s']:>8.2f} "
        f"{r['steady_p50_ms']!s:>7}/{r['steady_p99_ms']!s:<7} {r['during_p50_ms']!s:>7}/{r['during_p99_ms']!s:<7} "
        f"{ratio:>6} {r['wall_s']:>7.1f} {r['overhead_s']:>7.1f} {r['overhead_pct']!s:>6}%"
    )


HEADER = (
    f"{'procedure':<18} {'requests':>8} {'failed':>6} {'outage s':>8} {'steady p50/p99':>15} "
    f"{'during p50/p99':>15} {'p99 x':>6} {'wall s':>7} {'ovh s':>7} {'ovh':>7}"
)


def main() -> None:
    """Run everything the arguments ask for and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", default="28.1.0")
    parser.add_argument("--target", default="29.1.0")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--rate", type=float, default=30.0, help="requests/s through HAProxy")
    parser.add_argument("--steady-seconds", type=float, default=10.0)
    parser.add_argument("--procedures", default=",".join(PROCEDURES))
    parser.add_argument(
        "--max-rates", default="30,45,60,80,100", help="rates tried for keystone-upgrade ('' skips)"
    )
    parser.add_argument("--large-users", type=int, default=Size.users, help="0 skips the large-database run")
    parser.add_argument("--large-assignments", type=int, default=Size.assignments)
    args = parser.parse_args()
    client = docker.from_env()
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    document: dict[str, Any] = {"source": args.source, "target": args.target, "rate": args.rate, "runs": []}
    out = RESULTS / f"benchmark-{stamp}.json"

    def save() -> None:
        out.write_text(json.dumps(document, indent=2))

    common: dict[str, Any] = {
        "source": args.source,
        "target": args.target,
        "rate": args.rate,
        "steady_s": args.steady_seconds,
    }
    print(HEADER, flush=True)
    for repetition in range(1, args.repetitions + 1):
        for procedure in args.procedures.split(","):
            result = measure(client, procedure, **common)
            result["repetition"] = repetition
            document["runs"].append(result)
            save()
            print(_row(result), flush=True)

    if args.max_rates:
        document["max_rate"] = []
        best = None
        for rate in (float(r) for r in args.max_rates.split(",")):
            result = measure(client, "keystone-upgrade", **{**common, "rate": rate})
            document["max_rate"].append(result)
            save()
            sustained = result["achieved_rate"] >= 0.9 * rate
            print(
                f"max-rate {rate:>5.0f}/s: achieved {result['achieved_rate']}/s, {result['failed']} failed",
                flush=True,
            )
            if result["failed"] or not sustained:
                break
            best = result["achieved_rate"]
        document["highest_clean_rate"] = best
        print(f"highest rate with 0 failures: {best}/s", flush=True)

    if args.large_users:
        size = Size(users=args.large_users, assignments=args.large_assignments)
        result = measure(client, "keystone-upgrade", **common, large=size)
        document["large_database"] = result
        save()
        print(f"large database {result['large_database']['rows']}:", flush=True)
        for phase in result["phases"]:
            print(
                f"  {phase['phase']:<18} {phase['seconds']:>6}s {phase['requests']:>6} requests {phase['failed']:>3} failed"
            )

    png = comparison_png(
        RESULTS / f"benchmark-{stamp}.png",
        document["runs"],
        f"{args.source} -> {args.target} at {args.rate}/s",
    )
    print(f"results: {out}\ncomparison: {png}")


if __name__ == "__main__":
    main()

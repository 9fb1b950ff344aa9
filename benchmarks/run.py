"""The benchmark: keystone-upgrade beside cold, rolling-no-drain, openstack-ansible and
kolla-ansible, and the floor (what the migration and the boots alone cost the traffic, nothing
taken out of rotation), side by side on fresh clusters; the highest rate it holds; a big table; scaling.

Same release pair, same traffic, each procedure repeated N times. Then the rate is raised
until keystone-upgrade fails a request or the machine cannot deliver the rate (achieved
rate: answered requests per second inside the upgrade window), with the baselines at the
limit found; one run on a database whose migrated table is large; and the runner on 3, 6
and 10 nodes. Latency runs from each request's scheduled send time (no coordinated
omission). Results: a table on the terminal, JSON and a PNG under benchmarks/results/.
Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from benchmarks.cpu import CpuMeter, cores, limiter
from benchmarks.large_db import Size, generate
from benchmarks.plot import benchmark_png
from benchmarks.procedures import IRREDUCIBLE, PROCEDURES, UPGRADES, describe
from runner.analysis import longest_outage_s, per_phase, percentile, phases_from_journal
from runner.config import load_inventory
from runner.drivers.keystone import Credentials
from runner.journal import Event, Journal
from runner.lab.cluster import LabEndpoints
from runner.lab.inventory import inventory_toml
from runner.lab.temporary import temporary_cluster
from runner.model import DatabaseTarget
from runner.probe import Probe, ProbeSettings, Sample
from runner.upgrade import connect
from runner.waits import WaitPolicy, wait_until

RESULTS = Path(__file__).parent / "results"
WARM_UP_S = 3.0
TRAFFIC_FLOWING = WaitPolicy("benchmark traffic flowing", timeout_s=120, interval_s=0.2)
# A big table's migration may take long: the benchmark waits for it instead of stopping it.
BIG_MIGRATION_TIMEOUT_S = 3600
# A rate is held when the answers inside the upgrade window come at least this close to it.
SUSTAINED = 0.95
RATE_STEP = 1.5
PROCEDURE_TIMEOUT_S = BIG_MIGRATION_TIMEOUT_S + 600
MAX_RATE_STEPS = 8
# The search does not go below this rate when it has to come down from its first.
MIN_SEARCH_RATE = 10


def _ms(samples: list[Sample], fraction: float) -> float | None:
    value = percentile([s.latency_s * 1000 for s in samples if s.ok], fraction)
    return round(value, 1) if value is not None else None


def _late_p99_ms(samples: list[Sample]) -> float:
    return round(1000 * (percentile([s.sent_late_s for s in samples], 0.99) or 0.0), 1)


def _write_inventory(cluster: LabEndpoints, target: str, run: dict[str, Any]) -> Path:
    text = inventory_toml(cluster, target, cluster.state_dir / "upgrade")
    settings = "".join(f"{key} = {value}\n" for key, value in run.items())
    text = text.replace("[run]\n", f"[run]\n{settings}", 1)
    path = cluster.state_dir / "inventory.toml"
    path.write_text(text)
    return path


def measure(
    client: docker.DockerClient,
    procedure: str,
    *,
    source: str,
    target: str,
    rate: float,
    steady_s: float,
    large: Size | None = None,
    nodes: int = 3,
    at_once: int = 1,
) -> dict[str, Any]:
    """One fresh cluster, steady traffic, the procedure under traffic, a little after; the numbers."""
    with temporary_cluster(
        client, source, project_prefix="kubench", temp_prefix="ku-bench-", node_count=nodes
    ) as cluster:
        generated = None
        if large is not None:
            generated = generate(
                DatabaseTarget(
                    cluster.db_host, cluster.db_port, cluster.db_user, cluster.db_name, cluster.db_password
                ),
                large,
            )
        run: dict[str, Any] = {"nodes_at_once": at_once}
        if large is not None:
            run["migration_timeout_s"] = BIG_MIGRATION_TIMEOUT_S
        inventory = load_inventory(_write_inventory(cluster, target, run))
        credentials = Credentials(cluster.admin_username, cluster.admin_password, cluster.admin_project)
        settings = ProbeSettings(
            # Enough workers for half a second of mean latency at the rate: beyond it the probe
            # itself falls behind (sent_late shows it, and the limit search says so).
            rate_per_s=rate,
            concurrency=max(6, int(rate / 2)),
            max_seconds=1800,
            max_requests=400_000,
        )
        meter = CpuMeter(client, cluster.project).start()
        probe = Probe(cluster.lb_url, credentials, settings).start()
        try:
            wait_until(TRAFFIC_FLOWING, lambda: len(probe.samples), lambda n: n >= rate * steady_s)
            before = meter.mark()
            began, ended, parts = run_apart(procedure, inventory.path)
            after = meter.mark()
            seen = len(probe.samples)
            wait_until(TRAFFIC_FLOWING, lambda: len(probe.samples), lambda n: n >= seen + rate * 3)
        finally:
            samples = probe.stop()
            meter.stop()
        writes = probe.verify_writes()
        journal = Journal.load(inventory.state_dir) if procedure == "keystone-upgrade" else None
    # Steady state: the traffic before the procedure, less its first seconds (connections
    # and first tokens warming up).
    steady = [s for s in samples if samples[0].at + WARM_UP_S <= s.at < began]
    during = [s for s in samples if began <= s.at <= ended]
    wall = ended - began
    used = cores(before, after)
    result: dict[str, Any] = {
        "procedure": procedure,
        "nodes": nodes,
        "nodes_at_once": at_once,
        "rate_target": rate,
        "requests": len(samples),
        "failed": sum(1 for s in samples if not s.ok),
        "failed_during": sum(1 for s in during if not s.ok),
        # Answers that arrived inside the window: a probe that falls behind still has its requests
        # due there (``at``), but not answered there.
        "achieved_rate": round(sum(1 for s in samples if began <= s.at + s.latency_s <= ended) / wall, 1)
        if wall > 0
        else 0,
        "longest_outage_s": longest_outage_s(samples),
        "steady_p50_ms": _ms(steady, 0.5),
        "steady_p99_ms": _ms(steady, 0.99),
        "during_p50_ms": _ms(during, 0.5),
        "during_p99_ms": _ms(during, 0.99),
        "sent_late_p99_ms": _late_p99_ms(during),
        "wall_s": round(wall, 2),
        "parts": describe(parts),
        "cores": used,
        "limited_by": limiter(used, os.cpu_count() or 1, sent_late_p99_ms=_late_p99_ms(during)),
        "writes_acknowledged": writes.acknowledged_creates + writes.acknowledged_deletes,
        "writes_lost": len(writes.lost),
        "failure_reasons": sorted({(s.error or "")[:80] for s in samples if not s.ok})[:5],
    }
    if journal is not None:
        phases = phases_from_journal(journal.as_dict(), samples[0].at, samples[-1].at)
        result["phases"] = per_phase(samples, phases)
        result["tail"] = tail_by_node(samples, journal, began, ended)
    if generated is not None:
        result["large_database"] = generated
    return result


class ProcedureFailed(RuntimeError):
    """A procedure ended without completing (a refusal, a failed gate, a crash): the benchmark
    records the reason and goes on with its other parts."""

    def __init__(self, procedure: str, reason: str):
        super().__init__(f"{procedure} failed in the benchmark: {reason}")
        self.procedure = procedure
        self.reason = reason


def _procedure_in_child(procedure: str, inventory_path: str, answers: Any) -> None:
    """In a process of its own: the procedure, timed; its outcome on ``answers``."""
    try:
        inventory = load_inventory(Path(inventory_path))
        drivers = connect(inventory)
        began = time.time()
        parts = PROCEDURES[procedure](inventory, drivers)
        answers.put(("done", began, time.time(), parts))
    except BaseException as exc:  # reported to the parent, which raises it
        answers.put(("failed", 0.0, 0.0, f"{type(exc).__name__}: {exc}"))


def run_apart(procedure: str, inventory_path: Path) -> tuple[float, float, dict[str, float]]:
    """The procedure in a child process, as an operator's runner is: the probe's process then
    holds the probe alone, and neither slows the other's Python (one GIL each)."""
    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    child = context.Process(target=_procedure_in_child, args=(procedure, str(inventory_path), answers))
    child.start()
    deadline = time.monotonic() + PROCEDURE_TIMEOUT_S
    try:
        while True:
            try:
                outcome, began, ended, parts = answers.get(timeout=5)
                break
            except queue.Empty:
                # A child killed without a word (out of memory) is seen here, not after the timeout.
                if not child.is_alive() or time.monotonic() > deadline:
                    raise ProcedureFailed(procedure, "its process ended without an answer") from None
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
    if outcome != "done":
        raise ProcedureFailed(procedure, str(parts))
    return began, ended, parts


def tail_by_node(samples: list[Sample], journal: Journal, began: float, ended: float) -> dict[str, Any]:
    """Where the slowest 1 % of the upgrade's requests went: which node served each, and how long
    after that node came back UP (a node's first seconds are its slowest)."""
    during = sorted((s for s in samples if began <= s.at <= ended and s.ok), key=lambda s: -s.latency_s)
    slowest = during[: max(1, len(during) // 100)]
    up_at = {
        step.id.removeprefix("node:"): next((e["at"] for e in step.events if e["event"] == Event.UP), None)
        for step in journal.steps
        if step.kind == "node"
    }
    # What the runner had last done when each request was due: "step event", in time order.
    said = sorted((e["at"], f"{step.id} {e['event']}") for step in journal.steps for e in step.events)
    rows = []
    for s in slowest:
        back = up_at.get(s.served_by or "")
        rows.append(
            {
                "latency_ms": round(s.latency_s * 1000, 1),
                "sent_late_ms": round(s.sent_late_s * 1000, 1),
                "operation": s.operation,
                "served_by": s.served_by,
                "after_event": next((what for at, what in reversed(said) if at <= s.at), None),
                "s_after_node_up": round(s.at - back, 1) if back is not None and s.at >= back else None,
                "phase": next(
                    (
                        step.id
                        for step in journal.steps
                        if step.started_at and step.started_at <= s.at <= (step.finished_at or ended)
                    ),
                    None,
                ),
            }
        )
    return {"slowest": rows}


def account(runs: list[dict[str, Any]]) -> float | None:
    """Irreducible seconds: what rolling-no-drain spends on the operations every procedure does
    (expand, contract, stopping nodes, starting them until healthy), averaged over its runs;
    every run's overhead is its wall time less that."""
    runs = [r for r in runs if "error" not in r]
    baseline = [r for r in runs if r["procedure"] == "rolling-no-drain"]
    if not baseline:
        return None
    irreducible = sum(sum(r["parts"][k] for k in IRREDUCIBLE) for r in baseline) / len(baseline)
    for r in runs:
        if r["procedure"] not in UPGRADES:  # the floor upgrades nothing: no overhead to speak of
            continue
        r["irreducible_s"] = round(irreducible, 2)
        r["overhead_s"] = round(r["wall_s"] - irreducible, 2)
        r["overhead_pct"] = round(100 * (r["wall_s"] - irreducible) / irreducible, 1)
    return irreducible


def _row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['procedure']:<18} did not complete: {r['error']}"
    ratio = (
        f"{r['during_p99_ms'] / r['steady_p99_ms']:.2f}x"
        if r["during_p99_ms"] and r["steady_p99_ms"]
        else "-"
    )
    return (
        f"{r['procedure']:<18} {r['requests']:>8} {r['failed']:>6} {r['longest_outage_s']:>8.2f} "
        f"{r['steady_p50_ms']!s:>7}/{r['steady_p99_ms']!s:<7} {r['during_p50_ms']!s:>7}/{r['during_p99_ms']!s:<7} "
        f"{ratio:>6} {r['wall_s']:>7.1f} {r.get('overhead_s', '-')!s:>7} {r.get('overhead_pct', '-')!s:>6}%"
    )


HEADER = (
    f"{'procedure':<18} {'requests':>8} {'failed':>6} {'outage s':>8} {'steady p50/p99':>15} "
    f"{'during p50/p99':>15} {'p99 x':>6} {'wall s':>7} {'ovh s':>7} {'ovh':>7}"
)


def _at_rate(
    client: docker.DockerClient, common: dict[str, Any], rate: float, tried: list[dict[str, Any]]
) -> tuple[str | None, str | None]:
    """keystone-upgrade once at ``rate``, appended to ``tried``; (None, None) when it held the rate
    with 0 failed, else what stopped it and what limited it."""
    result = _measured_or_failed(client, "keystone-upgrade", {**common, "rate": rate})
    tried.append(result)
    if "error" in result:
        # The runner did not complete at this rate (preflight refused: a node went DOWN under
        # the load; a gate failed).
        print(f"rate {rate:>6.0f}/s: the upgrade did not complete: {result['error']}", flush=True)
        return f"the upgrade did not complete at {rate:.0f}/s", result["error"]
    print(
        f"rate {rate:>6.0f}/s: achieved {result['achieved_rate']}/s in the upgrade window, "
        f"{result['failed']} failed, p99 {result['during_p99_ms']} ms; {result['limited_by']}",
        flush=True,
    )
    if result["failed"]:
        return f"a failed request at {rate:.0f}/s", result["limited_by"]
    if result["achieved_rate"] < SUSTAINED * rate:
        return f"the rate was not delivered at {rate:.0f}/s", result["limited_by"]
    return None, None


def rate_search(client: docker.DockerClient, common: dict[str, Any], start: float) -> dict[str, Any]:
    """Raise the rate by RATE_STEP from ``start`` until a request fails, the rate is not
    delivered or the upgrade does not complete. When ``start`` itself is not held (without a
    failed request), lower it by RATE_STEP instead until a rate holds: the limit then lies between
    that rate and the one above it. A failed request ends the search at any rate."""
    tried: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    stopped_by = limited_by = None
    rate = start
    for _ in range(MAX_RATE_STEPS):
        stopped, limited = _at_rate(client, common, rate, tried)
        if stopped is None:
            best = tried[-1]
            if stopped_by is not None:  # on the way down: the first rate held is the limit
                break
            rate = round(rate * RATE_STEP)
            continue
        failed_request = stopped.startswith("a failed request")
        if stopped_by is None or failed_request:  # a failed request says most: it is reported
            stopped_by, limited_by = stopped, limited
        lower = round(rate / RATE_STEP)
        if best is not None or failed_request or lower < MIN_SEARCH_RATE:
            break
        rate = lower
    else:
        stopped_by = stopped_by or f"{MAX_RATE_STEPS} steps"
    return {"tried": tried, "limit": best, "stopped_by": stopped_by, "limited_by": limited_by}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", default="28.1.0")
    parser.add_argument("--target", default="29.1.0")
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--rate", type=float, default=30.0, help="requests/s through HAProxy")
    parser.add_argument("--steady-seconds", type=float, default=10.0)
    parser.add_argument("--procedures", default=",".join(PROCEDURES))
    parser.add_argument(
        "--rate-from", type=float, default=60.0, help="first rate of the limit search (0 skips it)"
    )
    parser.add_argument(
        "--limit-baselines",
        default="rolling-no-drain,openstack-ansible,kolla-ansible,cold",
        help="procedures also run at the limit found ('' for none)",
    )
    parser.add_argument(
        "--large-revocations",
        type=int,
        default=Size.revocations,
        help="revocation_event rows of the big-table run (0 skips it); 29.x's expand indexes this table",
    )
    parser.add_argument("--large-users", type=int, default=Size.users)
    parser.add_argument("--large-assignments", type=int, default=Size.assignments)
    parser.add_argument("--scaling", default="3,6,10", help="node counts the runner is run on ('' skips)")
    parser.add_argument(
        "--scaling-at-once",
        type=int,
        default=3,
        help="also the largest node count this many at a time (1 skips)",
    )
    return parser.parse_args()


def _side_by_side(
    client: docker.DockerClient, args: argparse.Namespace, common: dict[str, Any], runs: list[dict[str, Any]]
) -> None:
    """Every procedure, ``args.repetitions`` times, appended to ``runs`` as each ends."""
    print(HEADER, flush=True)
    for repetition in range(1, args.repetitions + 1):
        for procedure in args.procedures.split(","):
            result = _measured_or_failed(client, procedure, common)
            result["repetition"] = repetition
            runs.append(result)
            print(_row(result), flush=True)
    irreducible = account(runs)
    if irreducible is not None:
        print(f"irreducible (rolling-no-drain's expand, contract, stops, starts): {irreducible:.1f} s")
        for r in runs:
            print(_row(r), flush=True)


def _measured_or_failed(
    client: docker.DockerClient, procedure: str, common: dict[str, Any], **shape: Any
) -> dict[str, Any]:
    """One run's figures (``shape``: measure's large, nodes, at_once), or, when the procedure did
    not complete, its reason under ``error`` beside what was asked."""
    try:
        return measure(client, procedure, **common, **shape)
    except ProcedureFailed as failed:
        asked = {"nodes": shape.get("nodes", 3), "nodes_at_once": shape.get("at_once", 1)}
        return {"procedure": procedure, "rate_target": common["rate"], **asked, "error": failed.reason}


def _limit(
    client: docker.DockerClient, args: argparse.Namespace, common: dict[str, Any], document: dict[str, Any]
) -> None:
    search = rate_search(client, common, args.rate_from)
    document["limit"] = search
    limit = search["limit"]
    print(
        f"limit: {limit['achieved_rate'] if limit else None}/s with 0 failed; stopped by "
        f"{search['stopped_by']}; {search['limited_by']}",
        flush=True,
    )
    if limit and args.limit_baselines:
        at_limit = {**common, "rate": limit["rate_target"]}
        document["at_limit"] = [limit] + [
            _measured_or_failed(client, p, at_limit) for p in args.limit_baselines.split(",")
        ]
        account(document["at_limit"])
        for r in document["at_limit"]:
            print(f"at {limit['rate_target']:.0f}/s: " + _row(r), flush=True)


def _large(client: docker.DockerClient, args: argparse.Namespace, common: dict[str, Any]) -> dict[str, Any]:
    size = Size(
        users=args.large_users, assignments=args.large_assignments, revocations=args.large_revocations
    )
    result = _measured_or_failed(client, "keystone-upgrade", common, large=size)
    if "error" in result:
        print(f"large database: the upgrade did not complete: {result['error']}", flush=True)
        return {**result, "size": vars(size)}
    print(f"large database {result['large_database']}: {result['failed']} failed", flush=True)
    for phase in result["phases"]:
        print(
            f"  {phase['phase']:<18} {phase['seconds']:>6}s {phase['requests']:>6} requests {phase['failed']:>3} failed"
        )
    return result


def _scaling(
    client: docker.DockerClient, args: argparse.Namespace, common: dict[str, Any], runs: list[dict[str, Any]]
) -> None:
    """The runner on each node count, appended to ``runs`` as each ends."""
    counts = [int(n) for n in args.scaling.split(",")]
    shapes = [(count, 1) for count in counts]
    if args.scaling_at_once > 1:
        shapes.append((max(counts), args.scaling_at_once))
    for count, at_once in shapes:
        result = _measured_or_failed(client, "keystone-upgrade", common, nodes=count, at_once=at_once)
        runs.append(result)
        if "error" in result:
            print(f"{count:>3} nodes, {at_once} at a time: did not complete: {result['error']}", flush=True)
            continue
        print(
            f"{count:>3} nodes, {at_once} at a time: wall {result['wall_s']} s, {result['failed']} failed, "
            f"p99 {result['during_p99_ms']} ms (steady {result['steady_p99_ms']})",
            flush=True,
        )


def main() -> None:
    """Run everything the arguments ask for and write the results."""
    args = _arguments()
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

    def part(name: str, run: Callable[[], None]) -> None:
        # A part that breaks (a cluster that does not come up, traffic that never flows) is
        # recorded with its reason; the parts before it are saved and the ones after it still run.
        try:
            run()
        except Exception as exc:  # any failure of a part is a result to keep
            document.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
            print(f"{name}: did not complete: {type(exc).__name__}: {exc}", flush=True)
        finally:
            save()

    if args.repetitions and args.procedures:
        part("runs", lambda: _side_by_side(client, args, common, document["runs"]))
    if args.rate_from:
        part("limit", lambda: _limit(client, args, common, document))
    if args.large_revocations:
        part("large_database", lambda: document.update(large_database=_large(client, args, common)))
    if args.scaling:
        part("scaling", lambda: _scaling(client, args, common, document.setdefault("scaling", [])))
    png = benchmark_png(RESULTS / f"benchmark-{stamp}.png", document)
    print(f"results: {out}\nfigure: {png}")


if __name__ == "__main__":
    main()

"""Pure pieces of the performance work: the benchmark's accounting and limiter, the warm-up,
and when db_sync --migrate is skipped."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from benchmarks import run
from benchmarks.cpu import cores, limiter
from benchmarks.plot import benchmark_png
from benchmarks.run import account
from runner.facts.nodes import haproxy_configs_without_slowstart
from runner.release_path import migrate_is_noop
from runner.steps.tokens import WARM_UP_ROUNDS, WARM_UP_THREADS, warm_up


def _run(procedure: str, wall: float, **parts: float) -> dict[str, object]:
    base = dict.fromkeys(("expand_s", "contract_s", "node_stop_s", "node_start_to_healthy_s"), 0.0)
    return {"procedure": procedure, "wall_s": wall, "parts": {**base, **parts}}


def test_overhead_is_measured_against_what_the_no_drain_baseline_spends() -> None:
    runs = [
        _run(
            "rolling-no-drain",
            11.0,
            expand_s=2.0,
            contract_s=2.0,
            node_stop_s=3.0,
            node_start_to_healthy_s=3.0,
        ),
        _run(
            "rolling-no-drain",
            9.0,
            expand_s=2.0,
            contract_s=2.0,
            node_stop_s=1.0,
            node_start_to_healthy_s=3.0,
        ),
        # The runner's own parts (drain, its longer node phases) are not what it cannot avoid.
        _run(
            "keystone-upgrade",
            12.0,
            expand_s=2.0,
            contract_s=2.0,
            node_stop_s=4.0,
            node_start_to_healthy_s=4.0,
        ),
    ]
    assert account(runs) == 9.0
    assert runs[2]["overhead_s"] == 3.0
    assert runs[2]["overhead_pct"] == 33.3
    assert runs[0]["overhead_s"] == 2.0


def test_no_baseline_no_accounting() -> None:
    runs = [_run("keystone-upgrade", 12.0)]
    assert account(runs) is None
    assert "overhead_s" not in runs[0]


def test_the_limiter_names_the_busy_machine_or_the_probe() -> None:
    before = {"at": 0.0, "process": 0.0, "machine": 0.0, "parts": {"nodes": 1.0}}
    busy = {"at": 10.0, "process": 5.0, "machine": 19.5, "parts": {"nodes": 11.0, "haproxy": 2.0}}
    used = cores(before, busy)
    assert used == {"haproxy": 0.2, "machine": 1.95, "nodes": 1.0, "probe": 0.5, "procedure (runner)": 0.0}
    assert limiter(used, 2).startswith("the machine's 2 cores were busy")
    gil = cores(before, {"at": 10.0, "process": 9.5, "machine": 12.0, "parts": {"nodes": 2.0}})
    assert "GIL" in limiter(gil, 2)
    assert "no CPU was saturated" in limiter(cores(before, {**before, "at": 10.0}), 2)


class _Tokens:
    """Logins that answer only once WARM_UP_THREADS of them are in flight together (or refuse)."""

    def __init__(self, reject: bool = False) -> None:
        self.reject = reject
        self.issued = 0
        self.validated: list[str] = []
        self.lock = threading.Lock()
        self.together = threading.Barrier(WARM_UP_THREADS, timeout=5)

    def issue(self, base_url: str) -> str:
        with self.lock:
            self.issued += 1
            number = self.issued
        self.together.wait()  # BrokenBarrierError unless every thread's login is in flight at once
        if self.reject:
            raise PermissionError("refused")
        return f"t{number}"

    def validate(self, base_url: str, auth_token: str, subject_token: str) -> int:
        with self.lock:
            self.validated.append(subject_token)
        return 200


def test_the_warm_up_logs_in_once_per_thread_at_once_then_validates_every_round() -> None:
    tokens = _Tokens()
    result = warm_up(tokens, "http://127.0.0.1:1", lambda: 200, "gate")
    assert tokens.issued == WARM_UP_THREADS, "every worker's first login is the runner's; one each"
    assert len(tokens.validated) == WARM_UP_THREADS * WARM_UP_ROUNDS
    assert "gate" not in tokens.validated, "a token the warm-up got itself"
    assert result["requests"] == WARM_UP_THREADS + WARM_UP_THREADS * WARM_UP_ROUNDS
    assert (result["failed_rounds"], result["failed_logins"]) == (0, 0)


def test_refused_logins_are_counted_and_the_gates_token_is_validated_instead() -> None:
    refused = _Tokens(reject=True)
    result = warm_up(refused, "http://127.0.0.1:1", lambda: 200, "gate")
    assert (result["failed_rounds"], result["failed_logins"]) == (0, WARM_UP_THREADS)
    assert refused.validated == ["gate"] * (WARM_UP_THREADS * WARM_UP_ROUNDS)
    nothing = warm_up(_Tokens(reject=True), "http://127.0.0.1:1", lambda: 200)
    assert (nothing["failed_rounds"], nothing["failed_logins"]) == (
        WARM_UP_THREADS * WARM_UP_ROUNDS,
        WARM_UP_THREADS,
    )
    # Without probe credentials: the health URL, as often.
    assert (
        warm_up(None, "http://127.0.0.1:1", lambda: 503)["failed_rounds"] == WARM_UP_THREADS * WARM_UP_ROUNDS
    )


def test_migrate_is_skipped_only_for_releases_known_to_make_it_a_no_op() -> None:
    assert migrate_is_noop("23.0.0")
    assert migrate_is_noop("29.1.0")
    assert migrate_is_noop("30.0.0")
    assert not migrate_is_noop("22.0.0")  # the last release with sqlalchemy-migrate's data migrations
    assert not migrate_is_noop(None)
    assert not migrate_is_noop("latest")


def test_a_haproxy_config_without_slowstart_is_noticed(tmp_path: Path) -> None:
    plain = tmp_path / "plain.cfg"
    plain.write_text(
        "backend b\n    default-server inter 1s fall 2 rise 2\n    server k1 127.0.0.1:1 check\n"
    )
    ramped = tmp_path / "ramped.cfg"
    ramped.write_text(
        "backend b\n    default-server inter 1s slowstart 10s\n    server k1 127.0.0.1:1 check\n"
    )
    commented = tmp_path / "commented.cfg"
    commented.write_text("backend b\n    server k1 127.0.0.1:1 check # slowstart 10s\n")
    paths = (str(plain), str(ramped), str(commented), str(tmp_path / "gone.cfg"))
    assert haproxy_configs_without_slowstart(paths) == (str(plain), str(commented))


def test_the_rate_search_ends_with_the_reason_when_an_upgrade_does_not_complete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rates: list[float] = []

    def measure(client: object, procedure: str, **common: float) -> dict[str, object]:
        rates.append(common["rate"])
        if common["rate"] > 60:
            raise run.ProcedureFailed(procedure, "PreflightError: keystone-1 is DOWN in HAProxy")
        return {"achieved_rate": common["rate"], "failed": 0, "during_p99_ms": 9.0, "limited_by": "-"}

    monkeypatch.setattr(run, "measure", measure)
    search = run.rate_search(object(), {"rate": 30.0}, 60.0)
    assert rates == [60.0, 90.0]  # no rate after the one that did not complete
    assert search["limit"]["achieved_rate"] == 60.0
    assert search["stopped_by"] == "the upgrade did not complete at 90/s"
    assert search["limited_by"] == "PreflightError: keystone-1 is DOWN in HAProxy"
    assert search["tried"][-1]["error"] == search["limited_by"]
    assert search["tried"][-1]["rate_target"] == 90.0


def test_the_figure_leaves_out_runs_that_did_not_complete(tmp_path: Path) -> None:
    search = {"tried": [{"rate_target": 60.0, "error": "refused"}], "limit": None}
    failed = {"procedure": "cold", "rate_target": 30.0, "error": "LabError: no cluster"}
    document = {"source": "28.1.0", "target": "29.1.0", "rate": 30.0, "runs": [failed], "limit": search}
    document["scaling"] = [{"nodes": 3, "nodes_at_once": 1, "error": "refused"}]
    png = benchmark_png(tmp_path / "b.png", document)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_run_that_did_not_complete_is_shown_with_its_reason_and_left_out_of_the_accounting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def measure(client: object, procedure: str, **common: float) -> dict[str, object]:
        raise run.ProcedureFailed(procedure, "PreflightError: keystone-2 is DOWN in HAProxy")

    monkeypatch.setattr(run, "measure", measure)
    failed = run._measured_or_failed(object(), "rolling-no-drain", {"rate": 30.0})
    assert failed == {
        "procedure": "rolling-no-drain",
        "rate_target": 30.0,
        "nodes": 3,
        "nodes_at_once": 1,
        "error": "PreflightError: keystone-2 is DOWN in HAProxy",
    }
    assert (
        run._row(failed)
        == "rolling-no-drain   did not complete: PreflightError: keystone-2 is DOWN in HAProxy"
    )
    runs = [failed, _run("rolling-no-drain", 10.0, expand_s=2.0, node_start_to_healthy_s=6.0)]
    assert account(runs) == 8.0
    assert "overhead_s" not in failed


def _delivering_up_to(limit: float, rates: list[float], failing_at: float | None = None) -> object:
    """A stand-in measure: delivers every rate up to ``limit``; a failed request at ``failing_at``."""

    def measure(client: object, procedure: str, **common: float) -> dict[str, object]:
        rate = common["rate"]
        rates.append(rate)
        return {
            "achieved_rate": min(rate, limit),
            "failed": 1 if rate == failing_at else 0,
            "during_p99_ms": 9.0,
            "limited_by": "the machine's 2 cores were busy",
        }

    return measure


def test_a_first_rate_not_delivered_sends_the_search_down_until_a_rate_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rates: list[float] = []
    monkeypatch.setattr(run, "measure", _delivering_up_to(35.0, rates))
    search = run.rate_search(object(), {"rate": 30.0}, 60.0)
    assert rates == [60.0, 40.0, 27.0]  # down by 1.5 each time; 40 gets 35: not held
    assert search["limit"]["achieved_rate"] == 27.0
    assert search["stopped_by"] == "the rate was not delivered at 60/s"


def test_a_failed_request_ends_the_search_on_the_way_down_without_a_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rates: list[float] = []
    monkeypatch.setattr(run, "measure", _delivering_up_to(35.0, rates, failing_at=40.0))
    search = run.rate_search(object(), {"rate": 30.0}, 60.0)
    assert rates == [60.0, 40.0]
    assert search["limit"] is None
    assert search["stopped_by"] == "a failed request at 40/s"


def test_the_search_goes_up_until_the_rate_is_not_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    rates: list[float] = []
    monkeypatch.setattr(run, "measure", _delivering_up_to(100.0, rates))
    search = run.rate_search(object(), {"rate": 30.0}, 60.0)
    assert rates == [60.0, 90.0, 135.0]
    assert search["limit"]["achieved_rate"] == 90.0
    assert search["stopped_by"] == "the rate was not delivered at 135/s"


def test_a_rate_search_alone_draws_its_procedures_at_the_limit(tmp_path: Path) -> None:
    at_limit = {"procedure": "keystone-upgrade", "rate_target": 40.0, "failed": 0, "longest_outage_s": 0.0}
    at_limit |= {"wall_s": 130.8, "during_p99_ms": 2964.8, "steady_p99_ms": 1152.8}
    document = {"source": "28.1.0", "target": "29.1.0", "rate": 30.0, "runs": [], "at_limit": [at_limit]}
    benchmark_png(tmp_path / "b.png", document)
    assert at_limit["p99_ratio"] == 2.57  # drawn: its ratio is worked out for the figure

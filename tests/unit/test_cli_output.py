"""The command line's three ways of speaking (as always, --quiet, --json) and the status line of long waits."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import cli, cli_render, terminal
from runner.errors import MigrationError
from runner.plan import Plan, build_plan
from runner.terminal import SHOW_AFTER_S, StatusLine, error_document
from runner.waits import WaitPolicy, WaitProgress, WaitTimeout, set_progress, wait_until
from tests.unit.test_config import GOOD
from tests.unit.test_plan import _facts, _inventory

DRAIN = WaitPolicy("HAProxy reports no sessions on the drained servers", timeout_s=120, interval_s=0.1)
FAST = WaitPolicy("unit wait", timeout_s=0.3, interval_s=0.01)


class Terminal(io.StringIO):
    """A stream that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_progress_left_behind() -> Iterator[None]:
    """Every test starts and ends with no reporter installed and a fresh output mode."""
    set_progress(None)
    terminal.begin(quiet=False)
    yield
    set_progress(None)
    terminal.begin(quiet=False)


# -- the status line -------------------------------------------------------------------------------


def _line(tty: bool = True, width: int = 200) -> tuple[StatusLine, Terminal, Clock]:
    stream, clock = Terminal(tty), Clock()
    return StatusLine(stream, clock=clock, width=lambda: width), stream, clock


def test_a_long_wait_rewrites_one_line_saying_what_it_waits_for() -> None:
    line, stream, _ = _line()
    line.waiting(DRAIN, 12.4, "k1: 3 sessions")
    assert stream.getvalue() == (
        "\rwaiting: HAProxy reports no sessions on the drained servers 12s/120s, last seen: k1: 3 sessions\x1b[K"
    )
    line.done(DRAIN, 13.0, True)
    assert stream.getvalue().endswith("\x1b[K\r\x1b[K")  # cleared for what follows


def test_a_short_wait_is_not_shown_and_updates_are_throttled() -> None:
    line, stream, clock = _line()
    line.waiting(DRAIN, SHOW_AFTER_S / 2, "first look")
    assert stream.getvalue() == ""
    line.waiting(DRAIN, 2.0, "seen")
    clock.now += 0.05  # a poll every 0.1 s must not redraw at that pace
    line.waiting(DRAIN, 2.05, "seen again too soon")
    assert "too soon" not in stream.getvalue()
    clock.now += 0.3
    line.waiting(DRAIN, 2.35, "seen later")
    assert stream.getvalue().count("\r") == 2
    assert "seen later" in stream.getvalue()


def test_the_line_is_trimmed_to_the_terminal_and_kept_on_one_line() -> None:
    line, stream, _ = _line(width=40)
    line.waiting(DRAIN, 5, ConnectionRefusedError("no\nanswer " + "x" * 200))
    shown = stream.getvalue().removeprefix("\r").removesuffix("\x1b[K")
    assert len(shown) == 39
    assert "\n" not in shown
    wide, stream, _ = _line(width=300)
    wide.waiting(DRAIN, 5, ConnectionRefusedError("no\nanswer"))
    assert "last seen: ConnectionRefusedError: no answer" in stream.getvalue()


def test_not_a_terminal_means_nothing_is_printed() -> None:
    line, stream, clock = _line(tty=False)
    for second in range(5):
        clock.now += 1
        line.waiting(DRAIN, float(second + 2), "still 3 sessions")
    line.done(DRAIN, 7.0, False)
    assert stream.getvalue() == ""


def _installed() -> WaitProgress:
    installed = set_progress(None)
    set_progress(installed)
    return installed


def test_the_cli_shows_waits_only_on_a_terminal_and_never_with_quiet_or_json() -> None:
    for quiet, as_json, tty, shown in (
        (False, False, True, True),
        (False, False, False, False),
        (True, False, True, False),
        (False, True, True, False),
    ):
        terminal.begin(quiet=quiet)
        terminal.for_command(as_json=as_json, stream=Terminal(tty))
        assert isinstance(_installed(), StatusLine) is shown, (quiet, as_json, tty)


# -- the hook in wait_until ------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.looks: list[tuple[str, float, object]] = []
        self.ends: list[tuple[str, bool]] = []

    def waiting(self, policy: WaitPolicy, elapsed_s: float, observed: object) -> None:
        self.looks.append((policy.name, elapsed_s, observed))

    def done(self, policy: WaitPolicy, elapsed_s: float, reached: bool) -> None:
        self.ends.append((policy.name, reached))


def test_wait_until_tells_the_reporter_every_look_and_the_end() -> None:
    recorder = Recorder()
    set_progress(recorder)
    values = iter([1, 2, 3])
    assert wait_until(FAST, lambda: next(values), lambda v: v >= 3) == 3
    assert [observed for _, _, observed in recorder.looks] == [1, 2, 3]
    elapsed = [seconds for _, seconds, _ in recorder.looks]
    assert elapsed == sorted(elapsed)
    assert recorder.ends == [("unit wait", True)]


def test_a_timeout_and_a_transient_error_are_told_too() -> None:
    recorder = Recorder()
    set_progress(recorder)
    refused = ConnectionRefusedError("not listening")

    def probe() -> str:
        raise refused

    with pytest.raises(WaitTimeout):
        wait_until(FAST, probe, bool)
    assert recorder.looks
    assert all(observed is refused for _, _, observed in recorder.looks)
    assert recorder.ends == [("unit wait", False)]


def test_a_reporter_that_fails_never_fails_the_wait() -> None:
    class Broken:
        def waiting(self, policy: WaitPolicy, elapsed_s: float, observed: object) -> None:
            raise BrokenPipeError("stderr is gone")

        def done(self, policy: WaitPolicy, elapsed_s: float, reached: bool) -> None:
            raise BrokenPipeError("stderr is gone")

    set_progress(Broken())
    assert wait_until(FAST, lambda: "UP", lambda v: v == "UP") == "UP"


# -- the modes, through the entry point ------------------------------------------------------------


def _inventory_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KU_TEST_DB_PASSWORD", "secret")
    path = tmp_path / "inventory.toml"
    path.write_text(GOOD.replace("[database]", f'[run]\nstate_dir = "{tmp_path}/state"\n\n[database]'))
    return path


def _plan() -> Plan:
    inventory = _inventory()
    return build_plan(inventory, _facts(inventory), run_id="r1")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Plan:
    """The CLI with no cluster behind it: connecting does nothing, the plan is a hand-made one."""
    plan = _plan()
    monkeypatch.setattr(cli, "connect", lambda inventory, **_: None)
    monkeypatch.setattr(cli, "make_plan", lambda inventory, drivers, **_: plan)
    monkeypatch.setattr(cli, "release_path", lambda inventory, drivers: ((None, inventory),))
    monkeypatch.setattr(cli, "hop_plan", lambda inventory, drivers, hops, number, **_: plan)
    return plan


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str | Path) -> int:
    monkeypatch.setattr(sys, "argv", ["keystone-upgrade", *map(str, argv)])
    with pytest.raises(SystemExit) as exited:
        cli.run()
    return int(exited.value.code or 0)


def test_a_json_error_is_one_document_on_stdout_with_the_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "inventory.toml"
    bad.write_text("[database]\nhost = 5\n")
    code = _run(monkeypatch, "plan", "-i", bad, "--json")
    out, _ = capsys.readouterr()
    document = json.loads(out)
    assert code == 3
    assert list(document) == ["error", "observed", "what_to_do", "exit_code"]
    assert document["exit_code"] == 3
    assert "problem(s); nothing was touched" in document["error"]
    assert "[database]: 'host' must be a string" in document["observed"]
    assert document["what_to_do"].startswith("fix the inventory")


def test_without_json_the_error_goes_to_stderr_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for quiet in ((), ("--quiet",)):
        code = _run(monkeypatch, *quiet, "plan", "-i", tmp_path / "missing.toml")
        out, err = capsys.readouterr()
        assert code == 3
        assert out == ""
        assert err.startswith("error: cannot read the inventory")
        assert "what to do:" in err


def test_plan_as_always_quiet_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], offline: Plan
) -> None:
    inventory = _inventory_file(tmp_path, monkeypatch)
    assert _run(monkeypatch, "plan", "-i", inventory) == 0
    assert capsys.readouterr().out == cli_render.render_plan(offline) + "\n"
    assert _run(monkeypatch, "--quiet", "plan", "-i", inventory) == 0
    out, err = capsys.readouterr()
    assert out == f"{cli_render.plan_line(offline)}\n"
    assert "28.1.0 -> 29.1.0" in out
    assert err == ""
    assert _run(monkeypatch, "plan", "-i", inventory, "--json") == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(offline.to_dict()))


def test_status_json_and_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], offline: Plan
) -> None:
    inventory = _inventory_file(tmp_path, monkeypatch)
    assert _run(monkeypatch, "status", "-i", inventory, "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["journal"] is None
    assert document["plan"]["run_id"] == "r1"
    assert _run(monkeypatch, "-q", "status", "-i", inventory) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.rstrip().endswith("no run recorded")


def _fake_run(report: dict[str, Any], failure: Exception | None) -> Callable[..., Plan]:
    def run_upgrade(
        inventory: object,
        drivers: object,
        confirm: Callable[[Plan], bool],
        on_report: Callable[[dict[str, Any], Path], None],
        **_: object,
    ) -> Plan:
        plan = _plan()
        assert confirm(plan)
        on_report(report, Path("/state/report-r1.json"))
        if failure is not None:
            raise failure
        return plan

    return run_upgrade


REPORT = {
    "run_id": "r1",
    "status": "succeeded",
    "source_versions": ["28.1.0"],
    "target_version": "29.1.0",
    "seconds": 301.2,
    "steps": [{"id": "backup", "status": "done", "seconds": 3.0, "detail": None, "intended": None}],
}


def test_upgrade_json_is_the_report_alone_and_quiet_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], offline: Plan
) -> None:
    inventory = _inventory_file(tmp_path, monkeypatch)
    monkeypatch.setattr(cli, "run_upgrade", _fake_run(REPORT, None))
    assert _run(monkeypatch, "upgrade", "-i", inventory, "--yes", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {**REPORT, "report_file": "/state/report-r1.json"}
    assert _run(monkeypatch, "--quiet", "upgrade", "-i", inventory, "--yes") == 0
    assert capsys.readouterr().out == (
        "run r1 succeeded (28.1.0 -> 29.1.0) in 301s; report: /state/report-r1.json\n"
    )
    assert _run(monkeypatch, "upgrade", "-i", inventory, "--yes") == 0
    out = capsys.readouterr().out
    assert out.startswith(cli_render.render_plan(offline))  # as always: the plan, then the report
    assert out.endswith("report: /state/report-r1.json\n")


def test_a_run_that_fails_says_so_in_one_json_document_carrying_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], offline: Plan
) -> None:
    inventory = _inventory_file(tmp_path, monkeypatch)
    failed = {**REPORT, "status": "failed"}
    failure = MigrationError("db_sync --expand failed", observed="exit 1", hint="read its output")
    monkeypatch.setattr(cli, "run_upgrade", _fake_run(failed, failure))
    code = _run(monkeypatch, "upgrade", "-i", inventory, "--yes", "--json")
    document = json.loads(capsys.readouterr().out)
    assert code == 5
    assert document == error_document(
        "db_sync --expand failed",
        "exit 1",
        "read its output",
        5,
        {"report": {**failed, "report_file": "/state/report-r1.json"}},
    )


def test_json_without_yes_asks_on_stderr_and_keeps_stdout_for_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], offline: Plan
) -> None:
    inventory = _inventory_file(tmp_path, monkeypatch)
    monkeypatch.setattr(cli, "run_upgrade", _fake_run(REPORT, None))
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert _run(monkeypatch, "upgrade", "-i", inventory, "--json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["run_id"] == "r1"
    assert "execute this plan?" in err
    assert cli_render.render_plan(offline) in err


def test_verbose_and_quiet_together_are_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(monkeypatch, "-v", "-q", "plan", "-i", tmp_path / "inventory.toml") == 2
    assert "--verbose and --quiet" in capsys.readouterr().err

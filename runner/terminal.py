"""How the command line speaks: as it always has, quietly, or as one JSON document; and a status line.

Three modes, chosen once per command: the default prints what each command
always printed; ``--quiet`` prints only errors and one final line; ``--json``
prints exactly one JSON document on stdout (the result, or the error as
``{"error", "observed", "what_to_do", "exit_code"}``) and nothing else there.

Long waits (a drain, a health gate, a migration, the backup) go through
``waits.wait_until``; ``StatusLine`` is the progress reporter the CLI installs
there when stderr is a terminal and neither mode asks for silence: one line,
rewritten in place, throttled, trimmed to the terminal's width.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import click

from runner.waits import WaitPolicy, set_progress

# At most this many status line updates a second; waits shorter than SHOW_AFTER_S are not shown at all.
UPDATES_PER_S = 4
SHOW_AFTER_S = 1.0
FALLBACK_WIDTH = 80


@dataclass
class Output:
    """The mode of the command being run, and what an error after it should carry."""

    quiet: bool = False
    as_json: bool = False
    # Said with an error that follows (the report of a run that failed), in JSON mode.
    attached: dict[str, Any] = field(default_factory=dict)

    def say(self, human: str | None = None, *, line: str | None = None) -> None:
        """``human`` in the default mode, ``line`` (the one-line outcome) with --quiet, neither with --json."""
        if self.as_json:
            return
        text = line if self.quiet else human
        if text is not None:
            click.echo(text)

    def document(self, value: Mapping[str, Any]) -> None:
        """The command's one JSON document on stdout (only with --json)."""
        if self.as_json:
            click.echo(json.dumps(value, indent=2, default=str))

    def attach(self, key: str, value: Any) -> None:
        """Keep ``value`` to go with an error the command may still end with (JSON mode)."""
        self.attached[key] = value

    def fail(
        self, what: str, observed: str | None, what_to_do: str | None, exit_code: int, human: str
    ) -> None:
        """Say an error: as JSON on stdout with --json, else ``human`` on stderr."""
        if self.as_json:
            click.echo(
                json.dumps(error_document(what, observed, what_to_do, exit_code, self.attached), indent=2)
            )
        else:
            click.echo(human, err=True)


def error_document(
    what: str,
    observed: str | None,
    what_to_do: str | None,
    exit_code: int,
    attached: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An error as --json prints it: the four keys, then whatever the command attached (its report)."""
    document = {
        "error": what,
        "observed": observed.strip() if observed else observed,
        "what_to_do": what_to_do,
        "exit_code": exit_code,
    }
    return {**document, **{k: v for k, v in (attached or {}).items() if k not in document}}


_current = Output()


def current() -> Output:
    """The output of the command being run (the default one before any command set it)."""
    return _current


def begin(*, quiet: bool) -> Output:
    """A fresh output for a new invocation (the global --quiet); no status line until a command asks."""
    global _current  # noqa: PLW0603 - one command per process; cli.run reads it to say an error
    _current = Output(quiet=quiet)
    set_progress(None)
    return _current


def for_command(*, as_json: bool, stream: TextIO | None = None) -> Output:
    """The command's output mode; with a terminal on stderr and neither mode, the status line of waits."""
    output = _current
    output.as_json = as_json
    stream = stream if stream is not None else sys.stderr
    shown = not (output.quiet or output.as_json) and stream.isatty()
    set_progress(StatusLine(stream) if shown else None)
    return output


def _describe(observed: object) -> str:
    """What a wait last saw, on one line."""
    text = f"{type(observed).__name__}: {observed}" if isinstance(observed, BaseException) else str(observed)
    return " ".join(text.split())


def _stream_width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return FALLBACK_WIDTH
    return columns if columns > 0 else FALLBACK_WIDTH  # a pseudo-terminal nobody sized says 0


class StatusLine:
    """A ``WaitProgress`` that rewrites one line on a terminal; prints nothing when ``stream`` is not one."""

    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        width: Callable[[], int] | None = None,
    ) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.clock = clock
        self.width = width if width is not None else lambda: _stream_width(stream)
        self.shown = False
        self.last_at: float | None = None
        # Waits happen in the run's thread and, rarely, in the traffic's: one line, one writer at a time.
        self.lock = threading.Lock()

    def waiting(self, policy: WaitPolicy, elapsed_s: float, observed: object) -> None:
        """Show the wait once it has lasted SHOW_AFTER_S, at most UPDATES_PER_S times a second."""
        if not self.enabled or elapsed_s < SHOW_AFTER_S:
            return
        with self.lock:
            now = self.clock()
            if self.last_at is not None and now - self.last_at < 1 / UPDATES_PER_S:
                return
            self.last_at = now
            text = (
                f"waiting: {policy.name} {elapsed_s:.0f}s/{policy.timeout_s:.0f}s, "
                f"last seen: {_describe(observed)}"
            )
            # One column short of the width: a full line would wrap on some terminals.
            self.stream.write("\r" + text[: max(self.width() - 1, 10)] + "\x1b[K")
            self.stream.flush()
            self.shown = True

    def done(self, policy: WaitPolicy, elapsed_s: float, reached: bool) -> None:
        """Clear the line, so that what follows starts on a clean one."""
        if not self.enabled:
            return
        with self.lock:
            if self.shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self.shown = False
            self.last_at = None

"""SIGINT and SIGTERM during a run: the first asks for a clean stop, a second stops at once.

The first signal only records the request: the step in progress finishes (a
migration is never killed mid-statement, a node ends on a working release,
back in rotation), then the executor stops between steps with ``Interrupted``
and its own exit code, and ``resume`` goes on later. A second signal raises
``ForcedStop`` wherever the run is; the CLI says what it leaves behind.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from runner.errors import ExitCode, RunnerError

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(RunnerError):
    """The run stopped cleanly between two steps because a signal asked it to."""

    exit_code = ExitCode.INTERRUPTED


class ForcedStop(BaseException):
    """A second signal: stop at once. Not a RunnerError, so no rollback starts on the way out."""

    exit_code = ExitCode.INTERRUPTED


class StopRequests:
    """Whether a signal asked the run to stop, and which."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    @property
    def requested(self) -> bool:
        """True once a first signal arrived."""
        return self.signal is not None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        received = signal.Signals(signum)
        if self.signal is not None:
            raise ForcedStop(f"{received.name} again: stopping at once")
        self.signal = received
        log.warning(
            "%s: finishing the step in progress, then stopping (send it again to stop now)", received.name
        )
        print(
            f"{received.name} received: finishing the step in progress, then stopping; "
            "send it again to stop at once",
            file=sys.stderr,  # stdout is for the command's result (one JSON document with --json)
            flush=True,
        )


@contextmanager
def stop_requests() -> Iterator[StopRequests]:
    """Handle SIGINT and SIGTERM for the block (main thread only); the previous handlers come back after."""
    requests = StopRequests()
    previous = {signum: signal.signal(signum, requests._handle) for signum in SIGNALS}
    try:
        yield requests
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

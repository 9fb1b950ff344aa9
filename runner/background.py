"""Work started in a thread of its own, whose result is waited for later.

Preflight overlaps its readings this way (the dump beside the node reads, the target's checks
beside its throwaway), and the warm keystone-manage client bounds its wait with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_background(work: Callable[[], T], name: str) -> Callable[..., T]:
    """Start ``work`` in a daemon thread; the returned call waits for its result (or raises its error),
    at most ``timeout_s`` when given (then TimeoutError: the work goes on, and holds no exit)."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def result(timeout_s: float | None = None) -> T:
        thread.join(timeout_s)
        if thread.is_alive():
            raise TimeoutError(f"{name} still running after {timeout_s}s")
        if failure:
            raise failure[0]
        return outcome[0]

    return result

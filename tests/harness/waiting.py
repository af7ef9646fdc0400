"""Polling until the system reaches a state, with a failure message that shows the last state seen.

An operator converges eventually, so tests wait for outcomes instead of sleeping fixed amounts; when the
wait times out, the assertion error carries what was observed last, which is usually the whole diagnosis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    until: Callable[[T], bool] = bool,
    *,
    timeout: float,
    interval: float = 0.5,
    what: str = "condition",
) -> T:
    """Call ``probe`` until ``until(value)`` holds and return that value; AssertionError after ``timeout``.

    ``probe`` is typically a ``kubectl get -o json`` call, ``until`` a predicate on its result.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if until(last):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last seen:\n{_show(last)}"
            )
        time.sleep(interval)


def holds_for(
    probe: Callable[[], T],
    invariant: Callable[[T], bool],
    *,
    duration: float,
    interval: float = 1.0,
    what: str = "invariant",
) -> None:
    """Assert that ``invariant(probe())`` stays true for ``duration`` seconds (checked every ``interval``)."""
    deadline = time.monotonic() + duration
    while True:
        value = probe()
        if not invariant(value):
            raise AssertionError(f"{what} broke; seen:\n{_show(value)}")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, indent=1, default=str, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) < 6000 else text[:6000] + "\n..."

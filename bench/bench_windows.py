"""Benchmark: what a Rolling policy's maintenance-window math costs per reconcile.

Numbers, not pass/fail. Every reconcile of a `spec.restart.policy: Rolling` policy asks whether its window is
open (`open_since`) and, when it is not, when it next opens (`next_opening`); both run on the event loop, so
they must stay far below a millisecond for the usual schedules and bounded for the worst ones (an
always-open schedule, a 168h window, a date that comes once in four years).

    .venv/bin/python bench/bench_windows.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from vmclock.engine.cron import MaintenanceWindow
from vmclock.engine.restartspec import parse_restart

CASES = [
    ("0 2 * * 6", "4h"),
    ("*/15 1-5 * * 1-5", "30m"),
    ("* * * * *", "1h"),
    ("* * * * *", "168h"),
    ("0 2 * * 6", "168h"),
    ("0 0 29 2 *", "1h"),
]
NOW = datetime(2026, 12, 7, 10, 17, 33, tzinfo=UTC)


def window(schedule: str, duration: str) -> MaintenanceWindow:
    raw = {"schedule": schedule, "duration": duration, "timeZone": "Europe/Berlin"}
    parsed = parse_restart({"restart": {"policy": "Rolling", "maintenanceWindow": raw}}).window
    assert parsed is not None
    return parsed


def best_ms(call: Callable[[], object], repeat: int) -> float:
    return min(timeit.repeat(call, number=1, repeat=repeat)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'schedule':<18} {'duration':>8} {'open_since ms':>14} {'next_opening ms':>16}")
    for schedule, duration in CASES:
        w = window(schedule, duration)
        opened = best_ms(partial(w.open_since, NOW), args.repeat)
        following = best_ms(partial(w.next_opening, NOW), args.repeat)
        print(f"{schedule:<18} {duration:>8} {opened:>14.3f} {following:>16.3f}")


if __name__ == "__main__":
    main()

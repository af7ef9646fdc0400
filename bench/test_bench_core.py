"""Unit tests of bench_core's own instruments: a wrong instrument would print a wrong number.

Run with ``.venv/bin/pytest bench/test_bench_core.py`` (bench/ is not in the default test paths: the
benchmarks themselves are not tests).
"""

from __future__ import annotations

import argparse
import http.server
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bench_core import parse_tree
from bench_core_probes import LoopStallProbe, wait_written
from bench_core_profile import summarize
from bench_core_report import grid
from bench_operator_probes import Reconcile
from bench_operator_rounds import ReconcileWindow, Window, reads

ENTRY = "_run_module_as_main (<frozen runpy>:198);<module> (vmclock/__main__.py:7);main (vmclock/cli.py:155)"
LOOP = f"{ENTRY};run (asyncio/runners.py:190)"
WORK = "PolicyController._work (vmclock/kopfapp/controller.py"
RAW = "\n".join(
    [
        f"{LOOP};{WORK}:266);raw_decode (json/decoder.py:353) 30",
        f"{LOOP};{WORK}:270);write (ssl.py:9) 10",
        f"{LOOP};select (selectors.py:468) 60",
    ]
)


def test_profile_shares_by_function_and_ours_without_the_entry_frames(tmp_path: Path) -> None:
    raw = tmp_path / "profile.raw"
    raw.write_text(RAW)
    summary = summarize(raw)
    assert summary["samples"] == 100
    assert summary["self"] == [
        ("select (selectors.py)", 60.0),
        ("raw_decode (json/decoder.py)", 30.0),
        ("write (ssl.py)", 10.0),
    ]
    # two lines of one function are one entry; the start-up frames under every sample are not "ours"
    assert summary["ours"] == [("PolicyController._work (vmclock/kopfapp/controller.py)", 40.0)]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stall = threading.Event()

    def do_GET(self) -> None:
        if _Handler.stall.is_set():
            _Handler.stall.clear()
            time.sleep(0.6)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/healthz"
    httpd.shutdown()


def test_stall_probe_reports_the_slowest_answer(server: str) -> None:
    with LoopStallProbe(server) as probe:
        time.sleep(0.3)
        _Handler.stall.set()
        time.sleep(1.2)
    result = probe.result()
    assert result.max_ms >= 600
    assert result.samples >= 4
    assert result.failed == 0


@dataclass
class _Write:
    at: float
    uuid: str
    track: str


@dataclass
class _Stats:
    calls: dict[str, int]
    writes: list[_Write]


@dataclass
class _Admin:
    """The two things wait_written reads of the simulator: its call counts and its stamped writes."""

    stats_seen: list[_Stats] = field(default_factory=list)

    def stats(self) -> _Stats:
        return self.stats_seen.pop(0) if len(self.stats_seen) > 1 else self.stats_seen[0]


def test_wait_written_times_the_last_wanted_write_by_its_stamp() -> None:
    since = 1000.0
    # b is first written with the wrong track: that write must not end the wait
    early = _Stats({"QueryVmInstance": 1}, [_Write(1001.0, "a", "host"), _Write(1002.0, "b", "guest")])
    done = _Stats({"QueryVmInstance": 2, "SetVmClockTrack": 3}, [*early.writes, _Write(1003.5, "b", "host")])
    written = wait_written(_Admin([early, done]), {"a": "host", "b": "host"}, since, timeout=5, poll=0.01)  # type: ignore[arg-type]
    assert written.written_seconds == 3.5
    assert (written.reads, written.writes) == (2, 3)


def test_tree_must_name_a_directory_with_the_package(tmp_path: Path) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="--tree wants NAME=DIR"):
        parse_tree(f"after={tmp_path}")
    with pytest.raises(argparse.ArgumentTypeError, match="lowercase"):
        parse_tree("After=operator")
    assert parse_tree(f"after={Path(__file__).parents[1] / 'operator'}").name == "after"


def test_report_keeps_the_tree_order_and_shows_missing_figures_as_dash() -> None:
    results: dict[str, Any] = {
        "trees": [["zeta", "/z"], ["alpha", "/a"]],
        "scale": {
            "restore_vms": 10,
            "small_policies": 2,
            "small_size": 5,
            "restart_policies": 3,
            "drifted": 1,
        },
        "goals": {"restart.correctedSeconds": "<= 10"},
        "zeta": {"restart": {"correctedSeconds": 4.2, "uptime": "x load average: 1.0, 2.0, 3.0"}},
        "alpha": {},
    }
    rows = grid(results)
    assert rows[0] == ["figure", "zeta", "alpha", "goal"]
    corrected = next(r for r in rows if r[0].startswith("   restart -> 1 drifted"))
    assert corrected == ["   restart -> 1 drifted VMs corrected (s)", "4.2", "-", "<= 10"]
    assert ["load average after restart", "1.0, 2.0, 3.0", "-", ""] in rows
    assert not any(r[0].startswith("1.") for r in rows)  # part 1 ran for no tree: no rows


class _World:
    """A scripted operator seen from outside: each poll of the log advances it one step, a step being
    (reads made, reconcile lines logged). Deterministic: no threads, no clock."""

    def __init__(self, steps: list[tuple[int, list[str]]]) -> None:
        self.steps = steps
        self.reads: Counter[str] = Counter()
        self.lines: list[Reconcile] = []

    def offset(self) -> int:
        return len(self.lines)

    def read(self, offset: int) -> tuple[list[Reconcile], int]:
        if self.steps:
            reads, names = self.steps.pop(0)
            self.reads["QueryVmInstance"] += reads
            self.lines += [Reconcile(name, 0) for name in names]
        return self.lines[offset:], len(self.lines)


def test_reconcile_window_counts_whole_rounds_of_one_policy() -> None:
    # one policy: each round reads 3 times, then logs its line; a quiet gap between rounds or not
    world = _World([(3, []), (0, ["big"])] * 5)
    window: Window[None] = ReconcileWindow(lambda: Counter(world.reads), world, lambda: None).measure(  # type: ignore[arg-type]
        2, timeout=60
    )
    # opened after the first line: rounds 2 and 3, and nothing of round 1 or 4
    assert (window.reconciles, reads(window.calls)) == (2, 6)


def test_reconcile_window_ends_without_a_quiet_moment() -> None:
    # many policies, back to back: reads and lines in every step, never a pause
    world = _World([(1, ["a", "b"])] * 50)
    window: Window[None] = ReconcileWindow(lambda: Counter(world.reads), world, lambda: None).measure(  # type: ignore[arg-type]
        6, timeout=60
    )
    assert window.reconciles == 6
    assert reads(window.calls) == 3  # one batch per two reconciles

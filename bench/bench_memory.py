"""Benchmark: what the operator keeps per policy (issue 14: peak RSS <= 200 MiB at 1,000 policies x 10 VMs).

The real PolicyController, ConnectionManager, client, work queue and engine reconcile `--policies` policies of
`--size` VMs each (every VM needs a write, as in bench_core part 2) against the in-process simulator; the
Kubernetes API is the unit tests' in-memory stand-in (tests/operator_unit/fleet.py). Then `--rounds` in-sync
resync rounds. The baseline is taken after one warm-up policy (the connection, its client, first-use
caches); what the stand-in and the simulator keep for their side is dropped before the last measurement.

Printed: tracemalloc's retained bytes per policy by the operator's allocating line and file (the innermost
frame under operator/vmclock; `(elsewhere)`: not the operator's, e.g. the simulator's), the growth of live
objects by type per policy (gc), what the in-sync rounds after the first keep
(`keptByLaterRoundsPerPolicy`), and VmRSS at each step (tracemalloc's own bookkeeping is in it).

    .venv/bin/python bench/bench_memory.py [--policies 1000] [--size 10] [--rounds 2] [--top 25] [--rss-only]

`--rss-only` skips tracemalloc (which costs memory and time itself). The last line of stdout is the results
as one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "tests"))  # the in-memory Kubernetes API of the unit tests

import kopf  # noqa: E402
from kopf._core.engines import posting  # noqa: E402

from operator_unit.fleet import Fleet, operator_bytes, retained  # noqa: E402
from operator_unit.test_controller import SECRET_VALUE  # noqa: E402
from vmclock.simulator import Simulator, SimulatorConfig  # noqa: E402

FRAMES = 16  # enough to reach the operator's frame under asyncio, aiohttp and json


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def live_types() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__qualname__ for o in gc.get_objects())


async def run(policies: int, size: int, rounds: int, top: int, trace: bool) -> dict[str, Any]:
    settings = kopf.OperatorSettings()  # no operator runs here: Events are not posted (as in the unit tests)
    settings.posting.enabled = False
    posting.settings_var.set(settings)
    config = SimulatorConfig(vms=(policies + 1) * size, accounts={"admin": SECRET_VALUE}, job_latency=0.0)
    async with Simulator(config) as sim:
        fleet = Fleet(sim, policies + 1, size)
        fleet.start()
        warm = fleet.add([policies])
        fleet.index_new(warm)
        await fleet.apply(warm)
        refs = fleet.add(range(policies))
        if trace:
            tracemalloc.start(FRAMES)
        types_before, rss_before = live_types(), rss_kib()
        snap_before = tracemalloc.take_snapshot() if trace else None
        fleet.index_new(refs)  # kopf's index and ClaimsByVm learn the policies
        started = time.monotonic()
        await fleet.apply(refs)
        applied = time.monotonic() - started
        rss_applied = rss_kib()
        await fleet.in_sync_round(refs)
        snap_round = tracemalloc.take_snapshot() if trace else None
        for _ in range(rounds - 1):  # steady in-sync rounds: what do they keep?
            await fleet.in_sync_round(refs)
        rss_rounds = rss_kib()
        snap_rounds = tracemalloc.take_snapshot() if trace else None
        fleet.drop_other_sides(refs)
        grown_types = live_types()
        grown_types.subtract(types_before)
        result: dict[str, Any] = {
            "policies": policies,
            "size": size,
            "rounds": rounds,
            "applySeconds": round(applied, 1),
            "rssKiB": {
                "baseline": rss_before,
                "applied": rss_applied,
                "rounds": rss_rounds,
                "end": rss_kib(),
            },
            "objectsPerPolicy": {
                name: round(n / policies, 2) for name, n in grown_types.most_common(top) if n >= policies / 10
            },
        }
        if snap_before is not None:
            snap_after = tracemalloc.take_snapshot()
            traced, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            sites = retained(snap_before, snap_after)
            if snap_round is not None and snap_rounds is not None and rounds > 1:
                kept = operator_bytes(retained(snap_round, snap_rounds))
                result["keptByLaterRoundsPerPolicy"] = round(kept / policies)
            files: Counter[str] = Counter()
            for site, size_ in sites.items():
                files[site.rsplit(":", 1)[0]] += size_
            result["operatorBytesPerPolicy"] = round(operator_bytes(sites) / policies)
            result["allBytesPerPolicy"] = round(sum(sites.values()) / policies)
            result["byFile"] = {k: round(v / policies) for k, v in files.most_common(top) if v > 0}
            result["byLine"] = {k: round(v / policies) for k, v in sites.most_common(top) if v > 0}
            result["tracedMiB"] = {"now": round(traced / 2**20, 1), "peak": round(peak / 2**20, 1)}
        await fleet.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rss-only", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.policies, args.size, args.rounds, args.top, not args.rss_only))
    for key in ("byFile", "byLine", "objectsPerPolicy"):
        for name, value in (result.get(key) or {}).items():
            print(f"{key:>16} {value:>8} {name}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

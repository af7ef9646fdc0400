"""The human-readable table of bench_operator.py: the two scenarios side by side, then the ratio.

Scalars go in the side-by-side grid; per-API breakdowns, which are too wide for a column, follow as lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = tuple[str, str, str, str]


def fmt_calls(calls: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in calls.items()) or "-"


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def grid_rows(one: dict[str, Any], many: dict[str, Any], ratios: dict[str, Any]) -> list[Row]:
    def row(label: str, value: Callable[[dict[str, Any]], Any], ratio: str | None = None) -> Row:
        shown = "" if ratio is None else f"{ratios[ratio]}x" if ratios[ratio] is not None else "-"
        return (label, str(value(one)), str(value(many)), shown)

    return [
        (
            "policies x VMs (all need a write)",
            f"{one['policies']} x {one['vmsPerPolicy']}",
            f"{many['policies']} x {many['vmsPerPolicy']}",
            "many/one",
        ),
        row("apply -> all Ready (s)", lambda s: s["apply"]["readySeconds"]["last"], "applyReadySeconds"),
        row(
            "  Ready first/p50/p90/last (s)",
            lambda s: " / ".join(str(v) for v in s["apply"]["readySeconds"].values()),
        ),
        row("  kubectl apply (s)", lambda s: s["apply"]["kubectlApplySeconds"]),
        row("  SetVmClockTrack calls", lambda s: s["apply"]["setVmClockTrack"]),
        row("  first..last write (s)", lambda s: s["apply"].get("writeSpanSeconds", "-")),
        row("  ZStack reads", lambda s: s["apply"]["zstackReads"], "applyZStackReads"),
        row("  operator CPU (s)", lambda s: s["apply"]["cpuSeconds"]["operator"], "applyOperatorCpu"),
        row("switch to 10 s interval -> Ready (s)", lambda s: s["switchToShortIntervalSeconds"]),
        row(
            "in-sync rounds measured (window s)",
            lambda s: f"{s['resync']['rounds']} ({s['resync']['windowSeconds']})",
        ),
        row(
            "  reconciles per burst seen",
            lambda s: ",".join(str(b["reconciles"]) for b in s["resync"]["bursts"]),
        ),
        row("  ZStack reads per round", lambda s: s["resync"]["readsPerRound"], "readsPerRound"),
        row("  ZStack writes per round", lambda s: s["resync"]["zstackWritesPerRound"]),
        row("  writes in reconcile log lines", lambda s: s["resync"]["writesLogged"]),
        row("  status PATCHes per round", lambda s: s["resync"]["statusPatchesPerRound"]),
        row(
            "  operator CPU per round (s)",
            lambda s: s["resync"]["operatorCpuPerRound"],
            "operatorCpuPerRound",
        ),
        row(
            "operator RSS peak / now (MiB)",
            lambda s: (
                f"{mib(s['operatorMemoryKib']['peak_rss_kib'])} / {mib(s['operatorMemoryKib']['rss_kib'])}"
            ),
        ),
        row("delete all policies (s)", lambda s: s["deleteAllSeconds"]),
    ]


def detail_lines(name: str, scenario: dict[str, Any]) -> list[tuple[str, str]]:
    apply, resync = scenario["apply"], scenario["resync"]
    lines = [
        (f"{name}: apply ZStack calls", fmt_calls(apply["zstackCalls"])),
        (f"{name}: apply CPU seconds", fmt_calls(apply["cpuSeconds"])),
        (f"{name}: apply mean call latency (ms)", fmt_calls(apply["zstackMeanMs"])),
        (f"{name}: phases in .status.vms", fmt_calls(apply["phases"])),
        (f"{name}: apply API-server writes", fmt_calls(apply["apiServerWrites"])),
        (f"{name}: ZStack calls per round", fmt_calls(resync["callsPerRound"])),
        (f"{name}: API-server writes in window", fmt_calls(resync["apiServerWrites"])),
        (f"{name}: status fields changed (policies)", fmt_calls(resync["statusFieldsChanged"])),
    ]
    sizes = apply.get("sizes")
    if sizes:
        lines.append(
            (
                f"{name}: object bytes",
                f"status {sizes['statusBytes']:,} (vms {sizes['statusVmsBytes']:,}), whole "
                f"{sizes['objectBytes']:,} (managedFields {sizes['managedFieldsBytes']:,}, annotations "
                f"{sizes['annotationsBytes']:,}, spec {sizes['specBytes']:,})",
            )
        )
    return lines


def table(results: dict[str, Any]) -> str:
    one_key, many_key = results["scale"]["one"]["key"], results["scale"]["many"]["key"]
    one, many = results[one_key], results[many_key]
    grid = grid_rows(one, many, results["ratios"])
    widths = [max(len(r[i]) for r in grid) for i in range(4)]
    out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in grid]
    lines = detail_lines(one_key, one) + detail_lines(many_key, many)
    for name, proc in results["processes"].items():
        lines.append(
            (
                f"{name} RSS peak / end (MiB)",
                f"{mib(proc['peak_rss_kib'])} / {mib(proc['rss_kib'])}, {proc['threads']} threads",
            )
        )
    lines.append(
        ("load average before / after", f"{results['loadAverageBefore']} / {results['loadAverageAfter']}")
    )
    width = max(len(label) for label, _ in lines)
    return "\n".join([*out, "", *(f"{label:<{width}}  {value}" for label, value in lines)])

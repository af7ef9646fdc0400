"""The human-readable table of bench_core.py: one row per figure, one column per tree, the goal beside.

A part that was not run (``--parts``) leaves its rows out; a figure a tree lacks shows "-".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Value = Callable[[dict[str, Any]], Any]


def pair(a: str, b: str, unit: str = "") -> Value:
    """Two figures of one part as "a / b"."""

    def value(part: dict[str, Any]) -> str:
        return f"{dig(part, a)} / {dig(part, b)}{unit}"

    return value


def dig(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        data = data[key]
    return data


def at(path: str) -> Value:
    return lambda part: dig(part, path)


def times(path: str) -> Value:
    return lambda part: f"{dig(part, path)}x"


# (part, label, value, goal key in results["goals"] or a literal goal)
ROWS: list[tuple[str, str, Value, str]] = [
    (
        "restore",
        "1. 1 x {restore_vms} Restore policy: apply -> Ready (s)",
        at("apply.seconds"),
        "restore.applySeconds",
    ),
    ("restore", "   apply ZStack reads / writes", pair("apply.reads", "apply.writes"), ""),
    ("restore", "   in-sync round: ZStack reads", at("round.readsPerRound"), "restore.round.readsPerRound"),
    (
        "restore",
        "   in-sync round: ZStack writes",
        at("round.zstackWritesPerRound"),
        "restore.round.zstackWritesPerRound",
    ),
    (
        "restore",
        "   in-sync round: status PATCHes",
        at("round.statusPatchesPerRound"),
        "restore.round.statusPatchesPerRound",
    ),
    ("restore", "   delete -> VMs back + object gone (s)", at("restore.seconds"), "restore.restoreSeconds"),
    (
        "restore",
        "     VMs back / object gone (s)",
        pair("restore.vmsBackSeconds", "restore.objectGoneSeconds"),
        "",
    ),
    ("restore", "     ZStack reads / writes", pair("restore.reads", "restore.writes"), ""),
    ("many", "2. 1 x {many_vms}: apply -> Ready (s)", at("one.apply.seconds"), ""),
    ("many", "   {small_policies} x {small_size}: apply -> all Ready (s)", at("many.apply.seconds"), ""),
    ("many", "   many/one apply time", times("ratio.applySeconds"), "many.ratio.applySeconds"),
    ("many", "   apply ZStack reads one / many", pair("one.apply.reads", "many.apply.reads"), ""),
    (
        "many",
        "   operator CPU during apply one / many (s)",
        pair("one.apply.cpuSeconds", "many.apply.cpuSeconds"),
        "",
    ),
    (
        "many",
        "   in-sync reads per round one / many",
        pair("one.round.readsPerRound", "many.round.readsPerRound"),
        "",
    ),
    ("many", "   many/one reads per round", times("ratio.readsPerRound"), "many.ratio.readsPerRound"),
    (
        "many",
        "   in-sync writes / status PATCHes per round, many",
        pair("many.round.zstackWritesPerRound", "many.round.statusPatchesPerRound"),
        "",
    ),
    (
        "many",
        "   slowest liveness answer, apply one / many (ms)",
        pair("one.apply.liveness.max_ms", "many.apply.liveness.max_ms"),
        "",
    ),
    (
        "many",
        "   liveness p99, apply one / many (ms)",
        pair("one.apply.liveness.p99_ms", "many.apply.liveness.p99_ms"),
        "",
    ),
    ("many", "   slowest liveness answer, idle (ms)", at("idleLiveness.max_ms"), ""),
    ("many", "   operator peak RSS (MiB)", at("peakRssMiB"), "many.peakRssMiB"),
    ("beside", "3. 1 x {restore_vms} alone: apply -> Ready (s)", at("alone.seconds"), ""),
    ("beside", "   beside 20 s jobs on another connection (s)", at("beside.seconds"), ""),
    ("beside", "   beside/alone", times("ratio"), "beside.ratio"),
    ("beside", "   slowest liveness answer beside (ms)", at("beside.liveness.max_ms"), ""),
    ("restart", "4. {restart_policies} in-sync policies: apply -> all Ready (s)", at("applySeconds"), ""),
    (
        "restart",
        "   restart -> {drifted} drifted VMs corrected (s)",
        at("correctedSeconds"),
        "restart.correctedSeconds",
    ),
    ("restart", "     of which start -> liveness (s)", at("liveSeconds"), ""),
    ("restart", "   ZStack reads until corrected", at("reads"), "restart.reads"),
    ("restart", "   ZStack writes until corrected", at("writes"), ""),
]


def load(part: dict[str, Any]) -> str:
    """The three load averages of `uptime`'s line (the full line is in the JSON)."""
    return str(part["uptime"]).rpartition("load average:")[2].strip()


def cell(part: dict[str, Any] | None, value: Value) -> str:
    if part is None:
        return "-"
    try:
        shown = value(part)
    except (KeyError, TypeError):
        return "-"
    return str(shown)


def grid(results: dict[str, Any]) -> list[list[str]]:
    trees = [name for name, _ in results["trees"]]
    scale = dict(results["scale"])
    scale["many_vms"] = scale["small_policies"] * scale["small_size"]
    rows = [["figure", *trees, "goal"]]
    for part, label, value, goal in ROWS:
        parts = [results.get(tree, {}).get(part) for tree in trees]
        if all(p is None for p in parts):
            continue
        rows.append([label.format(**scale), *(cell(p, value) for p in parts), results["goals"].get(goal, "")])
    for part in ("restore", "many", "beside", "restart"):
        if any(part in results.get(tree, {}) for tree in trees):
            rows.append(
                [f"load average after {part}", *(cell(results[t].get(part), load) for t in trees), ""]
            )
    return rows


def profile_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for tree, _ in results["trees"]:
        profile = results.get(tree, {}).get("many", {}).get("profile")
        if profile is None:
            continue
        lines.append(
            f"py-spy, tree {tree}, many-policies apply: {profile['samples']} samples at {profile['rate']}/s"
        )
        for kind in ("self", "ours"):  # "total" (in the JSON) is the event loop's frames first
            lines.append(f"  top by {kind} share:")
            lines += [f"    {share:5.1f}%  {name}" for name, share in profile[kind]]
    return lines


def table(results: dict[str, Any]) -> str:
    rows = grid(results)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    out += [
        "",
        f"uptime at start: {results['uptime']['start']}",
        f"uptime at end:   {results['uptime']['end']}",
    ]
    out += [f"part seconds: {results['partSeconds']}"]
    return "\n".join([*out, *profile_lines(results)])

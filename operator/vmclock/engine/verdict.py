"""Summary counters and the `Ready` / `Synced` verdicts for a finished reconcile.

`Ready` answers "does every selected VM have the desired track?"; when it does not, the reason names the most
actionable cause first: terminal ones a human must fix (`Conflict`, `VmNotFound`) before progress ones
(`PartiallyApplied`) and `Drifted` (Observe mode or paused). `Synced` answers "did the last round-trip to
ZStack complete without API errors?" and says `ReconcilePaused` while paused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from vmclock.engine.conditions import READY, SYNCED, Condition
from vmclock.engine.events import listing
from vmclock.engine.phases import Phase

EXAMPLES = 3


def summarize(entries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    phases = Counter(str(e.get("phase")) for e in entries)
    return {
        "total": len(entries),
        "inSync": phases[Phase.IN_SYNC.value] + phases[Phase.APPLIED.value],
        "pending": phases[Phase.PENDING.value],
        "failed": phases[Phase.FAILED.value],
        "notFound": phases[Phase.NOT_FOUND.value],
        "conflicted": phases[Phase.CONFLICT.value],
        "drifted": phases[Phase.DRIFTED.value],
    }


def _examples(entries: Sequence[Mapping[str, Any]], *phases: Phase) -> str:
    wanted = {p.value for p in phases}
    return listing([str(e["uuid"]) for e in entries if e.get("phase") in wanted], EXAMPLES)


def ready_condition(
    entries: Sequence[Mapping[str, Any]], *, track: str, enforce: bool, paused: bool
) -> Condition:
    s = summarize(entries)
    total = s["total"]
    if s["inSync"] == total:
        return Condition(READY, "True", "Available", f"all {total} VMs have track {track}")
    if s["conflicted"]:
        owners = sorted(
            {str(e.get("conflictWith")) for e in entries if e.get("phase") == Phase.CONFLICT.value}
        )
        return Condition(
            READY,
            "False",
            "Conflict",
            f"{s['conflicted']} VMs are owned by older policies that want another track "
            f"({', '.join(owners)}): {_examples(entries, Phase.CONFLICT)}",
        )
    if s["notFound"]:
        return Condition(
            READY,
            "False",
            "VmNotFound",
            f"{s['notFound']} VMs do not exist in ZStack: {_examples(entries, Phase.NOT_FOUND)}",
        )
    if s["pending"] or s["failed"]:
        return Condition(
            READY,
            "False",
            "PartiallyApplied",
            f"{s['inSync']} of {total} VMs have track {track}; {s['failed']} failed, {s['pending']} pending: "
            f"{_examples(entries, Phase.FAILED, Phase.PENDING)}",
        )
    why = "paused" if paused and enforce else "Observe mode"
    return Condition(
        READY,
        "False",
        "Drifted",
        f"{s['drifted']} of {total} VMs have another track than {track} ({why}: not written): "
        f"{_examples(entries, Phase.DRIFTED)}",
    )


def synced_condition(*, paused: bool, first_error: str | None) -> Condition:
    if paused:
        return Condition(
            SYNCED,
            "False",
            "ReconcilePaused",
            "paused by annotation vmclock.zstack.io/paused; no ZStack writes",
        )
    if first_error is not None:
        return Condition(SYNCED, "False", "ReconcileError", first_error)
    return Condition(
        SYNCED, "True", "ReconcileSuccess", "the last ZStack round-trip completed without errors"
    )

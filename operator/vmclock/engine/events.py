"""Kubernetes Events for a reconcile, on transitions only.

A resync that finds nothing new must post nothing, or a policy with 1000 VMs would flood the namespace every
few minutes. So each Event is derived from a change: a write that happened this round (Applied,
DriftCorrected, Restored), or a VM/condition whose state differs from the previous status (DriftDetected,
ApiError, Conflict, Paused, Resumed). One Event per reason and round, listing a few VMs, not one per VM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vmclock.engine.apply import WriteOutcome
from vmclock.engine.phases import Phase, Purpose
from vmclock.engine.planning import Plan
from vmclock.engine.previous import PreviousVm

EventType = Literal["Normal", "Warning"]
LISTED = 5
PAUSED_REASON = "ReconcilePaused"


@dataclass(frozen=True)
class EventSpec:
    type: EventType
    reason: str
    message: str


def listing(uuids: Sequence[str], limit: int = LISTED) -> str:
    """The first `limit` UUIDs and how many more: messages stay short however many VMs are involved."""
    shown = ", ".join(uuids[:limit])
    return shown + (f" and {len(uuids) - limit} more" if len(uuids) > limit else "")


def _written(outcomes: Iterable[WriteOutcome], purpose: Purpose) -> list[WriteOutcome]:
    return sorted((o for o in outcomes if o.ok and o.write.purpose is purpose), key=lambda o: o.write.uuid)


def write_events(outcomes: Iterable[WriteOutcome]) -> list[EventSpec]:
    done = list(outcomes)
    events: list[EventSpec] = []
    for purpose, reason, verb in (
        (Purpose.APPLY, "Applied", "set"),
        (Purpose.DRIFT, "DriftCorrected", "corrected drift, set"),
        (Purpose.RESTORE, "Restored", "restored"),
    ):
        written = _written(done, purpose)
        if written:
            tracks = sorted({o.write.track for o in written})
            events.append(
                EventSpec(
                    "Normal",
                    reason,
                    f"{verb} track {'/'.join(tracks)} on {len(written)} VMs: "
                    f"{listing([o.write.uuid for o in written])}",
                )
            )
    return events


def _newly(
    entries: Sequence[Mapping[str, Any]], previous: Mapping[str, PreviousVm], phase: Phase
) -> list[str]:
    return [
        str(e["uuid"])
        for e in entries
        if e.get("phase") == phase.value
        and (previous.get(str(e["uuid"])) or PreviousVm("")).phase != phase.value
    ]


def _new_errors(
    entries: Sequence[Mapping[str, Any]], previous: Mapping[str, PreviousVm]
) -> list[tuple[str, str]]:
    found = []
    for entry in entries:
        code = (entry.get("error") or {}).get("code")
        before = previous.get(str(entry["uuid"]))
        if code and (before is None or before.error_code != code):
            found.append((str(entry["uuid"]), str(code)))
    return found


def transition_events(
    plan: Plan,
    outcomes: Iterable[WriteOutcome],
    entries: Sequence[Mapping[str, Any]],
    previous: Mapping[str, PreviousVm],
    *,
    was_paused: bool,
    paused: bool,
) -> list[EventSpec]:
    events: list[EventSpec] = []
    if paused != was_paused:
        events.append(
            EventSpec("Normal", "Paused", "paused: no ZStack writes until the annotation is removed")
            if paused
            else EventSpec("Normal", "Resumed", "resumed: reconciling again")
        )
    drifted = sorted({p.uuid for p in plan.vms if p.drift} | set(_newly(entries, previous, Phase.DRIFTED)))
    if drifted:
        events.append(
            EventSpec(
                "Warning", "DriftDetected", f"{len(drifted)} VMs have another track: {listing(drifted)}"
            )
        )
    events.extend(write_events(outcomes))
    conflicted = _newly(entries, previous, Phase.CONFLICT)
    if conflicted:
        events.append(
            EventSpec(
                "Warning",
                "Conflict",
                f"{len(conflicted)} VMs are owned by older policies: {listing(conflicted)}",
            )
        )
    errors = _new_errors(entries, previous)
    if errors:
        codes = sorted({code for _, code in errors})
        events.append(
            EventSpec(
                "Warning",
                "ApiError",
                f"ZStack calls failed for {len(errors)} VMs ({', '.join(codes)}): "
                f"{listing([u for u, _ in errors])}",
            )
        )
    return events

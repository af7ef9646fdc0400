"""Report: pure status and Events from a plan and its outcomes.

Conditions, the Ready/Synced verdicts, the per-VM status entries, the Events (on transitions only), the
selector's bounded listing and the size bound: everything a person reads about a policy is built here, from
data the reconcile hands in, so intent, progress and final statuses can never disagree.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vmclock.engine.pending import UNKNOWN_MARK, PendingRestart, op_mark
from vmclock.engine.plan import (
    HAS_DESIRED_TRACK,
    Phase,
    Plan,
    PreviousVm,
    Purpose,
    RestorePlan,
    RestoreStep,
    VmPlan,
    VmReading,
    WriteOutcome,
    describe_owner,
    failure_phase,
)
from vmclock.zstack.errors import ZStackError
from vmclock.zstack.models import Track, VmInventory

# --- conditions ---------------------------------------------------------------------------------------------
# metav1.Condition bookkeeping for `Ready` and `Synced`.
#
# `lastTransitionTime` changes only when a condition's status flips (API conventions), so an unchanged
# reconcile produces an identical condition list and no status write. Every condition carries the generation
# it describes, so clients (kubectl wait, Argo CD) can tell a stale verdict from a fresh one.

READY = "Ready"


SYNCED = "Synced"


MAX_MESSAGE = 1024


ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


def one_line(text: str, limit: int) -> str:
    """Messages end up in kubectl tables and Events: no newlines, bounded length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def merge_conditions(
    stored: Sequence[Mapping[str, Any]] | None,
    wanted: Sequence[Condition],
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The stored list with `wanted` conditions replaced; conditions of other types are kept as they are."""
    by_type = {c.get("type"): c for c in stored or () if isinstance(c, Mapping)}
    merged: list[dict[str, Any]] = []
    for condition in wanted:
        old = by_type.get(condition.type) or {}
        unchanged = old.get("status") == condition.status and isinstance(old.get("lastTransitionTime"), str)
        merged.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": one_line(condition.message, MAX_MESSAGE),
                "lastTransitionTime": old["lastTransitionTime"] if unchanged else now,
                "observedGeneration": generation,
            }
        )
    wanted_types = {c.type for c in wanted}
    merged.extend(dict(c) for t, c in by_type.items() if t not in wanted_types)
    return merged


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if isinstance(c, Mapping) and c.get("type") == kind), None)


def condition_reason(status: Mapping[str, Any], kind: str) -> str | None:
    condition = find_condition(status.get("conditions"), kind)
    reason = condition.get("reason") if condition else None
    return reason if isinstance(reason, str) and reason else None


# --- Ready and Synced ---------------------------------------------------------------------------------------
# Summary counters and the `Ready` / `Synced` verdicts for a finished reconcile.
#
# `Ready` answers "does every selected VM have the desired track?"; when it does not, the reason names the
# most
# actionable cause first: terminal ones a human must fix (`Conflict`, `VmNotFound`) before progress ones
# (`PartiallyApplied`) and `Drifted` (Observe mode or paused). `Synced` answers "did the last round-trip to
# ZStack complete without API errors?" and says `ReconcilePaused` while paused.

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
        "pendingRestart": sum(1 for e in entries if e.get("pendingRestart") is True),
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


# --- Effective: has the track taken effect? -----------------------------------------------------------------
# `Ready` says ZStack stores the desired track for every VM; `Effective` says whether the VMs run with it.
# ZStack reads the track only when it rebuilds a VM's domain, so a running Windows VM this policy changed
# waits for a restart (`pendingRestart`); Effective is False while any selected VM does, with how many and
# since when. It speaks only of restarts: a VM an Observe policy would change waits for a write, not a
# restart (Ready says Drifted), and a restart would change nothing for it, so it is not counted here.
# The message names the oldest wait's time, not its age: an age would change the status at every resync
# (the metric vmclock_policy_oldest_pending_restart_seconds gives the age).

EFFECTIVE = "Effective"


TRACK_EFFECTIVE = "TrackEffective"


RESTART_PENDING = "RestartPending"


RESTARTS_COMPLETED = "RestartsCompleted"


PENDING_RESTART_SINCE = "pendingRestartSince"  # in status: the oldest wait, for metrics and alerts


def oldest_pending_restart(entries: Sequence[Mapping[str, Any]]) -> str | None:
    """When the VM waiting longest for a restart started waiting (RFC 3339 UTC sorts as text)."""
    return min((str(e["pendingRestartSince"]) for e in entries if e.get("pendingRestartSince")), default=None)


def effective_condition(entries: Sequence[Mapping[str, Any]]) -> Condition:
    waiting = sorted(str(e["uuid"]) for e in entries if e.get("pendingRestart") is True)
    if not waiting:
        return Condition(EFFECTIVE, "True", TRACK_EFFECTIVE, "no selected VM waits for a restart")
    count = f"{len(waiting)} VMs wait" if len(waiting) > 1 else "1 VM waits"
    return Condition(
        EFFECTIVE,
        "False",
        RESTART_PENDING,
        f"{count} for a restart, the oldest since {oldest_pending_restart(entries)}: {RESTART_HINT} "
        f"({listing(waiting)})",
    )


def pending_restarts(
    entries: Iterable[Mapping[str, Any]], previous: Mapping[str, PreviousVm]
) -> dict[str, PendingRestart]:
    """What the record keeps of every waiting VM: since when, and the lastOpDate that will clear it (as
    seen now; an unreadable VM keeps the one seen before)."""
    kept: dict[str, PendingRestart] = {}
    for entry in entries:
        since = entry.get("pendingRestartSince")
        if entry.get("pendingRestart") is True and isinstance(since, str):
            uuid = str(entry["uuid"])
            mark = op_mark((entry.get("inventory") or {}).get("lastOpDate"))
            if mark == UNKNOWN_MARK and uuid in previous:
                mark = previous[uuid].op_mark
            kept[uuid] = PendingRestart(since, mark)
    return kept


def expected_restarts(
    waiting: Mapping[str, PendingRestart], plan: Plan, now: str
) -> dict[str, PendingRestart]:
    """Intent before action, for restarts too: the VMs this plan's writes will leave waiting, stored before
    the writes leave, so a crash during a long apply cannot forget a VM that status does not list. A write
    that then fails clears at the end of this reconcile, or after a crash at the next one (the VM is seen on
    another track)."""
    expected = dict(waiting)
    for vm in plan.vms:
        before = vm.reading.inventory
        waits = vm.write is not None and _pending_restart(None, before, None, wrote=True)
        if waits and before is not None and vm.uuid not in expected:
            expected[vm.uuid] = PendingRestart(now, op_mark(before.last_op_date))
    return expected


def pending_restart_count(status: Mapping[str, Any]) -> int:
    """How many VMs a stored status says wait for a restart; a status written before the summary counted
    them has only its listed VMs to say it."""
    counted = (status.get("summary") or {}).get("pendingRestart")
    if isinstance(counted, int):
        return counted
    return sum(1 for vm in status.get("vms") or () if isinstance(vm, Mapping) and vm.get("pendingRestart"))


def restarts_completed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[EventSpec]:
    """One Normal Event when the last waiting restart is seen done: the count went from some to none."""
    waited = pending_restart_count(before)
    if not waited or pending_restart_count(after):
        return []
    return [
        EventSpec(
            "Normal",
            RESTARTS_COMPLETED,
            f"no selected VM waits for a restart any more ({waited} did): the track is in effect",
        )
    ]


# --- Events, on transitions only ----------------------------------------------------------------------------
# Kubernetes Events for a reconcile, on transitions only.
#
# A resync that finds nothing new must post nothing, or a policy with 1000 VMs would flood the namespace
# every
# few minutes. So each Event is derived from a change: a write that happened this round (Applied,
# DriftCorrected, Restored), or a VM/condition whose state differs from the previous status (DriftDetected,
# ApiError, Conflict, Paused, Resumed). One Event per reason and round, listing a few VMs, not one per VM.

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


# --- one status entry per VM --------------------------------------------------------------------------------
# One `status.vms[]` entry per VM: phase, tracks, restart hint, error and a compact inventory.
#
# `previousTrack` is recorded the first time this policy writes a VM and then carried forward; it is what
# `Restore` puts back. `pendingRestart` follows ZStack's semantics: the track is read only when the VM's
# domain
# is rebuilt (next start or a ZStack reboot) and only for Windows platforms, so it is set when a running
# Windows VM was changed and cleared once the VM is seen not running or its `lastOpDate` moves on.

MAX_VM_MESSAGE = 256


RUNNING = "Running"


RESTART_HINT = "the track takes effect at the VM's next start or ZStack reboot"


def platform_advisory(inventory: VmInventory) -> str | None:
    if inventory.track_takes_effect:
        return None
    platform = inventory.platform or "unknown"
    return f"platform {platform}: ZStack stores the track but applies it only to Windows/WindowsVirtio VMs"


def _pending_restart(
    previous: PreviousVm | None, before: VmInventory | None, after: VmInventory | None, *, wrote: bool
) -> bool:
    if wrote:
        return before is not None and before.state == RUNNING and before.track_takes_effect
    if previous is None or not previous.pending_restart:
        return False
    if after is None:
        return True  # not readable this time: keep what we knew
    if after.state != RUNNING:
        return False
    seen, now = previous.op_mark, op_mark(after.last_op_date)
    return UNKNOWN_MARK in (seen, now) or seen == now


def _waiting_since(
    previous: PreviousVm | None, before: VmInventory | None, *, pending: bool, now: str
) -> str | None:
    """A VM written again while it still waited (drift corrected before its restart) keeps waiting since
    the first write: the restart it waits for is the same one."""
    if not pending:
        return None
    still = _pending_restart(previous, before, before, wrote=False)
    return (previous.pending_since if previous is not None and still else None) or now


def _entry(
    uuid: str,
    phase: Phase,
    *,
    observed: Track | None,
    previous_track: Track | None,
    last_applied: str | None,
    pending_since: str | None,
    messages: list[str],
    error: ZStackError | None,
    inventory: VmInventory | None,
    conflict_with: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"uuid": uuid, "phase": phase.value, "pendingRestart": pending_since is not None}
    optional: dict[str, Any] = {
        "observedTrack": observed,
        "previousTrack": previous_track,
        "lastAppliedTime": last_applied,
        "pendingRestartSince": pending_since,
        "message": one_line("; ".join(messages), MAX_VM_MESSAGE) if messages else None,
        "conflictWith": conflict_with,
        "error": error.to_status() if error is not None else None,
        "inventory": inventory.to_status() if inventory is not None else None,
    }
    entry.update({k: v for k, v in optional.items() if v is not None})
    return entry


def selected_vm_entry(
    plan: VmPlan,
    outcome: WriteOutcome | None,
    previous: PreviousVm | None,
    *,
    desired: Track,
    now: str,
    unsent: str | None = None,
) -> dict[str, Any]:
    """`unsent`: why a planned write has not been sent (yet): the VM is Pending, and its previousTrack is
    recorded already, because this entry may be the intent saved before the write goes out."""
    reading = plan.reading
    phase, observed, inventory, error = plan.phase, reading.track, reading.inventory, reading.error
    previous_track = previous.previous_track if previous else None
    last_applied = previous.last_applied_time if previous else None
    messages: list[str] = []
    if outcome is None and unsent is not None and plan.write is not None:
        previous_track = previous_track or reading.track
        phase = Phase.PENDING
        messages.append(f"track {desired}: {unsent}")
    if outcome is not None:
        previous_track = previous_track or reading.track
        if outcome.error is None:
            phase, observed, error, last_applied = Phase.APPLIED, outcome.write.track, None, now
            inventory = outcome.inventory or inventory
        else:
            phase, error = failure_phase(outcome.error), outcome.error
            messages.append(f"writing track {desired} failed; retried at the next reconcile")
    wrote = outcome is not None and outcome.ok
    # A VM seen on another track than this policy's waits for no restart of ours: a restart would apply
    # that other track (a wait recorded before a write that then failed, or drift left in Observe mode).
    ours = observed in (None, desired)
    pending = ours and _pending_restart(previous, reading.inventory, inventory, wrote=wrote)
    if plan.owner is not None:
        messages.append(describe_owner(plan.owner))
    elif phase is Phase.NOT_FOUND:
        messages.append("ZStack does not know this VM")
    elif phase is Phase.DRIFTED:
        messages.append(f"observed track {observed}, desired {desired}; not written (Observe mode or paused)")
    if inventory is not None and (advisory := platform_advisory(inventory)):
        messages.append(advisory)
    if pending:
        messages.append(RESTART_HINT)
    return _entry(
        plan.uuid,
        phase,
        observed=observed,
        previous_track=previous_track,
        last_applied=last_applied,
        pending_since=_waiting_since(previous, reading.inventory, pending=pending, now=now),
        messages=messages,
        error=error,
        inventory=inventory,
        conflict_with=plan.owner.ref if plan.owner is not None else None,
    )


ELSEWHERE_WHY = (
    "it was changed through another management node or account than the connection reaches now, "
    "and is not found through this one"
)


def restore_entry(
    plan: RestorePlan, outcome: WriteOutcome | None, previous: PreviousVm | None, *, now: str
) -> dict[str, Any] | None:
    """An entry for a VM dropped from spec.vmUuids that still awaits its restore; None once it is done."""
    if plan.step is RestoreStep.DONE or (outcome is not None and outcome.ok):
        return None
    reading: VmReading = plan.reading
    error = outcome.error if outcome is not None else reading.error
    if plan.step is RestoreStep.DEFERRED:
        phase, why = Phase.PENDING, "deferred while the policy is paused"
    elif plan.step is RestoreStep.ELSEWHERE:
        phase, why = Phase.PENDING, f"waits: {ELSEWHERE_WHY}"
    else:
        phase, why = (
            (failure_phase(error), "failed; retried at the next reconcile")
            if error
            else (
                Phase.PENDING,
                "pending",
            )
        )
    return _entry(
        plan.uuid,
        phase,
        observed=reading.track,
        previous_track=plan.track,
        last_applied=previous.last_applied_time if previous else None,
        pending_since=(previous.pending_since or now) if previous and previous.pending_restart else None,
        messages=[f"removed from spec.vmUuids; restore to track {plan.track} {why}"],
        error=error,
        inventory=reading.inventory,
    )


# --- the size bound -----------------------------------------------------------------------------------------
# Keep a policy's status small enough for the API server and for watchers.
#
# A full entry with its inventory is about 550 bytes, so 1000 VMs would be ~550 KB. The budget (256 KiB) is
# met by shedding detail where it matters least, one stage at a time until the status fits:
# 1. VMs that are fine (InSync/Applied) keep only name/state/platform of their inventory;
# 2. VMs that are fine lose inventory and message;
# 3. every VM loses inventory and message, and errors keep only their code.
# A VM with `pendingRestart` always keeps `state` and `lastOpDate`: the next reconcile needs them to clear
# the
# flag. The summary and conditions still count and name every VM, so nothing is hidden, only abbreviated.

STATUS_BUDGET = 256 * 1024


_RESTART_KEYS = ("state", "lastOpDate")


def status_size(status: dict[str, Any]) -> int:
    return len(json.dumps(status, separators=(",", ":")))


def _keep_inventory(entry: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    inventory = entry.get("inventory") or {}
    kept = {k: inventory[k] for k in keys if k in inventory}
    out = {k: v for k, v in entry.items() if k != "inventory"}
    if kept:
        out["inventory"] = kept
    return out


def _slim(entry: dict[str, Any]) -> dict[str, Any]:
    extra = ("lastOpDate",) if entry.get("pendingRestart") else ()
    return _keep_inventory(entry, ("name", "state", "platform", *extra))


def _bare(entry: dict[str, Any]) -> dict[str, Any]:
    out = _keep_inventory(entry, _RESTART_KEYS if entry.get("pendingRestart") else ())
    out.pop("message", None)
    return out


def _minimal(entry: dict[str, Any]) -> dict[str, Any]:
    out = _bare(entry)
    if "error" in out:
        out["error"] = {"code": out["error"].get("code", "")}
    return out


Shrinker = Callable[[dict[str, Any]], dict[str, Any]]


_STAGES: tuple[tuple[Shrinker, bool], ...] = ((_slim, False), (_bare, False), (_minimal, True))


def bound_status(status: dict[str, Any], budget: int = STATUS_BUDGET) -> dict[str, Any]:
    for shrink, everyone in _STAGES:
        if status_size(status) <= budget:
            break
        status = {
            **status,
            "vms": [
                shrink(e) if everyone or e.get("phase") in HAS_DESIRED_TRACK else e
                for e in status.get("vms", [])
            ],
        }
    return status


MAX_LISTED = 500  # well under the CRD's maxItems 2000 and, with full entries, near the 256 KiB budget


@dataclass(frozen=True)
class Selection:
    """One resolution of spec.selector: `readings` of the VMs the policy manages, `matched` (all the
    selector picked) and how many of them policies naming them by UUID took (`excepted`)."""

    readings: Mapping[str, VmReading]
    matched: int
    excepted: int

    @property
    def uuids(self) -> tuple[str, ...]:
        return tuple(sorted(self.readings))

    def status(self, stamp: str, omitted: int) -> dict[str, Any]:
        message = (
            f"{self.excepted} matched VMs are left to policies that list them in spec.vmUuids"
            if self.excepted
            else ""
        )
        return {"matched": self.matched, "resolvedAt": stamp, "omitted": omitted, "message": message}


def _needs_attention(entry: Mapping[str, Any]) -> bool:
    return entry.get("phase") not in HAS_DESIRED_TRACK or entry.get("pendingRestart") is True


def listed_first(
    entries: Sequence[dict[str, Any]], bound: int = MAX_LISTED
) -> tuple[list[dict[str, Any]], int]:
    """At most `bound` entries, those needing attention first, each group by UUID; and how many were left."""
    ordered = sorted(entries, key=lambda e: (not _needs_attention(e), str(e.get("uuid"))))
    return ordered[:bound], max(0, len(ordered) - bound)

"""A plan as a table for people (the default) or as JSON/YAML for CI jobs and scripts.

The table lists every VM that needs a reader's attention (changes, restores, VMs owned elsewhere, missing
or unreadable ones, differences left unwritten) and only counts the VMs already in sync, so a 10,000-VM
selector policy that changes three VMs prints three lines. The machine formats list every VM.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO, Any

import yaml

from vmclock.preview.outcome import WRITES, Action, ClusterDiff, PolicyPreview, VmPreview

FORMATS = ("table", "json", "yaml")
_LABELS = {
    Action.CHANGE: "change",
    Action.RESTORE: "restore",
    Action.IN_SYNC: "in sync",
    Action.NOT_WRITTEN: "not written",
    Action.OWNED: "owned elsewhere",
    Action.NOT_FOUND: "not found",
    Action.UNREADABLE: "unreadable",
}


def total_writes(previews: Sequence[PolicyPreview]) -> int:
    return sum(p.writes for p in previews)


def _vm_document(vm: VmPreview) -> dict[str, Any]:
    document: dict[str, Any] = {
        "uuid": vm.uuid,
        "action": vm.action.value,
        "name": vm.name,
        "platform": vm.platform,
        "state": vm.state,
        "currentTrack": vm.current,
        "targetTrack": vm.target,
        "inert": vm.inert,
        "pendingRestart": vm.pending_restart,
        "owner": vm.owner,
        "ownerTrack": vm.owner_track,
        "error": vm.error,
    }
    return {k: v for k, v in document.items() if v not in ("", None)}


def _diff_document(diff: ClusterDiff) -> dict[str, Any]:
    return {
        "exists": diff.exists,
        "trackBefore": diff.track_before,
        "added": list(diff.added),
        "released": list(diff.released),
    }


def _policy_document(preview: PolicyPreview) -> dict[str, Any]:
    document: dict[str, Any] = {
        "namespace": preview.namespace,
        "name": preview.name,
        "source": preview.source,
        "track": preview.track,
        "targets": "selector" if preview.by_selector else "vmUuids",
        "managementPolicy": preview.management_policy,
        "deletionPolicy": preview.deletion_policy,
        "paused": preview.paused,
        "matched": preview.matched,
        "summary": {**preview.counts, "inert": preview.inert, "pendingRestart": preview.pending_restart},
        "vms": [_vm_document(vm) for vm in preview.vms],
    }
    if preview.diff is not None:
        document["againstCluster"] = _diff_document(preview.diff)
    return document


def plan_document(previews: Sequence[PolicyPreview], notes: Sequence[str]) -> dict[str, Any]:
    return {
        "changes": total_writes(previews),
        "policies": [_policy_document(p) for p in previews],
        "notes": list(notes),
    }


def _track_cell(vm: VmPreview) -> str:
    if vm.action in WRITES or vm.action is Action.NOT_WRITTEN:
        return f"{vm.current or '?'} -> {vm.target}"
    return vm.current or ""


def _note(vm: VmPreview) -> str:
    notes = []
    if vm.owner:
        notes.append(f"{vm.owner} wants {vm.owner_track}")
    if vm.pending_restart:
        notes.append("running: takes effect at the next start")
    if vm.inert:
        notes.append(f"inert on {vm.platform}")
    if vm.error:
        notes.append(vm.error)
    return "; ".join(notes)


def _rows(vms: Sequence[VmPreview]) -> list[list[str]]:
    return [
        [_LABELS[vm.action], vm.uuid, vm.name, vm.platform, vm.state, _track_cell(vm), _note(vm)]
        for vm in vms
        if vm.action is not Action.IN_SYNC
    ]


def _table(rows: list[list[str]], indent: str) -> list[str]:
    header = ["ACTION", "UUID", "NAME", "PLATFORM", "STATE", "TRACK", "NOTE"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _summary(preview: PolicyPreview) -> str:
    counts = ", ".join(f"{n} {_LABELS[Action(a)]}" for a, n in preview.counts.items() if n)
    restarts = preview.pending_restart
    return f"{counts or 'no VMs'}; {preview.inert} inert (non-Windows), {restarts} pending restart"


def _diff_lines(diff: ClusterDiff, track: str) -> list[str]:
    if not diff.exists:
        return [f"  against the cluster: a new policy; it adds {len(diff.added)} VMs"]
    lines = []
    if diff.track_before is not None and diff.track_before != track:
        lines.append(f"  against the cluster: track {diff.track_before} -> {track}")
    lines.append(f"  against the cluster: adds {len(diff.added)} VMs, releases {len(diff.released)} VMs")
    lines += [f"    + {uuid}" for uuid in diff.added]
    lines += [f"    - {uuid}" for uuid in diff.released]
    return lines


def _policy_lines(preview: PolicyPreview) -> list[str]:
    targets = (
        f"selector matched {preview.matched} VMs" if preview.by_selector else f"{preview.matched} VM UUIDs"
    )
    paused = ", paused" if preview.paused else ""
    lines = [
        f"VmClockPolicy {preview.namespace}/{preview.name} ({preview.source})",
        f"  track {preview.track}, {preview.management_policy}, deletionPolicy {preview.deletion_policy}"
        f"{paused}, {targets}",
    ]
    if preview.by_selector and preview.matched == 0:
        lines.append("  the selector matches no VM in ZStack now")
    lines.append(f"  {_summary(preview)}")
    rows = _rows(preview.vms)
    if rows:
        lines += _table(rows, "  ")
    if preview.diff is not None:
        lines += _diff_lines(preview.diff, preview.track)
    return lines


def render(previews: Sequence[PolicyPreview], notes: Sequence[str], output: str, out: IO[str]) -> None:
    if output == "json":
        json.dump(plan_document(previews, notes), out, indent=2)
        out.write("\n")
        return
    if output == "yaml":
        yaml.safe_dump(plan_document(previews, notes), out, sort_keys=False)
        return
    for preview in previews:
        out.write("\n".join(_policy_lines(preview)) + "\n\n")
    for note in notes:
        out.write(f"Note: {note}\n")
    writes = total_writes(previews)
    policies = f"{len(previews)} {'policy' if len(previews) == 1 else 'policies'}"
    if writes:
        out.write(f"Plan: {writes} VM writes for {policies}.\n")
    else:
        out.write(f"No changes: applying {policies} would write nothing.\n")

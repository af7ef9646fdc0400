"""Per-VM phases and write purposes, as spelled in the CRD (docs/api.md "Phases")."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vmclock.zstack.errors import ZStackError
from vmclock.zstack.models import Track


class Phase(StrEnum):
    IN_SYNC = "InSync"
    APPLIED = "Applied"
    DRIFTED = "Drifted"
    PENDING = "Pending"
    FAILED = "Failed"
    NOT_FOUND = "NotFound"
    CONFLICT = "Conflict"


HAS_DESIRED_TRACK = frozenset({Phase.IN_SYNC.value, Phase.APPLIED.value})


def failure_phase(error: ZStackError) -> Phase:
    """The phase of a VM whose read or write failed: retryable trouble is only Pending."""
    if error.not_found:
        return Phase.NOT_FOUND
    return Phase.PENDING if error.retryable else Phase.FAILED


class Purpose(StrEnum):
    """Why a track is written; decides which Event reports the write."""

    APPLY = "apply"  # first time this policy (or this generation) brings the VM to the desired track
    DRIFT = "drift"  # the VM had the desired track and someone changed it behind our back
    RESTORE = "restore"  # put back the track the VM had before this policy changed it


@dataclass(frozen=True)
class Write:
    uuid: str
    track: Track
    purpose: Purpose

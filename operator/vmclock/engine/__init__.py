"""The reconcile engine for VmClockPolicy (observe -> plan -> apply -> status), free of kopf and K8s I/O.

Entry points: `reconcile()` for one policy, `restore_all()` for a `Restore` policy's deletion,
`reconciling_status()` for the mark written before work on a new generation, and `PolicyState` /
`PolicyClaim` to describe policies. One reconcile reads in a handful of files: reconcile.py (the linear
path), external.py (the seam to ZStack: observe, apply), plan.py (pure decisions), report.py (pure status
and Events), records.py (the previous-track record's port and format) and spec.py (the API's vocabulary).
"""

from vmclock.engine.external import ClockTrackClient
from vmclock.engine.plan import Others, PolicyClaim, overlapping
from vmclock.engine.reconcile import (
    Connect,
    ConnectionUnavailable,
    PolicyState,
    ReconcileResult,
    RestoreResult,
    needs_reconciling_mark,
    reconcile,
    reconciling_status,
    restore_all,
)
from vmclock.engine.report import EventSpec
from vmclock.engine.spec import InvalidSpec, PolicySpec, parse_policy_spec

__all__ = [
    "ClockTrackClient",
    "Connect",
    "ConnectionUnavailable",
    "EventSpec",
    "InvalidSpec",
    "Others",
    "PolicyClaim",
    "PolicySpec",
    "PolicyState",
    "ReconcileResult",
    "RestoreResult",
    "needs_reconciling_mark",
    "overlapping",
    "parse_policy_spec",
    "reconcile",
    "reconciling_status",
    "restore_all",
]

"""The reconcile engine for VmClockPolicy (observe -> plan -> apply -> status), free of kopf and K8s I/O.

Entry points: `reconcile()` for one policy, `restore_all()` for a `Restore` policy's deletion,
`reconciling_status()` for the mark written before work on a new generation, and `PolicyState` /
`PolicyClaim` to describe policies. Everything else is pure functions over dataclasses.
"""

from vmclock.engine.events import EventSpec
from vmclock.engine.ownership import PolicyClaim, overlapping
from vmclock.engine.ports import ClockTrackClient
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
from vmclock.engine.spec import InvalidSpec, PolicySpec, parse_policy_spec

__all__ = [
    "ClockTrackClient",
    "Connect",
    "ConnectionUnavailable",
    "EventSpec",
    "InvalidSpec",
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

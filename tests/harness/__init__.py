"""End-to-end harness: the simulator and the operator as real processes, object builders, and waiting.

Shared by ``tests/integration`` (pytest fixtures in its conftest) and the ``make dev`` sandbox
(``tests/sandbox``).  Everything here talks to real processes over loopback; nothing is mocked.
"""

from .objects import (
    API_VERSION,
    GROUP,
    PAUSED,
    RECONCILE_REQUESTED_AT,
    Obj,
    access_key_secret,
    account_secret,
    condition,
    condition_is,
    connection,
    phases,
    policy,
    selector_policy,
    vm_entries,
)
from .operator import OperatorError, OperatorProcess
from .processes import ManagedProcess, free_port
from .simulator import SimStats, SimulatorAdmin, SimulatorError, SimulatorProcess, SimVm, SimWrite
from .tenant import CONNECTION, POLICY, KubectlLike, Tenant
from .waiting import holds_for, wait_for

__all__ = [
    "API_VERSION",
    "CONNECTION",
    "GROUP",
    "PAUSED",
    "POLICY",
    "RECONCILE_REQUESTED_AT",
    "KubectlLike",
    "ManagedProcess",
    "Obj",
    "OperatorError",
    "OperatorProcess",
    "SimStats",
    "SimVm",
    "SimWrite",
    "SimulatorAdmin",
    "SimulatorError",
    "SimulatorProcess",
    "Tenant",
    "access_key_secret",
    "account_secret",
    "condition",
    "condition_is",
    "connection",
    "free_port",
    "holds_for",
    "phases",
    "policy",
    "selector_policy",
    "vm_entries",
    "wait_for",
]

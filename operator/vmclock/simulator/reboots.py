"""RebootVmInstance as ZStack runs it, and the record of every reboot for tests.

ZStack facts (zstackio/zstack master 5a29293bd5, read for this module; no code copied):
- Route: `APIRebootVmInstanceMsg` is `@RestRequest(path="/vm-instances/{uuid}/actions", method=PUT,
  isAction=true, responseClass=APIRebootVmInstanceEvent)`, so the body key is `rebootVmInstance`; `uuid` is
  `@APIParam(resourceType=VmInstanceVO.class)` (an unknown VM: SYS.1003 like SetVmClockTrack).
  `header/.../vm/APIRebootVmInstanceMsg.java`.
- An async API: 202 + location, the job's result is `APIRebootVmInstanceEvent` with `inventory` (the whole
  VmInstanceInventory, reloaded). `header/.../vm/APIRebootVmInstanceEvent.java`.
- `VmInstanceBase.handle(APIRebootVmInstanceMsg)` sends an internal `RebootVmInstanceMsg`, run in the VM's
  own chain (`syncThreadName`, one operation per VM at a time); `rebootVm(Message, Completion)` first calls
  `validateOperationByState(msg, state, null)`. `compute/.../vm/VmInstanceBase.java`.
- Allowed states for `RebootVmInstanceMsg` (`AbstractVmInstance`'s static `allowedOperations`): Running,
  NoState and Crashed. Anywhere else the check fails with `VM.1010` (NOT_IN_CORRECT_STATE) "current vm
  instance state[%s] doesn't allow to proceed message[%s], allowed states are %s" (the set printed as a
  Java HashSet: `[Crashed, NoState, Running]`). `compute/.../vm/AbstractVmInstance.java`.
- The internal reply wraps it as `VM.1003` (REBOOT_ERROR) and the API handler wraps that again as `VM.1003`,
  each keeping the cause's details: the failed job answers 503 `{"error": {"code": "VM.1003", ...,
  "cause": {"code": "VM.1003", ..., "cause": {"code": "VM.1010", ...}}}}`. `VmErrors.java`,
  `conf/errorCodes/vm.xml` (1003 "Unable to reboot a vm").
- State machine (`header/.../vm/VmInstanceState.java`): Running -rebooting-> Rebooting -running-> Running.
  The reboot flow is stop-on-hypervisor + start-on-hypervisor (`VmInstanceManager.xml`
  `rebootVmWorkFlowElements`), so the domain XML is rebuilt: the stored clock track takes effect. A failure
  to stop or start on the hypervisor runs `checkState` and leaves whatever the host reports (often Stopped,
  or Unknown), with the job failed (`VM.1003` wrapping the host's error).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from vmclock.simulator.errors import ApiError
from vmclock.simulator.state import SimState

REBOOT_MESSAGE = "org.zstack.header.vm.RebootVmInstanceMsg"
REBOOTABLE = ("Crashed", "NoState", "Running")  # Java HashSet order of the allowed states
REBOOT_ERROR = "VM.1003"
NOT_IN_CORRECT_STATE = "VM.1010"
HOST_START_FAILED = "HOST.1005"  # HostErrors.FAILED_TO_START_VM_ON_HYPERVISOR
STUCK_STATES = ("Stopped", "Unknown")
"""What a VM that does not come back from a reboot is left in (the `rebootFailures` fault)."""


@dataclass(frozen=True)
class Reboot:
    """One RebootVmInstance job that reached the hypervisor: from entering Rebooting to its end."""

    uuid: str
    start: float
    end: float
    ok: bool


def reboot_error(cause: ApiError) -> ApiError:
    """The double REBOOT_ERROR wrapping of the internal message and the API handler."""
    return ApiError(REBOOT_ERROR, cause.details, ApiError(REBOOT_ERROR, cause.details, cause))


def not_rebootable(state: str) -> ApiError:
    allowed = ", ".join(REBOOTABLE)
    return reboot_error(
        ApiError(
            NOT_IN_CORRECT_STATE,
            f"current vm instance state[{state}] doesn't allow to proceed message[{REBOOT_MESSAGE}], "
            f"allowed states are [{allowed}]",
        )
    )


class RebootLog:
    """Every reboot, finished or running, so a test can assert how many ran at once."""

    def __init__(self) -> None:
        self.done: list[Reboot] = []
        self.running: dict[str, float] = {}
        self.max_concurrent = 0

    def started(self, uuid: str) -> None:
        self.running[uuid] = time.time()
        self.max_concurrent = max(self.max_concurrent, len(self.running))

    def ended(self, uuid: str, *, ok: bool) -> None:
        self.done.append(Reboot(uuid, self.running.pop(uuid), time.time(), ok))

    def reset(self) -> None:
        self.done.clear()
        self.max_concurrent = len(self.running)

    def to_json(self) -> dict[str, Any]:
        return {
            "reboots": [{"uuid": r.uuid, "start": r.start, "end": r.end, "ok": r.ok} for r in self.done],
            "rebooting": sorted(self.running),
            "maxConcurrentReboots": self.max_concurrent,
        }


async def reboot(state: SimState, log: RebootLog, uuid: str, *, seconds: float, stuck: str | None) -> None:
    """Run one reboot in the VM's chain (the caller holds it); `stuck`: the state a VM that does not come
    back is left in (the job then fails), None for a healthy reboot."""
    vm = state.vms.get(uuid)
    if vm is None:  # expunged while the job waited for the VM's chain
        raise ApiError("SYS.1003", f"Unable to find VmInstance[uuid:{uuid}], it may have been deleted")
    if vm.state not in REBOOTABLE:
        raise not_rebootable(vm.state)
    vm.change_state("Rebooting", time.time())
    log.started(uuid)
    try:
        await asyncio.sleep(seconds)
    finally:
        if uuid in state.vms and stuck is None:
            state.boot(uuid)
        elif uuid in state.vms and stuck is not None:
            vm.change_state(stuck, time.time())
        log.ended(uuid, ok=stuck is None)
    if stuck is not None:
        raise reboot_error(
            ApiError(HOST_START_FAILED, f"failed to start vm[uuid:{uuid}] on the hypervisor; it is {stuck}")
        )

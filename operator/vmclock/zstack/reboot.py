"""RebootVmInstance: the one ZStack call that makes a stored clock track take effect on a running VM.

ZStack rebuilds the domain XML (stop and start on the hypervisor), so the track stored by SetVmClockTrack
becomes the one the guest runs with. Only a Running (or NoState/Crashed) VM can be rebooted; any other state
fails the job with VM.1003 wrapping VM.1010 (see the simulator's reboots.py for the sources).

A reboot is sent once: a retried submit after an ambiguous failure could reboot a guest twice, which is
worse than a reboot left for the next reconcile. Only an expired session is logged in again (nothing ran).
"""

from __future__ import annotations

from typing import Any

from vmclock.zstack.calls import Api
from vmclock.zstack.errors import MaySend, ZStackError
from vmclock.zstack.inventory import parse_inventory
from vmclock.zstack.models import VM_UUID_RE, VmInventory

REBOOT_API = "RebootVmInstance"
REBOOT_ERROR = "VM.1003"  # the reboot flow failed: the guest may have been stopped
NOT_IN_CORRECT_STATE = "VM.1010"  # the VM's state check refused the reboot before the flow ran
CLIENT_PREFIX = "CLIENT."  # our own codes: no answer of ZStack's, so whether it ran is unknown


async def reboot_vm(api: Api, uuid: str, *, may_send: MaySend | None = None) -> VmInventory:
    """Reboot and wait for the job; the VM's inventory as ZStack reloaded it after the reboot."""
    if not VM_UUID_RE.match(uuid):
        raise ValueError(f"VM uuid {uuid!r} is not 32 lowercase hex characters")
    body: dict[str, Any] = {"rebootVmInstance": {}, "systemTags": [], "userTags": []}
    result = await api.job(
        REBOOT_API, "PUT", f"/v1/vm-instances/{uuid}/actions", body, may_send=may_send, retry=False
    )
    return parse_inventory(result.get("inventory"), REBOOT_API)


def refused(error: ZStackError) -> bool:
    """ZStack answered that it did not reboot the VM: an error from its API pipeline (SYS.*, ID.*: checked
    before the VM's chain, zstack-api.md §3) or from the VM's state check (VM.1003 caused by VM.1010). A
    failed reboot flow (VM.1003 for another cause) or a lost answer (a client code) may have touched it."""
    if error.code.startswith(CLIENT_PREFIX):
        return False
    if error.code == REBOOT_ERROR:
        return error.root_cause_code == NOT_IN_CORRECT_STATE
    return True

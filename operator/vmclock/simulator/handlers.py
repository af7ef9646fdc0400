"""What each simulated API does once the pipeline let it through (the message handlers).

Parameter checks, the session check and fault injection already happened in the mediator; handlers only
do the work and shape the reply the way each API's `@RestResponse` does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from vmclock.simulator.config import SimulatorConfig
from vmclock.simulator.errors import ApiError, argerr
from vmclock.simulator.jobs import ChainQueues
from vmclock.simulator.model import Call, Reply
from vmclock.simulator.queries import QuerySpec, Table, run_query
from vmclock.simulator.state import SimState
from vmclock.simulator.stats import Stats
from vmclock.simulator.tracks import CATEGORY, CLOCK_TRACK, TRACKS

VM_CLASS = "org.zstack.header.vm.VmInstanceInventory"
SESSION_CLASS = "org.zstack.header.identity.SessionInventory"
RESOURCE_CONFIG_CLASS = "org.zstack.resourceconfig.ResourceConfigInventory"
GLOBAL_CONFIG_CLASS = "org.zstack.core.config.GlobalConfigInventory"
SYSTEM_TAG_CLASS = "org.zstack.header.tag.SystemTagInventory"
QGA_TASK_MESSAGE = "org.zstack.header.vm.SetVmQgaSyncClockTaskMsg"

VM_FIELDS = frozenset(
    (
        "uuid",
        "name",
        "description",
        "zoneUuid",
        "clusterUuid",
        "imageUuid",
        "hostUuid",
        "lastHostUuid",
        "instanceOfferingUuid",
        "rootVolumeUuid",
        "platform",
        "architecture",
        "defaultL3NetworkUuid",
        "type",
        "hypervisorType",
        "memorySize",
        "reservedMemorySize",
        "cpuNum",
        "cpuSpeed",
        "allocatorStrategy",
        "createDate",
        "lastOpDate",
        "state",
        "vmNics",
        "allVolumes",
        "vmCdRoms",
        "guestOsType",
    )
)
RESOURCE_CONFIG_FIELDS = frozenset(
    (
        "uuid",
        "resourceUuid",
        "resourceType",
        "name",
        "description",
        "category",
        "value",
        "createDate",
        "lastOpDate",
    )
)
GLOBAL_CONFIG_FIELDS = frozenset(
    (
        "name",
        "category",
        "description",
        "defaultValue",
        "value",
    )
)
SYSTEM_TAG_FIELDS = frozenset(
    (
        "uuid",
        "resourceUuid",
        "resourceType",
        "tag",
        "type",
        "inherent",
        "createDate",
        "lastOpDate",
    )
)


def _query(table: Table, spec: QuerySpec | None) -> Reply:
    return Reply(run_query(table, spec or QuerySpec()), {"inventories": table.java_class})


class ZStackApis:
    """The handlers, bound to the simulator's state; `catalog.build_catalog` wires them to routes."""

    def __init__(self, config: SimulatorConfig, state: SimState, stats: Stats, chains: ChainQueues) -> None:
        self._config = config
        self._state = state
        self._stats = stats
        self._chains = chains

    # --- identity and management node -------------------------------------------------------------

    async def log_in_by_account(self, call: Call) -> Reply:
        session = self._state.sessions.login(call.params["accountName"], call.params["password"])
        if session is None:
            raise ApiError("ID.1000", "wrong account name or password")
        return Reply({"inventory": session.inventory()}, {"inventory": SESSION_CLASS})

    async def log_out(self, call: Call) -> Reply:
        self._state.sessions.logout(call.params.get("sessionUuid", ""))
        return Reply({})

    async def validate_session(self, call: Call) -> Reply:
        return Reply({"valid": self._state.sessions.valid(call.params["sessionUuid"])})

    async def get_version(self, call: Call) -> Reply:
        return Reply({"version": self._config.zstack_version})

    async def is_ready_to_go(self, call: Call) -> Reply:
        return Reply({})  # a management node that is not ready never gets here (mediator: SYS.1010)

    # --- VMs and their clock track ----------------------------------------------------------------

    async def query_vm_instance(self, call: Call) -> Reply:
        tags = self._state.system_tags
        table = Table(
            VM_CLASS,
            [vm.inventory() for vm in self._state.vms.values()],
            VM_FIELDS,
            {"__systemTag__": lambda row: tags.tags_of(row["uuid"]), "__userTag__": lambda row: []},
        )
        return _query(table, call.query)

    async def set_vm_clock_track(self, call: Call) -> Reply:
        uuid, track = call.params["uuid"], call.params["track"]
        async with self._chains.chain(f"set-vm-clock-track-{uuid}"):
            await asyncio.sleep(self._config.job_latency)
            vm = self._state.vm(uuid)
            wants_qga = "syncAfterVMResume" in call.params or "intervalInSeconds" in call.params
            if wants_qga and vm.state != "Running":
                # The QGA sync-clock step is closed source; a VM that is not running cannot reach its agent.
                cause = ApiError(
                    "VM.1010",
                    f"current vm instance state[{vm.state}] doesn't allow to proceed"
                    f" message[{QGA_TASK_MESSAGE}], allowed states are [Running]",
                )
                raise ApiError("SYS.1006", f"failed to set the QGA sync-clock task of vm[uuid:{uuid}]", cause)
            self._state.tracks.set(uuid, track)
            self._stats.record_write(uuid, track)
            return Reply({"inventory": vm.inventory()}, {"inventory": VM_CLASS})

    # --- resource configurations (>= 4.3.12 for vm.clock.track) ----------------------------------

    def require_clock_track_config(self, call: Call) -> None:
        """ResourceConfigApiInterceptor: the (category, name) must be a bindable global config. Before
        4.3.12 ZStack has no `vm.clock.track` config at all, so it is refused the same way."""
        category, name = call.params["category"], call.params["name"]
        if (category, name) != (CATEGORY, CLOCK_TRACK) or not self._state.features.track_in_resource_config:
            raise argerr(f"no global config[category:{category}, name:{name}] found")

    async def get_resource_config(self, call: Call) -> Reply:
        configs = self._state.resource_configs
        uuid = call.params["resourceUuid"]
        effective = [configs.row_inventory(uuid)] if uuid in configs.rows else []
        return Reply(
            {"value": configs.effective(uuid), "effectiveConfigs": effective},
            {"effectiveConfigs": RESOURCE_CONFIG_CLASS},
        )

    async def update_resource_config(self, call: Call) -> Reply:
        value, uuid = call.params["value"], call.params["resourceUuid"]
        if value not in TRACKS:
            raise argerr(
                f"the value[{value}] is not in the valid values[{', '.join(TRACKS)}] of {CLOCK_TRACK}"
            )
        await asyncio.sleep(self._config.job_latency)
        self._state.resource_configs.set(uuid, value)
        return Reply(
            {"inventory": self._state.resource_configs.row_inventory(uuid)},
            {"inventory": RESOURCE_CONFIG_CLASS},
        )

    async def delete_resource_config(self, call: Call) -> Reply:
        await asyncio.sleep(self._config.job_latency)
        self._state.resource_configs.delete(call.params["resourceUuid"])
        return Reply({})

    async def query_resource_config(self, call: Call) -> Reply:
        rows = self._state.resource_configs.row_inventories()
        return _query(Table(RESOURCE_CONFIG_CLASS, rows, RESOURCE_CONFIG_FIELDS), call.query)

    async def query_global_config(self, call: Call) -> Reply:
        features = self._state.features
        rows: list[dict[str, Any]] = (
            [self._state.resource_configs.global_inventory()] if features.track_in_resource_config else []
        )
        return _query(Table(GLOBAL_CONFIG_CLASS, rows, GLOBAL_CONFIG_FIELDS), call.query)

    async def query_system_tag(self, call: Call) -> Reply:
        rows = self._state.system_tags.tag_inventories()
        return _query(Table(SYSTEM_TAG_CLASS, rows, SYSTEM_TAG_FIELDS), call.query)

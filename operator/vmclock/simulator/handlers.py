"""What each simulated API does once the pipeline let it through (the message handlers).

Parameter checks, the session check and fault injection already happened in the mediator; handlers only
do the work and shape the reply the way each API's `@RestResponse` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator

from vmclock.simulator.config import SimulatorConfig
from vmclock.simulator.errors import ApiError, argerr
from vmclock.simulator.faults import Faults
from vmclock.simulator.jobs import ChainQueues
from vmclock.simulator.model import Call, Reply
from vmclock.simulator.queries import QuerySpec, Row, Table, every_row, run_query
from vmclock.simulator.reboots import reboot
from vmclock.simulator.state import SimState
from vmclock.simulator.stats import Stats
from vmclock.simulator.tracks import CATEGORY, SYNC_AFTER_RESUME, SYNC_INTERVAL, ResourceConfig

VM_CLASS = "org.zstack.header.vm.VmInstanceInventory"
SESSION_CLASS = "org.zstack.header.identity.SessionInventory"
RESOURCE_CONFIG_CLASS = "org.zstack.resourceconfig.ResourceConfigInventory"
GLOBAL_CONFIG_CLASS = "org.zstack.core.config.GlobalConfigInventory"
SYSTEM_TAG_CLASS = "org.zstack.header.tag.SystemTagInventory"
USER_TAG_CLASS = "org.zstack.header.tag.UserTagInventory"
# SetVmClockTrack's QGA fields -> the per-VM resource config the QGA step writes (as text: 600, true).
QGA_FIELDS = {"intervalInSeconds": SYNC_INTERVAL, "syncAfterVMResume": SYNC_AFTER_RESUME}

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
USER_TAG_FIELDS = frozenset(
    ("uuid", "resourceUuid", "resourceType", "tag", "type", "createDate", "lastOpDate")
)
SYSTEM_TAG_FIELDS = USER_TAG_FIELDS | {"inherent"}


def _query(table: Table, spec: QuerySpec | None) -> Reply:
    return Reply(run_query(table, spec or QuerySpec()), {"inventories": table.java_class})


class ZStackApis:
    """The handlers, bound to the simulator's state; `catalog.build_catalog` wires them to routes."""

    def __init__(
        self,
        config: SimulatorConfig,
        state: SimState,
        stats: Stats,
        chains: ChainQueues,
        faults: Faults,
    ) -> None:
        self._config = config
        self._state = state
        self._stats = stats
        self._chains = chains
        self._faults = faults

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
        system_tags, user_tags, vms = self._state.system_tags, self._state.user_tags, self._state.vms

        def rows(keys: Collection[str] | None) -> Iterator[Row]:
            return (vm.inventory() for vm in vms.values() if keys is None or vm.uuid.casefold() in keys)

        table = Table(
            VM_CLASS,
            rows,
            VM_FIELDS,
            {
                "__systemTag__": lambda row: system_tags.tags_of(row["uuid"]),
                "__userTag__": lambda row: user_tags.tags_of(row["uuid"]),
            },
            key="uuid",
        )
        return _query(table, call.query)

    async def set_vm_clock_track(self, call: Call) -> Reply:
        """No VM-state check anywhere (zstack-api.md §5): the QGA step runs when either QGA field is set,
        skips the host for a VM without hostUuid, and writes the per-VM QGA configs before the track."""
        uuid, track = call.params["uuid"], call.params["track"]
        async with self._chains.chain(f"set-vm-clock-track-{uuid}"):
            await asyncio.sleep(self._config.job_latency)
            vm = self._state.vms.get(uuid)
            if vm is None:  # expunged while the job waited: the VM's service no longer exists
                raise ApiError(
                    "SYS.1003", f"Unable to find VmInstance[uuid:{uuid}], it may have been deleted"
                )
            for field, name in QGA_FIELDS.items():
                value = call.params.get(field)
                if value is not None:
                    self._state.configs[name].set(uuid, str(value).lower())
            self._state.tracks.set(uuid, track)
            self._stats.record_write(uuid, track)
            return Reply({"inventory": vm.inventory()}, {"inventory": VM_CLASS})

    async def reboot_vm_instance(self, call: Call) -> Reply:
        """Stop and start on the hypervisor, in the VM's own chain: the domain is rebuilt with the stored
        track (see reboots.py for what ZStack does and answers)."""
        uuid = call.params["uuid"]
        async with self._chains.chain(f"vm-{uuid}"):
            await asyncio.sleep(self._config.job_latency)
            stuck = self._faults.reboot_failures.get(uuid)
            seconds = self._config.reboot_seconds
            await reboot(self._state, self._stats.reboots, uuid, seconds=seconds, stuck=stuck)
            return Reply({"inventory": self._state.vm(uuid).inventory()}, {"inventory": VM_CLASS})

    # --- resource configurations (>= 4.3.12 for vm.clock.track) ----------------------------------

    def require_vm_config(self, call: Call) -> None:
        """ResourceConfigApiInterceptor: the (category, name) must be a global config bound to VMs that
        this version has (`vm.clock.track` from 4.3.12, the QGA clock-sync configs from 4.4.24)."""
        category, name = call.params["category"], call.params["name"]
        if category != CATEGORY or name not in self._state.configs:
            raise argerr(f"no global config[category:{category}, name:{name}] found")

    def _config_of(self, call: Call) -> ResourceConfig:
        return self._state.configs[call.params["name"]]

    async def get_resource_config(self, call: Call) -> Reply:
        config = self._config_of(call)
        uuid = call.params["resourceUuid"]
        effective = [config.row_inventory(uuid)] if uuid in config.rows else []
        return Reply(
            {"value": config.effective(uuid), "effectiveConfigs": effective},
            {"effectiveConfigs": RESOURCE_CONFIG_CLASS},
        )

    async def update_resource_config(self, call: Call) -> Reply:
        config = self._config_of(call)
        value, uuid = call.params["value"], call.params["resourceUuid"]
        name, valid = config.definition.name, config.definition.valid_values
        if value not in valid:
            raise argerr(f"the value[{value}] is not in the valid values[{', '.join(valid)}] of {name}")
        await asyncio.sleep(self._config.job_latency)
        config.set(uuid, value)
        return Reply({"inventory": config.row_inventory(uuid)}, {"inventory": RESOURCE_CONFIG_CLASS})

    async def delete_resource_config(self, call: Call) -> Reply:
        await asyncio.sleep(self._config.job_latency)
        self._config_of(call).delete(call.params["resourceUuid"])
        return Reply({})

    async def query_resource_config(self, call: Call) -> Reply:
        configs = self._state.configs.values()

        def rows(keys: Collection[str] | None) -> Iterator[Row]:
            for config in configs:
                yield from (
                    config.row_inventory(vm) for vm in config.rows if keys is None or vm.casefold() in keys
                )

        return _query(
            Table(RESOURCE_CONFIG_CLASS, rows, RESOURCE_CONFIG_FIELDS, key="resourceUuid"), call.query
        )

    async def query_global_config(self, call: Call) -> Reply:
        rows = [config.global_inventory() for config in self._state.configs.values()]
        return _query(Table(GLOBAL_CONFIG_CLASS, every_row(rows), GLOBAL_CONFIG_FIELDS), call.query)

    async def query_system_tag(self, call: Call) -> Reply:
        rows = self._state.system_tags.tag_inventories()
        return _query(Table(SYSTEM_TAG_CLASS, every_row(rows), SYSTEM_TAG_FIELDS), call.query)

    async def query_user_tag(self, call: Call) -> Reply:
        rows = self._state.user_tags.tag_inventories()
        return _query(Table(USER_TAG_CLASS, every_row(rows), USER_TAG_FIELDS), call.query)

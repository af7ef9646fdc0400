"""Seeded, realistic VM inventories: the same seed gives the same fleet on every run and machine.

The fleet looks like a real ZStack cloud (zones, clusters, hosts, NICs, volumes, a platform mix, most VMs
running) so that the operator's status, batching and filtering meet believable data, and benchmarks are
repeatable.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from vmclock.simulator.wire import compact, gson_date

GIB = 1024**3
_EPOCH_START = 1_672_531_200.0  # 2023-01-01T00:00:00Z: creation dates fall within two years of it
_TWO_YEARS = 2 * 365 * 86400.0

PLATFORMS = ("Windows", "WindowsVirtio", "Linux", "Paravirtualization", "Other")  # ImagePlatform
UUID = re.compile(r"[0-9a-f]{32}")

# The base mix: platform -> (share of the fleet, name prefixes, guestOsType choices). Paravirtualization is
# drawn afterwards from a stream of its own (labels.py), so this table and every fleet it made stay as they
# were.
_PLATFORMS: dict[str, tuple[float, tuple[str, ...], tuple[str, ...]]] = {
    "Windows": (0.35, ("win-sql", "win-ad", "win-iis", "win-app"), ("Windows 2019", "Windows 2016")),
    "WindowsVirtio": (0.15, ("win-rds", "win-file"), ("Windows 2022", "Windows 10")),
    "Linux": (0.40, ("web-linux", "db-linux", "k8s-node", "app-linux"), ("CentOS 7", "Ubuntu 22.04")),
    "Other": (0.10, ("fw-edge", "appliance"), ("Other",)),
}
_STATES = (("Running", 0.80), ("Stopped", 0.15), ("Paused", 0.05))
# Initial clock track: most VMs inherit the default, some were set to guest, a few explicitly to host.
INITIAL_TRACKS = (("inherit", 0.70), ("guest", 0.20), ("host", 0.10))


def random_uuid(rng: random.Random) -> str:
    """ZStack uuids: 32 lowercase hex characters, no dashes."""
    return f"{rng.getrandbits(128):032x}"


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    names = [name for name, _ in weighted]
    return rng.choices(names, weights=[w for _, w in weighted])[0]


@dataclass
class Vm:
    """One VmInstanceVO; `inventory()` renders VmInstanceInventory (which has no clock-track field)."""

    uuid: str
    name: str
    platform: str
    state: str
    fields: dict[str, Any]
    created: float
    last_op: float
    initial_track: str
    nics: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    _rendered: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def change_state(self, state: str, when: float) -> None:
        self.state, self.last_op, self._rendered = state, when, None

    def change_platform(self, platform: str, when: float) -> None:
        """UpdateVmInstance(platform): only the VM's field changes, not its image."""
        self.platform, self.last_op, self._rendered = platform, when, None

    def place(self, cluster: Cluster, host: str) -> None:
        """Put the VM (and its volumes' primary storage) in `cluster`, last run on `host`."""
        self.fields.update(zoneUuid=cluster.zone, clusterUuid=cluster.uuid, lastHostUuid=host)
        for volume in self.volumes:
            volume["primaryStorageUuid"] = cluster.primary_storage
        self._rendered = None

    def inventory(self) -> dict[str, Any]:
        """Rendered once and reused until the VM changes (queries render whole fleets); treat as read-only."""
        if self._rendered is None:
            self._rendered = self._render()
        return self._rendered

    def _render(self) -> dict[str, Any]:
        running_somewhere = self.state in ("Running", "Paused")
        return compact(
            {
                "uuid": self.uuid,
                "name": self.name,
                "description": None,
                **self.fields,
                "hostUuid": self.fields["lastHostUuid"] if running_somewhere else None,
                "platform": self.platform,
                "state": self.state,
                "createDate": gson_date(self.created),
                "lastOpDate": gson_date(self.last_op),
                "vmNics": self.nics,
                "allVolumes": self.volumes,
                "vmCdRoms": [],
            }
        )


@dataclass(frozen=True)
class Cluster:
    zone: str
    uuid: str
    hosts: list[str]
    primary_storage: str


@dataclass(frozen=True)
class Infra:
    """Zones, clusters (each with its hosts and primary storage), networks, images and offerings."""

    clusters: list[Cluster]
    l3_networks: list[tuple[str, int]]  # (uuid, second octet of its 10.x.0.0/16)
    images: dict[str, str]
    offerings: list[tuple[str, int, int]]  # (uuid, cpuNum, memory GiB)

    def add_cluster(self, rng: random.Random, zone: str, uuid: str | None = None) -> Cluster:
        cluster = Cluster(zone, uuid or random_uuid(rng), [random_uuid(rng)], random_uuid(rng))
        self.clusters.append(cluster)
        return cluster

    def cluster(self, rng: random.Random, zone: str | None, uuid: str | None) -> Cluster:
        """Where a VM created at run time goes: the named cluster, else one in the named zone, else any; a
        cluster or zone not seen before is created (ValueError if the cluster is known in another zone)."""
        known = next((c for c in self.clusters if c.uuid == uuid), None)
        if known is not None:
            if zone is not None and zone != known.zone:
                raise ValueError(f"cluster {uuid} is in zone {known.zone}, not {zone}")
            return known
        if zone is None:
            if uuid is None:
                return rng.choice(self.clusters)
            raise ValueError(f"cluster {uuid} is new; name its zoneUuid too")
        in_zone = next((c for c in self.clusters if c.zone == zone), None)
        if in_zone is not None and uuid is None:
            return in_zone
        return self.add_cluster(rng, zone, uuid)


def _infra(rng: random.Random, vm_count: int) -> Infra:
    zones = [random_uuid(rng) for _ in range(2 if vm_count > 100 else 1)]
    clusters = []
    hosts_per_cluster = max(1, -(-vm_count // 30))
    for zone in zones:
        for _ in range(2):
            hosts = [random_uuid(rng) for _ in range(hosts_per_cluster)]
            clusters.append(Cluster(zone, random_uuid(rng), hosts, random_uuid(rng)))
    return Infra(
        clusters=clusters,
        l3_networks=[(random_uuid(rng), octet) for octet in (10, 20, 30)],
        images={platform: random_uuid(rng) for platform in _PLATFORMS},
        offerings=[(random_uuid(rng), cpu, mem) for cpu, mem in ((1, 2), (2, 4), (4, 8), (8, 16), (16, 32))],
    )


def generate_fleet(seed: int, count: int) -> tuple[Infra, list[Vm]]:
    """`count` VMs in the base platform mix, deterministic for `seed`; names are unique (`<role>-<index>`)."""
    rng = random.Random(seed)
    infra = _infra(rng, count)
    platform_names = tuple(_PLATFORMS)
    shares = [_PLATFORMS[p][0] for p in platform_names]
    return infra, [_vm(rng, infra, i, rng.choices(platform_names, weights=shares)[0]) for i in range(count)]


def new_vm(
    rng: random.Random, infra: Infra, *, name: str, platform: str, state: str, cluster: Cluster, now: float
) -> Vm:
    """A VM created at run time ("next week"): made like a seeded one, then given what the caller chose."""
    vm = _vm(rng, infra, 0, platform if platform in _PLATFORMS else "Linux")
    vm.name, vm.created, vm.last_op, vm.initial_track = name, now, now, "inherit"
    vm.change_platform(platform, now)
    vm.change_state(state, now)
    vm.place(cluster, rng.choice(cluster.hosts))
    return vm


def _vm(rng: random.Random, infra: Infra, index: int, platform: str) -> Vm:
    _, prefixes, os_types = _PLATFORMS[platform]
    uuid = random_uuid(rng)
    cluster = rng.choice(infra.clusters)
    offering, cpu, mem_gib = rng.choice(infra.offerings)
    created = _EPOCH_START + rng.uniform(0, _TWO_YEARS)
    last_op = created + rng.uniform(0, 30 * 86400.0)
    created_date = gson_date(created)  # every NIC and volume shares it; formatting dominates seeding time
    nics = _nics(rng, infra, uuid, created_date)
    volumes = _volumes(rng, uuid, cluster.primary_storage, infra.images[platform], created_date)
    return Vm(
        uuid=uuid,
        name=f"{rng.choice(prefixes)}-{index + 1:03d}",
        platform=platform,
        state=_pick(rng, _STATES),
        created=created,
        last_op=last_op,
        initial_track=_pick(rng, INITIAL_TRACKS),
        nics=nics,
        volumes=volumes,
        fields={
            "zoneUuid": cluster.zone,
            "clusterUuid": cluster.uuid,
            "imageUuid": infra.images[platform],
            "lastHostUuid": rng.choice(cluster.hosts),
            "instanceOfferingUuid": offering,
            "rootVolumeUuid": volumes[0]["uuid"],
            "architecture": "x86_64",
            "defaultL3NetworkUuid": nics[0]["l3NetworkUuid"],
            "type": "UserVm",
            "hypervisorType": "KVM",
            "memorySize": mem_gib * GIB,
            "reservedMemorySize": 0,
            "cpuNum": cpu,
            "cpuSpeed": 0,
            "allocatorStrategy": "LastHostPreferredAllocatorStrategy",
            "guestOsType": rng.choice(os_types),
        },
    )


def _nics(rng: random.Random, infra: Infra, vm_uuid: str, created: str) -> list[dict[str, Any]]:
    nics = []
    for device_id, (l3, octet) in enumerate(rng.sample(infra.l3_networks, rng.choice((1, 1, 2)))):
        nics.append(
            {
                "uuid": random_uuid(rng),
                "vmInstanceUuid": vm_uuid,
                "l3NetworkUuid": l3,
                "ip": f"10.{octet}.{rng.randrange(256)}.{rng.randrange(2, 255)}",
                "mac": "fa:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5)),
                "netmask": "255.255.0.0",
                "gateway": f"10.{octet}.0.1",
                "ipVersion": 4,
                "hypervisorType": "KVM",
                "deviceId": device_id,
                "type": "VNIC",
                "createDate": created,
                "lastOpDate": created,
            }
        )
    return nics


def _volumes(
    rng: random.Random, vm_uuid: str, primary_storage: str, image: str, created: str
) -> list[dict[str, Any]]:
    volumes = []
    for device_id in range(1 + rng.choice((0, 0, 1, 2))):
        uuid = random_uuid(rng)
        root = device_id == 0
        size = (rng.choice((40, 80, 100)) if root else rng.choice((100, 200, 500))) * GIB
        volumes.append(
            compact(
                {
                    "uuid": uuid,
                    "name": f"ROOT-for-{vm_uuid}" if root else f"DATA-{device_id}-for-{vm_uuid}",
                    "primaryStorageUuid": primary_storage,
                    "vmInstanceUuid": vm_uuid,
                    "rootImageUuid": image if root else None,
                    "installPath": f"/zstack_ps/rootVolumes/acct-36c27e8f/vol-{uuid}/{uuid}.qcow2",
                    "type": "Root" if root else "Data",
                    "format": "qcow2",
                    "size": size,
                    "actualSize": int(size * rng.uniform(0.05, 0.6)),
                    "deviceId": device_id,
                    "state": "Enabled",
                    "status": "Ready",
                    "isShareable": False,
                    "createDate": created,
                    "lastOpDate": created,
                }
            )
        )
    return volumes

"""Seeded fleets: deterministic per seed, shaped like a real ZStack cloud, with a mix of initial tracks."""

from __future__ import annotations

import re
from collections import Counter

from vmclock.simulator import SimulatorConfig
from vmclock.simulator.inventory import generate_fleet
from vmclock.simulator.state import SimState

UUID = re.compile(r"[0-9a-f]{32}")
NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*-\d{3}")
GSON_DATE = re.compile(r"[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M")


def fleet(seed: int = 0, vms: int = 200, version: str = "5.3.0") -> SimState:
    return SimState(SimulatorConfig(vms=vms, seed=seed, zstack_version=version))


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    first, again, other = fleet(1), fleet(1), fleet(2)
    inventories = [vm.inventory() for vm in first.vms.values()]
    assert inventories == [vm.inventory() for vm in again.vms.values()]
    assert {t: first.track_of(t) for t in first.vm_uuids()} == {
        t: again.track_of(t) for t in again.vm_uuids()
    }
    assert set(first.vm_uuids()).isdisjoint(other.vm_uuids())


def test_inventories_look_like_zstack() -> None:
    state = fleet()
    inventories = [vm.inventory() for vm in state.vms.values()]
    assert len({inv["name"] for inv in inventories}) == len(inventories)
    for inv in inventories:
        assert UUID.fullmatch(inv["uuid"])
        assert NAME.fullmatch(inv["name"]), inv["name"]
        assert GSON_DATE.fullmatch(inv["createDate"])
        assert GSON_DATE.fullmatch(inv["lastOpDate"])
        assert inv["hypervisorType"] == "KVM"
        assert inv["type"] == "UserVm"
        assert all(UUID.fullmatch(inv[k]) for k in ("zoneUuid", "clusterUuid", "rootVolumeUuid"))
        assert inv["vmNics"]
        assert inv["allVolumes"][0]["uuid"] == inv["rootVolumeUuid"]
        assert inv["cpuNum"] >= 1
        assert inv["memorySize"] >= 2 * 1024**3
        assert ("hostUuid" in inv) == (inv["state"] in ("Running", "Paused"))
        assert not any("track" in key.lower() for key in inv)
    platforms = Counter(inv["platform"] for inv in inventories)
    assert set(platforms) == {"Windows", "WindowsVirtio", "Linux", "Paravirtualization", "Other"}
    states = Counter(inv["state"] for inv in inventories)
    assert states.most_common(1)[0][0] == "Running"
    assert {"Stopped", "Paused"} <= set(states)
    windows = [inv["name"] for inv in inventories if inv["platform"] == "Windows"]
    assert all(name.startswith("win-") for name in windows)


def test_initial_tracks_are_a_mix_mostly_host() -> None:
    state = fleet()
    tracks = Counter(state.track_of(uuid) for uuid in state.vm_uuids())
    assert tracks["host"] > tracks["guest"] > 0
    explicit = {row.value for row in state.resource_configs.rows.values()}
    assert explicit == {"guest", "host"}  # some VMs carry an explicit per-VM host row
    assert len(state.resource_configs.rows) < len(state.vm_uuids())  # the rest inherit the global value


def test_old_versions_seed_guest_tags_only() -> None:
    state = fleet(version="4.2.0")
    assert state.resource_configs.rows == {}
    tagged = set(state.system_tags.tags)
    assert tagged
    assert tagged == {u for u in state.vm_uuids() if state.track_of(u) == "guest"}


def test_labels_spread_zones_clusters_and_user_tags() -> None:
    state = fleet(vms=50)
    inventories = [vm.inventory() for vm in state.vms.values()]
    assert len({inv["zoneUuid"] for inv in inventories}) >= 2
    assert len({inv["clusterUuid"] for inv in inventories}) >= 3
    tags = Counter(tag for uuid in state.vm_uuids() for tag in state.user_tags.tags_of(uuid))
    assert {"env::prod", "env::dev", "team::a", "team::b", "backup::daily"} == set(tags)
    untagged = [u for u in state.vm_uuids() if not state.user_tags.tags_of(u)]
    assert 0 < len(untagged) < len(inventories)
    again = fleet(vms=50)
    assert {u: again.user_tags.tags_of(u) for u in again.vm_uuids()} == {
        u: state.user_tags.tags_of(u) for u in state.vm_uuids()
    }


def test_labels_leave_the_base_fleet_as_it_was() -> None:
    """Labels come from their own random stream: fleets seeded before they existed keep every VM's uuid,
    name, state and track; only Linux VMs become Paravirtualization."""
    _, base = generate_fleet(4, 300)
    state = fleet(seed=4, vms=300)
    assert [vm.uuid for vm in base] == state.vm_uuids()
    for before in base:
        after = state.vm(before.uuid)
        assert (after.name, after.state, after.initial_track) == (
            before.name,
            before.state,
            before.initial_track,
        )
        assert after.platform == before.platform or (before.platform, after.platform) == (
            "Linux",
            "Paravirtualization",
        )

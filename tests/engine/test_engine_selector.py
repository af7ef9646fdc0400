"""Selector policies in the engine (issue 10): resolution at every reconcile, precedence, the previous-track
record, bounded status. Real client against the in-process simulator; the record is the engine's own
in-memory one (the operator's ConfigMap record is exercised in tests/operator_unit)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from vmclock.engine import PolicyState, reconcile, restore_all
from vmclock.engine.external import ClockTrackClient
from vmclock.engine.plan import PolicyClaim
from vmclock.engine.reconcile import ReconcileIO, ReconcileResult
from vmclock.engine.records import MemoryRecord, decode_record, encode_record
from vmclock.engine.report import MAX_LISTED, STATUS_BUDGET, listed_first, status_size
from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.simulator.state import NewVm
from vmclock.zstack import ZStackClient
from vmclock.zstack.models import Track
from zstack.support import ADMIN, FAST

from .helpers import NOW, among

WINDOWS = {"platforms": ["Windows", "WindowsVirtio"]}


def selector_policy(
    *,
    name: str = "p",
    track: str = "guest",
    status: Mapping[str, Any] | None = None,
    created_days_ago: int = 1,
    deleting: bool = False,
    selector: Mapping[str, Any] | None = None,
    **spec: Any,
) -> PolicyState:
    return PolicyState(
        namespace="ns",
        name=name,
        generation=1,
        created=NOW - timedelta(days=created_days_ago),
        spec={"track": track, "selector": dict(selector or WINDOWS), **spec},
        status=dict(status or {}),
        deleting=deleting,
    )


def connector(client: ZStackClient):  # type: ignore[no-untyped-def]
    async def connect(name: str) -> ClockTrackClient:
        return client

    return connect


def windows(sim: Simulator) -> list[str]:
    return sorted(u for u in sim.state.vm_uuids() if sim.state.vm(u).platform.startswith("Windows"))


async def run(
    state: PolicyState,
    client: ZStackClient,
    record: MemoryRecord,
    others: list[PolicyClaim] | None = None,
) -> ReconcileResult:
    return await reconcile(
        state, connector(client), among(*(others or ())), NOW, io=ReconcileIO(record=record)
    )


async def test_a_selector_policy_converges_and_an_in_sync_round_writes_nothing(
    sim: Simulator, client: ZStackClient
) -> None:
    chosen = windows(sim)
    before = {u: sim.state.track_of(u) for u in chosen}
    record = MemoryRecord()
    first = await run(selector_policy(), client, record)
    assert all(sim.state.track_of(u) == "guest" for u in chosen)
    assert first.selected == frozenset(chosen)
    assert first.status["summary"]["total"] == len(chosen)
    assert first.status["selector"]["matched"] == len(chosen)
    assert first.status["selector"]["omitted"] == 0
    ready = next(c for c in first.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    changed = {u: t for u, t in before.items() if t != "guest"}
    assert changed
    assert record.tracks == changed, "one record line per VM changed, with its track before"

    writes, stores = len(sim.stats.writes), record.stores
    second = await run(selector_policy(status=first.status), client, record)
    assert len(sim.stats.writes) == writes
    assert record.stores == stores
    assert second.status == first.status, "an in-sync round changes nothing, not even resolvedAt"


async def test_the_record_is_stored_before_the_first_write(sim: Simulator, client: ZStackClient) -> None:
    writes_at_store: list[int] = []

    class Watching(MemoryRecord):
        async def store(self, tracks: Mapping[str, Track], origins: Mapping[str, str]) -> None:
            writes_at_store.append(len(sim.stats.writes))
            await super().store(tracks, origins)

    await run(selector_policy(), client, Watching())
    assert writes_at_store[0] == 0


async def test_vms_that_start_or_stop_matching(sim: Simulator, client: ZStackClient) -> None:
    record = MemoryRecord()
    first = await run(selector_policy(deletionPolicy="Restore"), client, record)
    changed = sorted(record.tracks)
    leaver, kept = changed[0], changed[1]
    sim.state.set_platform(leaver, "Linux")
    sim.state.delete_vm(kept)
    newcomer = sim.state.add_vm(NewVm("win-next-week", platform="WindowsVirtio", track="host")).uuid

    second = await run(selector_policy(deletionPolicy="Restore", status=first.status), client, record)
    assert sim.state.track_of(newcomer) == "guest", "a VM that starts matching gets the track"
    assert sim.state.track_of(leaver) == changed_track(first, leaver, record_before=changed)
    assert leaver not in record.tracks, "a restored VM is forgotten"
    assert kept not in record.tracks, "a VM deleted in ZStack is forgotten"
    assert record.tracks[newcomer] == "host"
    assert "Restored" in [e.reason for e in second.events]
    assert second.status["summary"]["total"] == len(windows(sim))


def changed_track(result: ReconcileResult, uuid: str, *, record_before: list[str]) -> str:
    """The previousTrack status showed for `uuid` (a changed VM, so it was recorded)."""
    assert uuid in record_before
    entry = next(e for e in result.status["vms"] if e["uuid"] == uuid)
    return str(entry["previousTrack"])


async def test_an_orphan_policy_leaves_a_vm_that_stops_matching(sim: Simulator, client: ZStackClient) -> None:
    record = MemoryRecord()
    first = await run(selector_policy(), client, record)
    leaver = sorted(record.tracks)[0]
    sim.state.add_user_tag(leaver, "keep-me")
    sim.state.set_platform(leaver, "Other")
    await run(selector_policy(status=first.status), client, record)
    assert sim.state.track_of(leaver) == "guest"
    assert leaver not in record.tracks


async def test_a_uuid_policy_beats_a_selector_policy_without_a_conflict(
    sim: Simulator, client: ZStackClient
) -> None:
    chosen = windows(sim)
    explicit = PolicyClaim("ns", "exact", NOW, "host", frozenset(chosen[:1]), found=frozenset(chosen[:1]))
    sim.state.set_track_behind(chosen[0], "host")
    result = await run(selector_policy(created_days_ago=30), client, MemoryRecord(), [explicit])
    assert sim.state.track_of(chosen[0]) == "host", "the selector policy left the VM alone"
    assert result.status["summary"]["total"] == len(chosen) - 1
    assert result.status["summary"]["conflicted"] == 0
    assert chosen[0] not in {e["uuid"] for e in result.status["vms"]}
    assert "1 matched VMs are left to policies" in result.status["selector"]["message"]
    assert result.selected == frozenset(chosen[1:])

    # ... and an older selector policy never makes a UUID policy report a Conflict
    elder = PolicyClaim("ns", "broad", NOW - timedelta(days=30), "guest", frozenset(chosen), by_selector=True)
    exact = PolicyState("ns", "exact", 1, NOW, {"track": "host", "vmUuids": chosen[:2]})
    uuid_result = await reconcile(exact, connector(client), among(elder), NOW)
    assert uuid_result.status["summary"]["conflicted"] == 0
    assert sim.state.track_of(chosen[1]) == "host"


async def test_two_selector_policies_follow_the_age_rule(sim: Simulator, client: ZStackClient) -> None:
    chosen = windows(sim)
    elder = PolicyClaim("ns", "elder", NOW - timedelta(days=30), "host", frozenset(chosen), by_selector=True)
    for uuid in chosen:
        sim.state.set_track_behind(uuid, "host")
    result = await run(selector_policy(), client, MemoryRecord(), [elder])
    assert result.status["summary"]["conflicted"] == len(chosen)
    assert not sim.stats.writes


async def test_deletion_restores_every_recorded_vm(sim: Simulator, client: ZStackClient) -> None:
    before = {u: sim.state.track_of(u) for u in windows(sim)}
    record = MemoryRecord()
    first = await run(selector_policy(deletionPolicy="Restore"), client, record)
    deleting = selector_policy(deletionPolicy="Restore", status=first.status, deleting=True)
    result = await restore_all(deleting, client, among(), ReconcileIO(record=record))
    assert result.done
    assert {u: sim.state.track_of(u) for u in before} == before


async def test_a_selection_zstack_refuses_keeps_the_picture_and_says_why(
    sim: Simulator, client: ZStackClient
) -> None:
    record = MemoryRecord()
    first = await run(selector_policy(), client, record)
    sim.faults.set_error_rate("QueryVmInstance", 1.0, "SYS.1007")
    failed = await run(selector_policy(status=first.status), client, record)
    ready = next(c for c in failed.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SelectionFailed")
    assert "SYS.1007" in failed.status["selector"]["message"]
    assert failed.status["vms"] == first.status["vms"]
    assert failed.requeue_after_failure
    assert failed.selected is None


async def test_1200_vms_list_those_needing_attention_first_within_the_budget() -> None:
    config = SimulatorConfig(vms=1200, job_latency=0.001, seed=21)
    async with Simulator(config) as sim, ZStackClient(sim.endpoint, ADMIN, FAST) as client:
        every = {"platforms": ["Windows", "WindowsVirtio", "Linux", "Paravirtualization", "Other"]}
        record = MemoryRecord()
        first = await run(selector_policy(selector=every), client, record)
        status = first.status
        assert status["summary"]["total"] == 1200
        assert len(status["vms"]) == MAX_LISTED
        assert status["selector"]["omitted"] == 1200 - MAX_LISTED
        assert status_size(status) <= STATUS_BUDGET
        attention = [
            e for e in status["vms"] if e.get("pendingRestart") or e["phase"] not in ("Applied", "InSync")
        ]
        assert attention == status["vms"][: len(attention)], "VMs needing attention come first"

        sim.stats.reset()
        again = await run(selector_policy(selector=every, status=status), client, record)
        assert again.status == status
        reads = sum(n for api, n in sim.stats.calls.items() if api.startswith("Query"))
        assert reads <= 6, f"bulk reads for a large selection ({sim.stats.calls})"


def test_listing_is_bounded_ordered_and_stable() -> None:
    entries = [{"uuid": f"{n:032x}", "phase": "InSync"} for n in range(10)]
    entries[7] = {**entries[7], "phase": "Failed"}
    entries[3] = {**entries[3], "pendingRestart": True}
    listed, omitted = listed_first(list(reversed(entries)), bound=4)
    assert [e["uuid"][-1] for e in listed] == ["3", "7", "0", "1"]
    assert omitted == 6


def test_the_record_text_round_trips_and_skips_garbage() -> None:
    tracks: dict[str, Track] = {f"{n:032x}": "host" if n % 2 else "guest" for n in range(10_000)}
    text = encode_record(tracks)
    assert len(text.encode()) < 1024 * 1024
    assert decode_record(text + "garbage\nabc guest\n" + f"{1:032x} sideways\n") == tracks


async def test_a_uuid_policy_turned_selector_keeps_the_previous_tracks_it_recorded(
    sim: Simulator, client: ZStackClient
) -> None:
    chosen = windows(sim)[:3]
    for uuid in chosen:
        sim.state.set_track_behind(uuid, "host")
    listed = PolicyState(
        "ns", "p", 1, NOW, {"track": "guest", "vmUuids": chosen, "deletionPolicy": "Restore"}
    )
    first = await reconcile(listed, connector(client), among(), NOW)
    assert all(sim.state.track_of(u) == "guest" for u in chosen)

    record = MemoryRecord()
    turned = selector_policy(deletionPolicy="Restore", status=first.status)
    second = await run(turned, client, record)
    assert {u: record.tracks[u] for u in chosen} == dict.fromkeys(chosen, "host"), "carried into the record"
    deleting = selector_policy(deletionPolicy="Restore", status=second.status, deleting=True)
    assert (await restore_all(deleting, client, among(), ReconcileIO(record=record))).done
    assert all(sim.state.track_of(u) == "host" for u in chosen)


async def test_a_selector_that_matches_nothing_says_so(sim: Simulator, client: ZStackClient) -> None:
    """Issue 17: the shipped example with a zone UUID that does not exist was 'all 0 VMs have track guest'."""
    nowhere = selector_policy(selector={"zoneUuids": ["0" * 32]})
    first = await run(nowhere, client, MemoryRecord())
    ready = next(c for c in first.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "NothingSelected")
    assert "matches no VM" in ready["message"]
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "NothingSelected")]
    again = await run(
        selector_policy(selector={"zoneUuids": ["0" * 32]}, status=first.status), client, MemoryRecord()
    )
    assert not again.events, "said once, on the transition, not at every resync"

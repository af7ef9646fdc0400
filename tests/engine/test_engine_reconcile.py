"""`reconcile()` and `restore_all()` end to end against the simulator: real HTTP, real client, no mocks."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from vmclock.engine import ConnectionUnavailable, PolicyState, reconcile, reconciling_status, restore_all
from vmclock.engine.external import ClockTrackClient
from vmclock.engine.plan import PolicyClaim
from vmclock.engine.reconcile import ReconcileIO
from vmclock.engine.records import MemoryRecord
from vmclock.simulator import Simulator
from vmclock.zstack import ZStackClient

from .helpers import NOW, among, uuid


def policy(
    vms: list[str],
    *,
    track: str = "guest",
    generation: int = 1,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> PolicyState:
    return PolicyState(
        namespace="ns",
        name="p",
        generation=generation,
        created=NOW - timedelta(days=1),
        spec={"track": track, "vmUuids": vms, **spec},
        status=status or {},
    )


def connector(client: ZStackClient):  # type: ignore[no-untyped-def]
    async def connect(name: str) -> ClockTrackClient:
        assert name == "default"
        return client

    return connect


def phases(status: dict[str, Any]) -> Counter[str]:
    return Counter(e["phase"] for e in status["vms"])


def windows_vms(sim: Simulator, count: int, *, track: str) -> list[str]:
    chosen = [u for u in sim.state.vm_uuids() if sim.state.vm(u).platform.startswith("Windows")][:count]
    for u in chosen:
        sim.state.set_track_behind(u, track)
    return chosen


async def test_only_differing_vms_are_written_and_a_second_round_writes_nothing(
    sim: Simulator, client: ZStackClient
) -> None:
    vms = windows_vms(sim, 6, track="host")
    sim.state.set_track_behind(vms[0], "guest")
    sim.faults.latency = 0.05  # slow answers make overlapping requests observable
    sim.stats.reset()
    first = await reconcile(policy(vms), connector(client), among(), NOW)
    assert sorted(w.uuid for w in sim.stats.writes) == sorted(vms[1:])
    assert all(sim.state.track_of(u) == "guest" for u in vms)
    assert phases(first.status) == Counter({"Applied": 5, "InSync": 1})
    assert [c["reason"] for c in first.status["conditions"]] == [
        "Available",
        "ReconcileSuccess",
        "RestartPending",
    ]
    assert first.status["summary"]["inSync"] == 6
    assert [e.reason for e in first.events] == ["Applied"]
    assert sim.stats.max_in_flight > 1  # writes ran concurrently

    sim.faults.latency = 0.0
    sim.stats.reset()
    second = await reconcile(
        policy(vms, status=first.status), connector(client), among(), NOW + timedelta(minutes=5)
    )
    assert sim.stats.writes == []
    assert second.status == first.status  # nothing changed, so the caller will not PATCH
    assert second.events == ()


async def test_drift_is_corrected_in_enforce_and_only_reported_in_observe(
    sim: Simulator, client: ZStackClient
) -> None:
    vms = windows_vms(sim, 3, track="guest")
    steady = await reconcile(policy(vms), connector(client), among(), NOW)
    sim.state.set_track_behind(vms[1], "host")
    corrected = await reconcile(policy(vms, status=steady.status), connector(client), among(), NOW)
    assert [e.reason for e in corrected.events] == ["DriftDetected", "DriftCorrected"]
    assert corrected.drift_detected == 1
    assert sim.state.track_of(vms[1]) == "guest"

    observe = policy(vms, managementPolicy="Observe", status=corrected.status, generation=2)
    sim.state.set_track_behind(vms[2], "host")
    sim.stats.reset()
    seen = await reconcile(observe, connector(client), among(), NOW)
    assert sim.stats.writes == []
    assert phases(seen.status)["Drifted"] == 1
    ready = seen.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "Drifted")
    assert [e.reason for e in seen.events] == ["DriftDetected"]


async def test_one_vms_failure_does_not_block_the_others(sim: Simulator, client: ZStackClient) -> None:
    vms = windows_vms(sim, 12, track="host")
    sim.faults.set_error_rate("SetVmClockTrack", 0.5, code="SYS.1007")
    result = await reconcile(policy([*vms, uuid(0xDEAD)]), connector(client), among(), NOW)
    counts = phases(result.status)
    assert counts["Failed"] > 0
    assert counts["Applied"] > 0
    assert counts["Failed"] + counts["Applied"] == 12
    assert counts["NotFound"] == 1
    failed = [e for e in result.status["vms"] if e["phase"] == "Failed"]
    assert all(e["error"]["code"] == "SYS.1007" for e in failed)
    synced = result.status["conditions"][1]
    assert (synced["reason"], synced["message"][:8]) == ("ReconcileError", "SYS.1007")
    assert result.status["conditions"][0]["reason"] == "VmNotFound"
    assert "ApiError" in [e.reason for e in result.events]


async def test_paused_reads_but_never_writes(sim: Simulator, client: ZStackClient) -> None:
    vms = windows_vms(sim, 2, track="host")
    paused = PolicyState(**{**policy(vms).__dict__, "annotations": {"vmclock.zstack.io/paused": "true"}})
    sim.stats.reset()
    result = await reconcile(paused, connector(client), among(), NOW)
    assert sim.stats.writes == []
    assert [(c["status"], c["reason"]) for c in result.status["conditions"]] == [
        ("False", "Drifted"),
        ("False", "ReconcilePaused"),
        ("True", "TrackEffective"),  # nothing was written, so no restart is owed
    ]
    assert [e.reason for e in result.events] == ["Paused", "DriftDetected"]


async def test_conflicting_younger_policy_writes_nothing(sim: Simulator, client: ZStackClient) -> None:
    vms = windows_vms(sim, 2, track="host")
    me = policy(vms)
    older = PolicyClaim(me.namespace, "old", NOW - timedelta(days=30), "host", frozenset(vms[:1]))
    sim.stats.reset()
    result = await reconcile(me, connector(client), among(older), NOW)
    assert [w.uuid for w in sim.stats.writes] == [vms[1]]
    conflicted = result.status["vms"][0]
    assert (conflicted["phase"], conflicted["conflictWith"]) == ("Conflict", f"{me.namespace}/old")
    assert result.status["conditions"][0]["reason"] == "Conflict"


async def test_an_owner_in_another_namespace_stays_anonymous(sim: Simulator, client: ZStackClient) -> None:
    """design.md §6.4: status and Events of a policy never name a policy of another tenant."""
    vms = windows_vms(sim, 1, track="host")
    older = PolicyClaim("tenant-b", "secret-plan", NOW - timedelta(days=30), "host", frozenset(vms))
    result = await reconcile(policy(vms), connector(client), among(older), NOW)
    assert result.status["vms"][0]["conflictWith"] == "a policy in another namespace"
    shown = repr(result.status) + repr(result.events)
    assert "tenant-b" not in shown
    assert "secret-plan" not in shown


async def test_restore_on_drop_and_on_delete(sim: Simulator, client: ZStackClient) -> None:
    vms = windows_vms(sim, 3, track="host")
    applied = await reconcile(policy(vms, deletionPolicy="Restore"), connector(client), among(), NOW)
    assert all(sim.state.track_of(u) == "guest" for u in vms)

    shrunk = policy(vms[1:], deletionPolicy="Restore", status=applied.status, generation=2)
    dropped = await reconcile(shrunk, connector(client), among(), NOW)
    assert sim.state.track_of(vms[0]) == "host"
    assert [e["uuid"] for e in dropped.status["vms"]] == vms[1:]
    assert "Restored" in [e.reason for e in dropped.events]

    # another live policy still selecting vms[2] takes it over: no restore for it
    keeper = PolicyClaim("ns", "keeper", NOW, "guest", frozenset(vms[2:]))
    deleted = PolicyState(**{**shrunk.__dict__, "status": dropped.status, "deleting": True})
    result = await restore_all(deleted, client, among(keeper))
    assert (sim.state.track_of(vms[1]), sim.state.track_of(vms[2])) == ("host", "guest")
    assert [e.reason for e in result.events] == ["Restored"]
    assert result.left == ()


async def test_connection_problems_and_invalid_specs_keep_the_vm_picture(client: ZStackClient) -> None:
    async def broken(name: str) -> ClockTrackClient:
        raise ConnectionUnavailable(
            "SecretNotFound", f"ZStackConnection ns/{name}: Secret ns/creds not found"
        )

    before = {"vms": [{"uuid": uuid(1), "phase": "InSync"}], "summary": {"total": 1}}
    result = await reconcile(policy([uuid(1)], status=before), broken, among(), NOW)
    assert result.status["vms"] == before["vms"]
    ready, synced = result.status["conditions"]
    assert (ready["reason"], synced["reason"]) == ("ConnectionNotReady", "ConnectionNotReady")
    assert ready["message"].startswith("SecretNotFound: ZStackConnection ns/default")

    annotations = {"vmclock.zstack.io/paused": "true"}
    paused = PolicyState(**{**policy([uuid(1)]).__dict__, "annotations": annotations})
    held = await reconcile(paused, broken, among(), NOW)
    ready, synced = held.status["conditions"]
    assert (ready["reason"], synced["status"], synced["reason"]) == (
        "ConnectionNotReady",
        "False",
        "ReconcilePaused",
    )

    invalid = await reconcile(policy([uuid(1)], track="wall"), connector(client), among(), NOW)
    assert invalid.status["conditions"][0]["reason"] == "InvalidSpec"
    assert "spec.track" in invalid.status["conditions"][0]["message"]


def test_reconciling_mark_carries_the_new_generation() -> None:
    marked = reconciling_status(policy([uuid(1)], generation=4, status={"observedGeneration": 3}), NOW)
    assert marked["observedGeneration"] == 4
    assert [(c["status"], c["reason"], c["observedGeneration"]) for c in marked["conditions"]] == [
        ("Unknown", "Reconciling", 4),
        ("Unknown", "Reconciling", 4),
        ("Unknown", "Reconciling", 4),
    ]


async def test_requested_reconcile_is_echoed_and_last_sync_time_moves_only_on_change(
    sim: Simulator, client: ZStackClient
) -> None:
    vms = windows_vms(sim, 1, track="guest")
    first = await reconcile(policy(vms), connector(client), among(), NOW)
    assert first.status["lastSyncTime"] == "2026-05-01T12:00:00Z"
    later = NOW + timedelta(hours=1)
    same = await reconcile(policy(vms, status=first.status), connector(client), among(), later)
    assert same.status["lastSyncTime"] == "2026-05-01T12:00:00Z"
    poked = PolicyState(
        **{
            **policy(vms, status=first.status).__dict__,
            "annotations": {"vmclock.zstack.io/reconcile-requested-at": "now"},
        }
    )
    echoed = await reconcile(poked, connector(client), among(), later)
    assert (echoed.status["lastHandledReconcileAt"], echoed.status["lastSyncTime"]) == (
        "now",
        "2026-05-01T13:00:00Z",
    )


async def test_an_overlong_reconcile_request_is_echoed_within_the_crd_limit(client: ZStackClient) -> None:
    """The annotation has no length limit but status.lastHandledReconcileAt has maxLength 1024: a longer echo
    would get the whole status PATCH rejected."""
    request = "x" * 1500
    poked = PolicyState(
        **{
            **policy([uuid(1)]).__dict__,
            "annotations": {"vmclock.zstack.io/reconcile-requested-at": request},
        }
    )
    result = await reconcile(poked, connector(client), among(), NOW)
    assert result.status["lastHandledReconcileAt"] == request[:1024]


async def test_a_restore_never_takes_not_found_elsewhere_for_restored(
    sim: Simulator, client: ZStackClient
) -> None:
    """issue 14: after the connection was pointed at another endpoint or account, a VM that the record says
    was changed through the old one and that is not found now is not restored: the deletion waits."""
    vms = windows_vms(sim, 2, track="host")
    record = MemoryRecord()
    io = ReconcileIO(record=record)
    applied = await reconcile(policy(vms, deletionPolicy="Restore"), connector(client), among(), NOW, io=io)
    assert set(record.origins().values()) == {client.destination}, "each change names its destination"
    gone = "f" * 32  # a VM the record says the old node changed; this node has never heard of it
    record.tracks[gone], record.by[gone] = "host", "https://old.example:8080/zstack#admin"
    deleted = PolicyState(**{**policy(vms, deletionPolicy="Restore").__dict__, "status": applied.status})
    result = await restore_all(PolicyState(**{**deleted.__dict__, "deleting": True}), client, among(), io)
    assert all(sim.state.track_of(u) == "host" for u in vms), "the VMs this node knows are restored"
    assert result.left == (gone,), "the one only the old node knew is not counted as restored"
    assert "another management node or account" in result.why

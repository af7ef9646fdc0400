"""Red team of issue 14's fewer Kubernetes reads (connection specs from a kopf index; a never-reconciled
policy's records taken for absent until checked).

Each test names the scenario and the promise it breaks. The connection index is trusted whenever it holds one
entry under the name, so what the watch has not delivered yet (a spec change, a deletion, a re-created
namesake whose events are both still on the way) is acted on as if it were the API server's answer: the
reconcile writes through a connection the API server no longer has in that shape. Those tests FAIL on this
branch (each passes when `known_connection` answers None, i.e. with the GET issue 14 removed).

The record tests PASS: the attacks on "a never-reconciled policy's records are not read" found no hole. They
are kept because no other test guards what they show (each fails when its guard is broken: `confirm` made a
no-op; the tracks record read without tidying a namesake's leftover; a restore taking the record for absent;
a create's 409 taken for "replace it").

Same parts as test_kube_calls.py: the counting in-memory API, the simulator, the real controller.
"""

from __future__ import annotations

from typing import Any

from vmclock.engine.pending import PendingRestart, decode_restarts, encode_restarts
from vmclock.engine.records import encode_record
from vmclock.engine.spec import CONNECTION_PLURAL, POLICY_PLURAL
from vmclock.kopfapp.records import KEY, PREFIX, RESTARTS_KEY, RESTARTS_PREFIX, record_body, record_name
from vmclock.kubeapi import Written
from vmclock.refs import Ref
from vmclock.simulator import Simulator

from . import test_kube_calls
from .test_controller import CONNECTION, DELETED_AT, NS, Parts, ready, running_parts
from .test_kube_calls import CountingKube, reconciled, running_vms

sim = test_kube_calls.sim
parts = test_kube_calls.parts
no_event_posting = test_kube_calls.no_event_posting

SINCE = "2026-05-01T12:00:00Z"  # when a crashed run's write left a VM waiting for a restart
ELSEWHERE = "http://127.0.0.1:9"  # another ZStack's endpoint: nothing listens there (discard port)


def api_connection(parts: Parts) -> dict[str, Any]:
    """The connection as the API server holds it; changing it here is a change whose watch event has not
    reached the index yet (the index keeps its own copy of what the watch last delivered)."""
    found: dict[str, Any] = parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]
    return found


async def test_a_connection_re_created_with_another_endpoint_is_not_written_through_as_the_old_one(
    parts: Parts,
) -> None:
    """Scenario: the ZStackConnection is deleted and re-created under the same name pointing at another
    ZStack; the policy's reconcile runs before the old incarnation's DELETED and the new one's ADDED event
    reach the index, so the index holds one entry: the old incarnation. Promise broken: "a connection
    deleted and re-created under the same name (other endpoint) is never confused with the old one" (before
    issue 14 the reconcile's GET saw the new one). The reconcile writes the VMs of the OLD ZStack, which no
    connection names any more."""
    vms = running_vms(parts, "host", 2)
    ref = parts.policy("p", vms)
    parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)] = {
        "metadata": {"namespace": CONNECTION.namespace, "name": CONNECTION.name, "uid": "uid-c2"},
        "spec": {"endpoint": ELSEWHERE, "credentialsSecretRef": {"name": "creds"}},
    }
    await reconciled(parts, ref)
    assert parts.sim.stats.writes == [], "written through the deleted incarnation's endpoint"
    assert {u: parts.sim.state.track_of(u) for u in vms} == dict.fromkeys(vms, "host")


async def test_a_connection_spec_change_is_what_the_next_reconcile_uses(parts: Parts) -> None:
    """Scenario: the connection's endpoint is changed in the API server (moved to another ZStack) and a
    policy's reconcile (a resync, a trigger, a policy edit) runs before the MODIFIED event reaches the
    index. Promise broken: "a spec change of the connection (endpoint, account Secret,
    maxConcurrentRequests, CA) is what the next reconcile uses": it connects to the endpoint the connection
    no longer names, and writes there."""
    vms = running_vms(parts, "host", 2)
    ref = parts.policy("p", vms)
    api_connection(parts)["spec"] = {"endpoint": ELSEWHERE, "credentialsSecretRef": {"name": "creds"}}
    await reconciled(parts, ref)
    assert parts.sim.stats.writes == [], "written through the endpoint the connection no longer names"


async def test_a_connection_being_deleted_gives_not_found_to_a_forward_reconcile(parts: Parts) -> None:
    """Scenario: the connection is being deleted (deletionTimestamp set in the API server) and a forward
    reconcile runs before that MODIFIED event reaches the index. Promise broken: "a connection absent or
    being deleted gives 'not found' to a forward reconcile": the reconcile writes through it, and the
    policy's status says nothing of the connection going."""
    vms = running_vms(parts, "host", 2)
    ref = parts.policy("p", vms)
    api_connection(parts)["metadata"]["deletionTimestamp"] = DELETED_AT
    await reconciled(parts, ref)
    assert parts.sim.stats.writes == [], "written through a connection being deleted"
    assert parts.status(ref)["connection"]["reason"] == "NotFound"


async def test_a_namesakes_leftover_record_is_never_taken_as_the_new_incarnations(parts: Parts) -> None:
    """Scenario: a policy re-created under the same name (new uid, same VMs) while its predecessor's record
    (owner = old uid, previous track guest) is still there. Promise: a deleted namesake's leftover is never
    taken as the new incarnation's record: every status shows host (what the VMs had) as the previous
    track, and the Restore deletion puts host back."""
    vms = running_vms(parts, "host", 3)
    ref = Ref(NS, "p")
    name = record_name(ref.name, PREFIX)
    leftover = record_body(ref, "uid-old", name, {KEY: encode_record(dict.fromkeys(vms, "guest"))})
    await parts.kube.create_config_map(NS, leftover)
    parts.policy("p", vms, deletionPolicy="Restore")
    await reconciled(parts, ref)
    assert ready(parts.status(ref))
    statuses = [status for who, status in parts.kube.patches if who == "p"]
    for status in statuses:
        assert {e["uuid"]: e.get("previousTrack") for e in status["vms"]} == dict.fromkeys(vms, "host")
    assert await parts.deleted(ref, 10.0)
    assert {u: parts.sim.state.track_of(u) for u in vms} == dict.fromkeys(vms, "host")


async def test_a_restore_deleted_before_its_first_reconcile_here_restores_the_crashed_runs_record(
    parts: Parts,
) -> None:
    """Scenario: a first reconcile wrote its record (host) and all its writes (guest), then the operator
    died before the status; the Restore policy is deleted before the new process reconciles it. Promise:
    the Restore puts back the ORIGINAL track."""
    vms = running_vms(parts, "host", 3)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    name = record_name(ref.name, PREFIX)
    body = record_body(ref, parts.uid(ref), name, {KEY: encode_record(dict.fromkeys(vms, "host"))})
    await parts.kube.create_config_map(NS, body)
    for uuid in vms:
        parts.sim.state.set_track_behind(uuid, "guest")
    assert await parts.deleted(ref, 10.0)
    assert {u: parts.sim.state.track_of(u) for u in vms} == dict.fromkeys(vms, "host")


async def test_a_first_reconcile_whose_status_was_lost_is_read_by_the_next_process(sim: Simulator) -> None:
    """Scenario: process A's first reconcile of a Restore policy creates its records and writes every VM
    (host -> guest), but none of its status writes lands (the API server lost them), and A dies. Process
    B (a new controller over the same API state) finds an empty status: it takes the records for absent.
    Promise: the records A wrote are still found before B writes a status or acts, so B's statuses show
    host as the previous track and the Restore deletion puts back the ORIGINAL track (host)."""
    kube = CountingKube()
    async with running_parts(sim, kube) as first:
        vms = running_vms(first, "host", 3)
        ref = first.policy("p", vms, deletionPolicy="Restore")

        async def lost(*_: Any, **__: Any) -> Written:
            return Written(str(kube.objects[(POLICY_PLURAL, *ref)]["metadata"].get("resourceVersion") or ""))

        kube.write_status = lost  # type: ignore[method-assign]
        await reconciled(first, ref)
        assert {u: sim.state.track_of(u) for u in vms} == dict.fromkeys(vms, "guest")
    del kube.write_status  # the instance's stand-in goes: the class's guarded write again
    assert not first.status(ref), "none of A's status writes landed"
    assert kube.config_maps, "A's records are there"
    async with running_parts(sim, kube) as second:
        kube.patches.clear()
        await reconciled(second, ref)
        statuses = [status for who, status in kube.patches if who == "p"]
        assert statuses
        for status in statuses:
            assert {e["uuid"]: e.get("previousTrack") for e in status["vms"]} == dict.fromkeys(vms, "host")
        assert await second.deleted(ref, 10.0)
        assert {u: sim.state.track_of(u) for u in vms} == dict.fromkeys(vms, "host")


async def test_a_restarts_record_without_a_tracks_record_keeps_its_waits(parts: Parts) -> None:
    """Scenario: the pending-restarts record is there (VM 0 has waited for a restart since SINCE) and the
    previous-tracks record is not; the policy's status is empty, so its first reconcile here takes both for
    absent, creates the tracks record and meets the restarts record only at its create (409). Promise: a
    record found voids the reconcile and the next one starts from it: VM 0's wait is kept with its time,
    never replaced by the new reconcile's. (Fails if the create's 409 were taken for "replace it".)"""
    vms = running_vms(parts, "host", 3)
    ref = parts.policy("p", vms)
    name = record_name("p", RESTARTS_PREFIX)
    waits = encode_restarts({vms[0]: PendingRestart(SINCE)})
    await parts.kube.create_config_map(NS, record_body(ref, parts.uid(ref), name, {RESTARTS_KEY: waits}))
    parts.sim.state.set_track_behind(vms[0], "guest")
    await reconciled(parts, ref)
    assert ready(parts.status(ref))
    kept = decode_restarts(parts.kube.config_maps[(NS, name)]["data"][RESTARTS_KEY])
    assert set(kept) == set(vms)
    assert kept[vms[0]].since == SINCE

"""From ``kubectl apply`` to ZStack and back: Ready, per-VM results, and the knobs a user turns.

Real kube-apiserver + etcd, the simulator and the operator as separate processes; every assertion is on
what kubectl returns or what the simulator recorded.
"""

from __future__ import annotations

import time

from harness import (
    PAUSED,
    POLICY,
    RECONCILE_REQUESTED_AT,
    condition,
    condition_is,
    holds_for,
    phases,
    policy,
    vm_entries,
    wait_for,
)
from harness.e2e import E2E, READY_TIMEOUT, SECRET_NAME, SHORT_RESYNC

SUMMARY_ZEROES = ("pending", "failed", "notFound", "conflicted", "drifted")


def test_apply_reaches_ready_with_per_vm_phases_and_inventory(e2e: E2E) -> None:
    e2e.connect()
    to_change = e2e.vms.take(3, track="host")
    already = e2e.vms.take(2, track="guest")
    uuids = to_change + already
    e2e.tenant.apply(policy("windows", "guest", uuids))

    got = e2e.tenant.wait_ready("windows", timeout=READY_TIMEOUT)

    assert phases(got) == {**dict.fromkeys(to_change, "Applied"), **dict.fromkeys(already, "InSync")}
    simulated = {vm.uuid: vm for vm in e2e.simulator.admin.vms()}
    for uuid, entry in vm_entries(got).items():
        assert entry["observedTrack"] == "guest", entry
        inventory, vm = entry["inventory"], simulated[uuid]
        assert inventory["uuid"] == uuid
        assert inventory["name"] == vm.name
        assert inventory["platform"] == vm.platform
        assert inventory["state"] == vm.state
    summary = got["status"]["summary"]
    assert (summary["total"], summary["inSync"]) == (5, 5), summary
    assert all(summary[key] == 0 for key in SUMMARY_ZEROES), summary
    assert condition_is(got, "Synced", "True", "ReconcileSuccess"), condition(got, "Synced")
    assert got["status"]["observedGeneration"] == got["metadata"]["generation"]

    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest")
    writes = e2e.simulator.admin.stats().writes_for(uuids)
    assert sorted((w.uuid, w.track) for w in writes) == sorted((u, "guest") for u in to_change)

    conn = e2e.tenant.connection("default")
    assert condition_is(conn, "Ready", "True", "Connected"), conn.get("status")
    assert conn["status"]["version"] == "5.3.0"
    assert conn["status"]["clockTrackStorage"] == "ResourceConfig"
    e2e.tenant.wait_event("windows", "Applied", timeout=READY_TIMEOUT)


def test_policy_already_in_sync_makes_no_write_calls(e2e: E2E) -> None:
    e2e.connect()
    uuids = e2e.vms.take(4, track="host")
    before = e2e.simulator.admin.stats()
    e2e.tenant.apply(policy("in-sync", "host", uuids))

    got = e2e.tenant.wait_ready("in-sync", timeout=READY_TIMEOUT)

    assert phases(got) == dict.fromkeys(uuids, "InSync")
    after = e2e.simulator.admin.stats()
    assert after.count("SetVmClockTrack") == before.count("SetVmClockTrack")
    assert after.writes_for(uuids) == []


def test_unknown_vm_is_not_found_and_the_others_are_applied(e2e: E2E) -> None:
    e2e.connect()
    known = e2e.vms.take(2, track="host")
    missing = e2e.vms.unknown_uuid()
    e2e.tenant.apply(policy("partly-missing", "guest", [*known, missing]))

    expected = {**dict.fromkeys(known, "Applied"), missing: "NotFound"}
    got = e2e.tenant.wait_policy(
        "partly-missing",
        lambda p: phases(p) == expected and condition_is(p, "Ready", "False", "VmNotFound"),
        timeout=READY_TIMEOUT,
        what=f"phases {expected} and Ready=False/VmNotFound",
    )

    assert got["status"]["summary"]["notFound"] == 1
    assert e2e.simulator.admin.tracks(known) == dict.fromkeys(known, "guest")


def test_kubectl_wait_ready_does_not_pass_on_a_stale_status_after_a_spec_change(e2e: E2E) -> None:
    e2e.connect()
    uuids = e2e.vms.take(3, track="host")
    e2e.tenant.apply(policy("waited", "guest", uuids))
    ref, ns = f"{POLICY}/waited", e2e.namespace
    wait_args = ("wait", "--for=condition=Ready", ref, f"--timeout={READY_TIMEOUT:.0f}s")
    e2e.kubectl(*wait_args, namespace=ns)
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest")

    e2e.tenant.merge_patch(POLICY, "waited", {"spec": {"track": "host"}})
    e2e.kubectl(*wait_args, namespace=ns)

    got = e2e.tenant.policy("waited")
    ready = condition(got, "Ready")
    assert ready["status"] == "True"
    assert ready["observedGeneration"] == got["metadata"]["generation"] == 2
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "host")


def test_reconcile_requested_at_annotation_triggers_a_fresh_observation(e2e: E2E) -> None:
    e2e.connect()  # default resync (300 s): nothing but the annotation can re-observe within this test
    uuids = e2e.vms.take(2, track="host")
    e2e.tenant.apply(policy("poked", "guest", uuids))
    e2e.tenant.wait_ready("poked", timeout=READY_TIMEOUT)
    drifted = uuids[0]
    e2e.simulator.admin.set_track(drifted, "host")

    token = f"poke-{time.time_ns()}"
    e2e.tenant.annotate(POLICY, "poked", RECONCILE_REQUESTED_AT, token)

    e2e.tenant.wait_policy(
        "poked",
        lambda p: p.get("status", {}).get("lastHandledReconcileAt") == token,
        timeout=READY_TIMEOUT,
        what=f"status.lastHandledReconcileAt == {token}",
    )
    wait_for(
        lambda: e2e.simulator.admin.tracks([drifted]),
        lambda tracks: tracks == {drifted: "guest"},
        timeout=READY_TIMEOUT,
        what="the drift seen by the requested reconcile to be corrected",
    )
    e2e.tenant.wait_ready("poked", timeout=READY_TIMEOUT)


def test_paused_policy_writes_nothing_and_deletion_still_completes(e2e: E2E) -> None:
    e2e.connect()
    uuids = e2e.vms.take(2, track="host")
    paused = {PAUSED: "true"}
    e2e.tenant.apply(policy("paused", "guest", uuids, deletion="Restore", annotations=paused))

    e2e.tenant.wait_policy(
        "paused",
        lambda p: condition_is(p, "Synced", "False", "ReconcilePaused"),
        timeout=READY_TIMEOUT,
        what="Synced=False/ReconcilePaused",
    )
    holds_for(
        lambda: (e2e.simulator.admin.stats().writes_for(uuids), e2e.simulator.admin.tracks(uuids)),
        lambda seen: seen == ([], dict.fromkeys(uuids, "host")),
        duration=5,
        what="no write to a paused policy's VMs",
    )

    e2e.tenant.delete(POLICY, "paused", timeout=30)

    assert e2e.tenant.find(POLICY, "paused") is None
    assert e2e.simulator.admin.stats().writes_for(uuids) == []


def test_resuming_a_paused_policy_applies_it(e2e: E2E) -> None:
    e2e.connect()
    uuids = e2e.vms.take(2, track="host")
    e2e.tenant.apply(policy("resumed", "guest", uuids, annotations={PAUSED: "true"}))
    e2e.tenant.wait_policy(
        "resumed",
        lambda p: condition_is(p, "Synced", "False", "ReconcilePaused"),
        timeout=READY_TIMEOUT,
        what="Synced=False/ReconcilePaused",
    )
    assert e2e.simulator.admin.stats().writes_for(uuids) == []

    e2e.tenant.annotate(POLICY, "resumed", PAUSED, None)

    got = e2e.tenant.wait_ready("resumed", timeout=READY_TIMEOUT)
    assert condition_is(got, "Synced", "True", "ReconcileSuccess"), condition(got, "Synced")
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest")


def test_missing_secret_is_reported_by_name_and_the_policy_recovers_when_it_appears(e2e: E2E) -> None:
    e2e.connect(resync_seconds=SHORT_RESYNC, with_secret=False)
    uuids = e2e.vms.take(2, track="host")
    e2e.tenant.apply(policy("waiting-for-secret", "guest", uuids))

    conn = wait_for(
        lambda: e2e.tenant.connection("default"),
        lambda c: condition_is(c, "Ready", "False", "EndpointNotAllowed"),
        timeout=READY_TIMEOUT,
        what="connection Ready=False/EndpointNotAllowed (a missing Secret reads like a refusing one)",
    )
    assert SECRET_NAME in condition(conn, "Ready")["message"]
    got = e2e.tenant.wait_policy(
        "waiting-for-secret",
        lambda p: condition_is(p, "Ready", "False", "ConnectionNotReady"),
        timeout=READY_TIMEOUT,
        what="policy Ready=False/ConnectionNotReady",
    )
    assert SECRET_NAME in condition(got, "Ready")["message"], condition(got, "Ready")
    assert e2e.simulator.admin.stats().writes_for(uuids) == []

    e2e.tenant.apply(e2e.account_secret())

    wait_for(
        lambda: e2e.tenant.connection("default"),
        lambda c: condition_is(c, "Ready", "True", "Connected"),
        timeout=SHORT_RESYNC + READY_TIMEOUT,
        what="connection Ready=True/Connected once the Secret exists",
    )
    e2e.tenant.wait_ready("waiting-for-secret", timeout=SHORT_RESYNC + READY_TIMEOUT)
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest")


def test_conflicting_policies_younger_reports_conflict_and_nothing_flip_flops(e2e: E2E) -> None:
    e2e.connect(resync_seconds=SHORT_RESYNC)
    shared = e2e.vms.take(1, track="host")[0]
    only_older = e2e.vms.take(1, track="host")[0]
    only_younger = e2e.vms.take(1, track="guest")[0]
    e2e.tenant.apply(policy("older", "guest", [shared, only_older], resync_seconds=SHORT_RESYNC))
    e2e.tenant.wait_ready("older", timeout=READY_TIMEOUT)
    time.sleep(1.1)  # creationTimestamp has one-second resolution: make "older" unambiguous

    e2e.tenant.apply(policy("younger", "host", [shared, only_younger], resync_seconds=SHORT_RESYNC))

    owner = f"{e2e.namespace}/older"
    got = e2e.tenant.wait_policy(
        "younger",
        lambda p: (
            phases(p) == {shared: "Conflict", only_younger: "Applied"}
            and condition_is(p, "Ready", "False", "Conflict")
        ),
        timeout=READY_TIMEOUT,
        what="the shared VM in Conflict, the other Applied, Ready=False/Conflict",
    )
    assert vm_entries(got)[shared]["conflictWith"] == owner
    assert owner in condition(got, "Ready")["message"], condition(got, "Ready")
    assert got["status"]["summary"]["conflicted"] == 1
    e2e.tenant.wait_event("younger", "Conflict", timeout=READY_TIMEOUT)

    # Over three resync intervals of both policies, the shared VM keeps the owner's track and is written
    # at most once (the older policy's own change).
    holds_for(
        lambda: (e2e.simulator.admin.tracks([shared]), len(e2e.simulator.admin.stats().writes_for([shared]))),
        lambda seen: seen[0] == {shared: "guest"} and seen[1] <= 1,
        duration=3 * SHORT_RESYNC + 2,
        interval=0.5,
        what="the shared VM staying on the older policy's track without repeated writes",
    )
    assert condition_is(e2e.tenant.policy("older"), "Ready", "True")
    assert e2e.simulator.admin.tracks([only_younger]) == {only_younger: "host"}

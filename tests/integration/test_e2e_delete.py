"""Deleting policies: ``Restore`` puts the previous tracks back, ``Orphan`` never needs the operator."""

from __future__ import annotations

from harness import GROUP, POLICY, policy, vm_entries, wait_for
from harness.e2e import E2E, READY_TIMEOUT


def test_restore_puts_previous_tracks_back_on_removal_and_on_deletion(e2e: E2E) -> None:
    e2e.connect()
    changed = e2e.vms.take(2, track="host")
    unchanged = e2e.vms.take(1, track="guest")
    e2e.tenant.apply(policy("restorer", "guest", changed + unchanged, deletion="Restore"))
    got = e2e.tenant.wait_ready("restorer", timeout=READY_TIMEOUT)
    entries = vm_entries(got)
    assert {u: entries[u].get("previousTrack") for u in changed} == dict.fromkeys(changed, "host")
    assert any(f.startswith(f"{GROUP}/") for f in got["metadata"].get("finalizers", [])), got["metadata"]
    assert e2e.simulator.admin.tracks(changed + unchanged) == dict.fromkeys(changed + unchanged, "guest")

    removed, kept = changed
    e2e.tenant.merge_patch(POLICY, "restorer", {"spec": {"vmUuids": [kept, *unchanged]}})
    wait_for(
        lambda: e2e.simulator.admin.tracks([removed]),
        lambda tracks: tracks == {removed: "host"},
        timeout=READY_TIMEOUT,
        what="the VM removed from vmUuids to get its previous track back",
    )
    got = e2e.tenant.wait_ready("restorer", timeout=READY_TIMEOUT)
    assert set(vm_entries(got)) == {kept, *unchanged}

    e2e.tenant.delete(POLICY, "restorer", timeout=READY_TIMEOUT)

    assert e2e.tenant.find(POLICY, "restorer") is None
    assert e2e.simulator.admin.tracks(changed + unchanged) == {
        removed: "host",
        kept: "host",
        **dict.fromkeys(unchanged, "guest"),
    }
    e2e.tenant.wait_event("restorer", "Restored", timeout=READY_TIMEOUT)


def test_orphan_deletion_completes_while_the_operator_is_stopped(e2e: E2E) -> None:
    e2e.connect()
    uuids = e2e.vms.take(2, track="host")
    e2e.tenant.apply(policy("orphaned", "guest", uuids))
    got = e2e.tenant.wait_ready("orphaned", timeout=READY_TIMEOUT)
    assert got["metadata"].get("finalizers", []) == []
    writes = len(e2e.simulator.admin.stats().writes_for(uuids))

    e2e.operator.stop()
    try:
        e2e.tenant.delete(POLICY, "orphaned", timeout=30)
        assert e2e.tenant.find(POLICY, "orphaned") is None
    finally:
        e2e.operator.start()

    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest")
    assert len(e2e.simulator.admin.stats().writes_for(uuids)) == writes

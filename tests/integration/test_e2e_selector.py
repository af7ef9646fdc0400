"""Selector policies end to end (issue 10): VMs chosen by what they are, resolved at every resync.

Real kube-apiserver + etcd, the simulator and the operator as processes. The module's simulator has 10,000
VMs, so the last test can select all of them; the earlier tests each tag a handful of VMs with a user tag
of their own and select `platforms: [Windows, WindowsVirtio]` plus that tag, so they never touch each
other's VMs. Verdicts come from the simulator's track table and write log and from the API server.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from harness import POLICY, SimulatorProcess, condition, wait_for
from harness.credentials import RunCredentials
from harness.e2e import DRIFT_SLACK, E2E, READY_TIMEOUT, SHORT_RESYNC, module_simulator
from harness.objects import API_VERSION, Obj
from vmclock.engine.records import decode_record, decode_record_with_origins

SIMULATED_VMS = 10_000
JOB_LATENCY = 0.01
"""Seconds each simulated async job takes: small, so that 10,000 writes fit in a test's time."""
SLOW_CALL = 0.05
"""Seconds added to every request while a test needs to act in the middle of the 10,000-VM apply."""
BIG_TIMEOUT = 600.0
WINDOWS = ["Windows", "WindowsVirtio"]
EVERY_PLATFORM = ["Windows", "WindowsVirtio", "Linux", "Paravirtualization", "Other"]


@pytest.fixture(scope="module")
def simulator(
    tmp_path_factory: pytest.TempPathFactory, credentials: RunCredentials
) -> Iterator[SimulatorProcess]:
    made = module_simulator(tmp_path_factory.mktemp("simulator"), credentials, vms=SIMULATED_VMS)
    with replace(made, job_latency=JOB_LATENCY) as sim:
        yield sim


def selector_policy(
    name: str,
    track: str,
    selector: Obj,
    *,
    deletion: str = "Orphan",
    resync_seconds: int = SHORT_RESYNC,
) -> Obj:
    spec: Obj = {
        "track": track,
        "selector": selector,
        "deletionPolicy": deletion,
        "resyncIntervalSeconds": resync_seconds,
    }
    return {"apiVersion": API_VERSION, "kind": "VmClockPolicy", "metadata": {"name": name}, "spec": spec}


def tag_vms(e2e: E2E, count: int, *, platforms: list[str], track: str) -> tuple[str, list[str]]:
    """`count` unused VMs of `platforms` with seeded `track`, tagged with a user tag of this test's own."""
    tag = f"e2e-{secrets.token_hex(4)}"
    uuids = e2e.vms.take(count, track=track, where=lambda vm: vm.platform in platforms)
    for uuid in uuids:
        e2e.simulator.admin.add_user_tag(uuid, tag)
    return tag, uuids


def summary(obj: Obj) -> dict[str, Any]:
    found: dict[str, Any] = obj.get("status", {}).get("summary", {})
    return found


def record(e2e: E2E, policy_name: str) -> Obj | None:
    return e2e.tenant.find("configmap", f"vmclock-tracks-{policy_name}")


def wait_tracks(e2e: E2E, wanted: dict[str, str], *, timeout: float, what: str) -> None:
    wait_for(
        lambda: e2e.simulator.admin.tracks(wanted),
        lambda tracks: tracks == wanted,
        timeout=timeout,
        interval=0.5,
        what=what,
    )


WITHIN_ONE_RESYNC = SHORT_RESYNC + DRIFT_SLACK


def delete_policy(e2e: E2E, name: str, *, timeout: float) -> None:
    """Delete and wait until it is gone; its record ConfigMap goes with it (the operator deletes it)."""
    e2e.tenant.delete(POLICY, name, timeout=timeout)
    wait_for(
        lambda: record(e2e, name), lambda found: found is None, timeout=30, what=f"{name}'s record deleted"
    )


def test_a_windows_selector_policy_converges_and_follows_the_fleet(e2e: E2E) -> None:
    e2e.connect()
    tag, windows = tag_vms(e2e, 6, platforms=WINDOWS, track="host")
    linux = e2e.vms.take(2, track="host", where=lambda vm: vm.platform == "Linux")
    for uuid in linux:
        e2e.simulator.admin.add_user_tag(uuid, tag)
    selector = {"platforms": WINDOWS, "userTags": [tag]}
    e2e.tenant.apply(selector_policy("windows", "guest", selector, deletion="Restore"))

    got = e2e.tenant.wait_ready("windows", timeout=READY_TIMEOUT)
    assert e2e.simulator.admin.tracks(windows + linux) == {
        **dict.fromkeys(windows, "guest"),
        **dict.fromkeys(linux, "host"),
    }
    assert summary(got)["total"] == 6, summary(got)
    assert got["status"]["selector"]["matched"] == 6
    assert got["status"]["selector"]["omitted"] == 0
    stored = record(e2e, "windows")
    assert stored is not None, "the previous tracks are recorded in a ConfigMap"
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "vmclock"
    assert [o["uid"] for o in stored["metadata"]["ownerReferences"]] == [got["metadata"]["uid"]]
    recorded = decode_record_with_origins(stored["data"]["previousTracks"])
    assert sorted(recorded[0]) == sorted(windows)
    assert set(recorded[1].values()) == {f"{e2e.simulator.endpoint}/zstack#{e2e.credentials.account}"}, (
        "each change names the management node and account it was made through"
    )

    newcomer = e2e.simulator.admin.add_vm("win-next-week", platform="Windows", user_tags=[tag], track="host")
    wait_tracks(
        e2e, {newcomer.uuid: "guest"}, timeout=WITHIN_ONE_RESYNC, what="a new Windows VM to get the track"
    )

    reinstalled, untagged = windows[:2]
    e2e.simulator.admin.set_platform(reinstalled, "Linux")
    e2e.simulator.admin.remove_user_tag(untagged, tag)
    wait_tracks(
        e2e,
        {reinstalled: "host", untagged: "host"},
        timeout=WITHIN_ONE_RESYNC,
        what="VMs that stopped matching to be restored (Restore)",
    )
    got = e2e.tenant.wait_policy(
        "windows", lambda p: summary(p).get("total") == 5, timeout=READY_TIMEOUT, what="5 VMs counted"
    )

    delete_policy(e2e, "windows", timeout=READY_TIMEOUT)
    assert e2e.simulator.admin.tracks([*windows, newcomer.uuid]) == dict.fromkeys(
        [*windows, newcomer.uuid], "host"
    )


def test_an_orphan_selector_policy_leaves_a_vm_that_stops_matching(e2e: E2E) -> None:
    e2e.connect()
    tag, windows = tag_vms(e2e, 3, platforms=WINDOWS, track="host")
    e2e.tenant.apply(selector_policy("orphan", "guest", {"platforms": WINDOWS, "userTags": [tag]}))
    e2e.tenant.wait_ready("orphan", timeout=READY_TIMEOUT)
    leaver = windows[0]
    e2e.simulator.admin.set_platform(leaver, "Other")
    e2e.tenant.wait_policy(
        "orphan", lambda p: summary(p).get("total") == 2, timeout=WITHIN_ONE_RESYNC, what="2 VMs counted"
    )
    time.sleep(1)
    assert e2e.simulator.admin.tracks(windows) == dict.fromkeys(windows, "guest"), "Orphan: left as it is"
    assert e2e.simulator.admin.stats().writes_for([leaver])[-1].track == "guest"

    delete_policy(e2e, "orphan", timeout=READY_TIMEOUT)


def test_a_uuid_policy_beats_the_selector_policy_without_a_conflict(e2e: E2E) -> None:
    e2e.connect()
    tag, windows = tag_vms(e2e, 4, platforms=WINDOWS, track="guest")
    e2e.tenant.apply(selector_policy("broad", "host", {"platforms": WINDOWS, "userTags": [tag]}))
    e2e.tenant.wait_ready("broad", timeout=READY_TIMEOUT)
    exact = {
        "apiVersion": API_VERSION,
        "kind": "VmClockPolicy",
        "metadata": {"name": "exact"},
        "spec": {"track": "guest", "vmUuids": windows[:1], "resyncIntervalSeconds": SHORT_RESYNC},
    }
    e2e.tenant.apply(exact)

    broad = e2e.tenant.wait_policy(
        "broad",
        lambda p: summary(p).get("total") == 3 and condition(p, "Ready").get("status") == "True",
        timeout=WITHIN_ONE_RESYNC + READY_TIMEOUT,
        what="the selector policy to leave the VM named by UUID",
    )
    e2e.tenant.wait_ready("exact", timeout=READY_TIMEOUT)
    wait_tracks(
        e2e,
        {windows[0]: "guest", **dict.fromkeys(windows[1:], "host")},
        timeout=WITHIN_ONE_RESYNC,
        what="the UUID policy's track on its VM, the selector's on the others",
    )
    assert summary(broad)["conflicted"] == 0
    assert "left to policies that list them" in broad["status"]["selector"]["message"]
    assert summary(e2e.tenant.policy("exact"))["conflicted"] == 0
    reasons = e2e.tenant.event_reasons("broad") + e2e.tenant.event_reasons("exact")
    assert "Conflict" not in reasons
    # The namespace is deleted without waiting: make way for the next test's policies on these VMs now.
    e2e.tenant.delete(POLICY, "exact", timeout=READY_TIMEOUT)
    delete_policy(e2e, "broad", timeout=READY_TIMEOUT)


def test_deleting_a_10000_vm_restore_policy_restores_every_vm(e2e: E2E) -> None:
    e2e.connect()
    original = e2e.simulator.admin.tracks()
    e2e.tenant.apply(selector_policy("fleet", "guest", {"platforms": EVERY_PLATFORM}, deletion="Restore"))
    got = e2e.tenant.wait_ready("fleet", timeout=BIG_TIMEOUT)
    assert summary(got)["total"] == len(original)
    assert all(track == "guest" for track in e2e.simulator.admin.tracks().values())

    delete_policy(e2e, "fleet", timeout=BIG_TIMEOUT)
    after = e2e.simulator.admin.tracks()
    wrong = {u: t for u, t in after.items() if t != original[u]}
    assert not wrong, f"{len(wrong)} of {len(original)} VMs not restored, e.g. {list(wrong.items())[:3]}"


def test_deleting_a_10000_vm_restore_policy_restores_every_vm_also_after_a_kill_mid_apply(e2e: E2E) -> None:
    e2e.connect()
    original = e2e.simulator.admin.tracks()
    assert len(original) >= SIMULATED_VMS
    to_write = sum(1 for track in original.values() if track != "guest")
    e2e.simulator.admin.set_faults(latency=SLOW_CALL)
    earlier = e2e.simulator.admin.stats().count("SetVmClockTrack")
    e2e.tenant.apply(selector_policy("fleet", "guest", {"platforms": EVERY_PLATFORM}, deletion="Restore"))

    at_kill = wait_for(
        lambda: e2e.simulator.admin.stats().count("SetVmClockTrack") - earlier,
        lambda writes: writes >= 300,
        timeout=BIG_TIMEOUT,
        interval=0.5,
        what="the 10,000-VM apply to be under way",
    )
    e2e.operator.kill()
    try:
        assert at_kill < to_write, f"the apply finished ({at_kill} writes) before the kill"
        stored = record(e2e, "fleet")
        assert stored is not None, "the record was written before the first write"
        recorded = len(decode_record(stored["data"]["previousTracks"]))
        assert recorded >= to_write, f"{recorded} lines recorded, {to_write} VMs to write"
        e2e.simulator.admin.clear_faults()
    finally:
        e2e.operator.start()

    got = e2e.tenant.wait_ready("fleet", timeout=BIG_TIMEOUT)
    assert summary(got)["total"] == len(original)
    assert len(got["status"]["vms"]) <= 500
    assert got["status"]["selector"]["omitted"] == len(original) - len(got["status"]["vms"])
    assert all(track == "guest" for track in e2e.simulator.admin.tracks().values())

    delete_policy(e2e, "fleet", timeout=BIG_TIMEOUT)
    after = e2e.simulator.admin.tracks()
    wrong = {u: t for u, t in after.items() if t != original[u]}
    assert not wrong, f"{len(wrong)} of {len(original)} VMs not restored, e.g. {list(wrong.items())[:3]}"
    print(f"killed after {at_kill} writes of {to_write}")

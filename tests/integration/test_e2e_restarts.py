"""Pending restarts end to end (issue 17): a selector policy over more running Windows VMs than status lists.

Real kube-apiserver + etcd, the simulator and the operator as processes. The test creates its own 520 running
Windows VMs in the simulator (tagged with a tag of its own, on track host), so a selector policy for `guest`
leaves every one of them waiting for a restart while status lists only 500. Restarts are made the way
ZStack users make them, through the simulator's admin API (stop, then start: the VM's lastOpDate moves on).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from harness import condition
from harness.e2e import DRIFT_SLACK, E2E, SHORT_RESYNC
from harness.objects import API_VERSION, Obj, condition_is
from vmclock.engine.pending import decode_restarts

FLEET = 520
LISTED = 500  # status.vms of a selector policy lists at most this many (engine/report.py MAX_LISTED)
WITHIN_ONE_RESYNC = SHORT_RESYNC + DRIFT_SLACK
APPLY_TIMEOUT = 180.0  # 520 writes on a loaded 2-core machine


def selector_policy(name: str, tag: str) -> Obj:
    spec: Obj = {
        "track": "guest",
        "selector": {"platforms": ["Windows", "WindowsVirtio"], "userTags": [tag]},
        "resyncIntervalSeconds": SHORT_RESYNC,
    }
    return {"apiVersion": API_VERSION, "kind": "VmClockPolicy", "metadata": {"name": name}, "spec": spec}


def running_windows_fleet(e2e: E2E, count: int) -> tuple[str, list[str]]:
    tag = f"e2e-{secrets.token_hex(4)}"
    admin = e2e.simulator.admin
    made = [
        admin.add_vm(f"{tag}-{n}", platform="Windows", state="Running", track="host", user_tags=[tag])
        for n in range(count)
    ]
    return tag, sorted(vm.uuid for vm in made)


def restart(e2e: E2E, uuids: list[str]) -> None:
    for uuid in uuids:
        e2e.simulator.admin.set_state(uuid, "Stopped")
        e2e.simulator.admin.set_state(uuid, "Running")


def pending(obj: Obj) -> Any:
    return obj.get("status", {}).get("summary", {}).get("pendingRestart")


def effective(obj: Obj) -> tuple[Any, Any, str]:
    found = condition(obj, "Effective")
    return found.get("status"), found.get("reason"), str(found.get("message", ""))


def completed_events(e2e: E2E, name: str) -> list[Obj]:
    return [
        e for e in e2e.tenant.events(name) if e["reason"] == "RestartsCompleted" and e["type"] == "Normal"
    ]


def test_restarts_pending_beyond_the_listed_vms_are_counted_and_clear(e2e: E2E) -> None:
    e2e.connect()
    tag, fleet = running_windows_fleet(e2e, FLEET)
    e2e.tenant.apply(selector_policy("fleet", tag))

    got = e2e.tenant.wait_policy(
        "fleet",
        lambda p: condition_is(p, "Ready", "True") and pending(p) == FLEET,
        timeout=APPLY_TIMEOUT,
        what=f"Ready with {FLEET} restarts pending",
    )
    assert e2e.simulator.admin.tracks(fleet) == dict.fromkeys(fleet, "guest")
    assert len(got["status"]["vms"]) == LISTED
    state = effective(got)
    assert state[:2] == ("False", "RestartPending"), state
    assert state[2].startswith(f"{FLEET} VMs wait for a restart, the oldest since "), state
    restarts = e2e.tenant.find("configmap", "vmclock-restarts-fleet")
    assert restarts is not None
    assert set(decode_restarts(restarts["data"]["pendingRestarts"])) == set(fleet)

    # Restart some listed and half the unlisted VMs: the count falls by exactly those (the other unlisted
    # ones, which no status lists, still count).
    listed = {vm["uuid"] for vm in got["status"]["vms"]}
    unlisted = [u for u in fleet if u not in listed]
    assert len(unlisted) == FLEET - LISTED
    first_batch = unlisted[: len(unlisted) // 2] + sorted(listed)[:70]
    restart(e2e, first_batch)
    after = e2e.tenant.wait_policy(
        "fleet",
        lambda p: pending(p) == FLEET - len(first_batch),
        timeout=WITHIN_ONE_RESYNC * 2,
        what="the restarted VMs no longer counted",
    )
    assert effective(after)[:2] == ("False", "RestartPending")
    assert completed_events(e2e, "fleet") == []

    # Restart the rest: Effective turns True and one RestartsCompleted Event says so.
    restart(e2e, [u for u in fleet if u not in first_batch])
    done = e2e.tenant.wait_policy(
        "fleet",
        lambda p: effective(p)[0] == "True",
        timeout=WITHIN_ONE_RESYNC * 2,
        what="Effective=True once every VM restarted",
    )
    assert pending(done) == 0
    assert effective(done)[1] == "TrackEffective"
    assert "pendingRestartSince" not in done["status"]
    e2e.tenant.wait_event("fleet", "RestartsCompleted", timeout=30)

    # Later resyncs find nothing new: still one Event, and the status is not written again.
    before = e2e.tenant.policy("fleet")
    queries = e2e.simulator.admin.stats().count("QueryVmInstance")
    time.sleep(2 * SHORT_RESYNC + DRIFT_SLACK)
    assert e2e.simulator.admin.stats().count("QueryVmInstance") > queries, "resyncs happened meanwhile"
    assert e2e.tenant.policy("fleet")["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert sum(e.get("count") or 1 for e in completed_events(e2e, "fleet")) == 1

"""Opt-in rolling restarts on the real control plane, the simulator and the real operator process.

A Rolling policy reboots the running Windows VMs it changed, inside its maintenance window only (computed
around now), at most maxConcurrent at a time (the simulator's own record of every reboot says how many ran
at once); a VM that does not come back halts the rollout; a kill -9 mid-rollout never reboots a VM twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness import (
    Obj,
    SimulatorProcess,
    SimVm,
    condition,
    condition_is,
    holds_for,
    policy,
    vm_entries,
    wait_for,
)
from harness.credentials import RunCredentials
from harness.e2e import E2E, READY_TIMEOUT
from harness.simulator import SimReboot

REBOOT_SECONDS = 2.0
"""How long each simulated reboot keeps its VM Rebooting: long enough to overlap and to be caught."""

JOB_LATENCY = 10.0
"""How long every simulated job waits before it runs: a reboot accepted by ZStack leaves the VM Running (and
waiting for its restart) that long, longer than the operator takes to start again after a kill -9, so a
restarted operator that did not know it had sent the reboot would send it again."""

ROLLOUT_TIMEOUT = 180.0
"""A few reboots of JOB_LATENCY + REBOOT_SECONDS in batches, plus reconciles on a loaded 2-core machine."""


@pytest.fixture(scope="module")
def simulator(
    tmp_path_factory: pytest.TempPathFactory, credentials: RunCredentials
) -> Iterator[SimulatorProcess]:
    with SimulatorProcess(
        log_path=tmp_path_factory.mktemp("simulator") / "simulator.log",
        vms=150,
        seed=17,
        accounts=credentials.simulator_accounts,
        access_keys=credentials.simulator_access_keys,
        reboot_seconds=REBOOT_SECONDS,
        job_latency=JOB_LATENCY,
    ) as sim:
        yield sim


@pytest.fixture(autouse=True)
def healthy_zstack_afterwards(simulator: SimulatorProcess) -> Iterator[None]:
    yield
    simulator.admin.clear_faults()


def running_windows(vm: SimVm) -> bool:
    return vm.platform in ("Windows", "WindowsVirtio") and vm.state == "Running"


def window(*, opens_in: timedelta, duration: str = "1h") -> dict[str, str]:
    """A daily window whose fire time is now + `opens_in` (UTC minutes)."""
    fire = datetime.now(UTC) + opens_in
    return {"schedule": f"{fire.minute} {fire.hour} * * *", "duration": duration, "timeZone": "UTC"}


def rolling(name: str, uuids: list[str], *, max_concurrent: int = 1, **window_args: Any) -> Obj:
    body = policy(name, "guest", uuids)
    maintenance = window(**window_args) if window_args else window(opens_in=timedelta(minutes=-1))
    body["spec"]["restart"] = {
        "policy": "Rolling",
        "maintenanceWindow": maintenance,
        "maxConcurrent": max_concurrent,
    }
    return body


def reboots(e2e: E2E, uuids: list[str]) -> list[SimReboot]:
    return e2e.simulator.admin.stats().reboots_of(uuids)


def peak(intervals: list[SimReboot]) -> int:
    """The most reboots of these VMs that ran at the same moment."""
    edges = sorted([(r.start, 1) for r in intervals] + [(r.end, -1) for r in intervals])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def wait_rolled_out(e2e: E2E, name: str) -> Obj:
    return e2e.tenant.wait_policy(
        name,
        lambda p: (
            condition_is(p, "Rollout", "True", "Complete")
            and not any(e.get("pendingRestart") for e in vm_entries(p).values())
            and condition_is(p, "Effective", "True", "TrackEffective")
        ),
        timeout=ROLLOUT_TIMEOUT,
        what="the rollout to finish, every pendingRestart to clear and the track to be Effective",
    )


def rollout(obj: Obj) -> Obj:
    return condition(obj, "Rollout")


def test_a_rolling_policy_reboots_its_waiting_vms_inside_the_window_within_max_concurrent(e2e: E2E) -> None:
    e2e.connect()
    uuids = e2e.vms.take(5, track="host", where=running_windows)

    e2e.tenant.apply(rolling("roll", uuids, max_concurrent=2))
    got = wait_rolled_out(e2e, "roll")

    done = reboots(e2e, uuids)
    assert sorted(r.uuid for r in done) == sorted(uuids)  # each exactly once
    assert all(r.ok for r in done)
    assert peak(done) == 2, done  # batches of two overlapped, never three
    assert {
        vm.uuid: vm.domain_track for vm in e2e.simulator.admin.vms() if vm.uuid in uuids
    } == dict.fromkeys(uuids, "guest")
    assert condition_is(got, "Ready", "True", "Available"), condition(got, "Ready")
    e2e.tenant.wait_event("roll", "RolloutFinished", timeout=READY_TIMEOUT)
    assert "RebootBatch" in e2e.tenant.event_reasons("roll")


def test_a_window_that_is_not_open_reboots_nothing(e2e: E2E) -> None:
    e2e.connect()
    uuids = e2e.vms.take(2, track="host", where=running_windows)

    e2e.tenant.apply(rolling("later", uuids, opens_in=timedelta(hours=2)))
    got = e2e.tenant.wait_policy(
        "later",
        lambda p: condition_is(p, "Rollout", "True", "WindowClosed"),
        timeout=READY_TIMEOUT,
        what="the rollout to wait for its window",
    )

    assert "2 VMs wait for a restart" in rollout(got)["message"], rollout(got)
    holds_for(lambda: reboots(e2e, uuids), lambda seen: seen == [], duration=5.0, what="no reboot")
    waiting = e2e.tenant.policy("later")
    assert all(e["pendingRestart"] for e in vm_entries(waiting).values())
    assert condition_is(waiting, "Effective", "False", "RestartPending"), condition(waiting, "Effective")
    assert waiting["status"]["summary"]["pendingRestart"] == 2


def test_a_vm_that_does_not_come_back_halts_the_rollout_until_asked_again(e2e: E2E) -> None:
    e2e.connect()
    uuids = sorted(e2e.vms.take(3, track="host", where=running_windows))
    stuck = uuids[0]  # the rollout goes in uuid order, one at a time
    e2e.simulator.admin.set_faults(reboot_failures={stuck: "Stopped"})

    e2e.tenant.apply(rolling("stuck", uuids))
    got = e2e.tenant.wait_policy(
        "stuck",
        lambda p: condition_is(p, "Rollout", "False", "Halted"),
        timeout=ROLLOUT_TIMEOUT,
        what="the rollout to halt",
    )

    assert stuck in rollout(got)["message"], rollout(got)
    assert "VM.1003" in rollout(got)["message"], rollout(got)
    e2e.tenant.wait_event("stuck", "RolloutHalted", timeout=READY_TIMEOUT)
    holds_for(
        lambda: [r.uuid for r in reboots(e2e, uuids)],
        lambda seen: seen == [stuck],
        duration=5.0,
        what="nothing rebooted after the halt",
    )

    e2e.simulator.admin.clear_faults()
    e2e.tenant.annotate("VmClockPolicy", "stuck", "vmclock.zstack.io/reconcile-requested-at", "resume-1")
    e2e.tenant.wait_policy(
        "stuck",
        lambda p: condition_is(p, "Rollout", "True", "Complete"),
        timeout=ROLLOUT_TIMEOUT,
        what="the rollout to resume and finish",
    )
    assert sorted(r.uuid for r in reboots(e2e, uuids)) == uuids  # the stuck VM is not rebooted again


def test_a_kill_9_mid_rollout_never_reboots_a_vm_twice(e2e: E2E) -> None:
    """Killed right after a reboot was submitted, while ZStack still holds it: the restarted operator sees
    the VM Running and waiting for its restart; only the recorded intent keeps it from rebooting it again."""
    e2e.connect()
    uuids = e2e.vms.take(4, track="host", where=running_windows)
    submitted = e2e.simulator.admin.stats().count("RebootVmInstance")

    e2e.tenant.apply(rolling("crash", uuids, max_concurrent=2))
    wait_for(
        e2e.simulator.admin.stats,
        lambda stats: stats.count("RebootVmInstance") > submitted,
        timeout=ROLLOUT_TIMEOUT,
        interval=0.1,
        what="the rollout's first reboot to be submitted",
    )
    e2e.operator.kill()
    assert e2e.simulator.admin.stats().rebooting == []  # ZStack has not started it yet
    e2e.operator.start()

    wait_rolled_out(e2e, "crash")
    done = reboots(e2e, uuids)
    assert sorted(r.uuid for r in done) == sorted(uuids), done  # every VM once, none twice
    assert peak(done) <= 2


def test_the_reboot_intents_live_in_a_configmap_the_policy_owns_and_never_in_someone_elses(e2e: E2E) -> None:
    e2e.connect()
    first, second = e2e.vms.take(2, track="host", where=running_windows)
    e2e.tenant.apply(rolling("owned", [first]))
    got = wait_rolled_out(e2e, "owned")
    record = e2e.tenant.find("configmap", "vmclock-reboots-owned")
    assert record is not None, "the rollout records its reboots in a ConfigMap"
    assert [o["uid"] for o in record["metadata"]["ownerReferences"]] == [got["metadata"]["uid"]]
    assert first in record["data"]["rollout"]

    someone_elses = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vmclock-reboots-taken"}}
    e2e.tenant.apply({**someone_elses, "data": {"note": "not the operator's"}})
    e2e.tenant.apply(rolling("taken", [second]))
    got = e2e.tenant.wait_policy(
        "taken",
        lambda p: condition_is(p, "Rollout", "False", "RecordConflict"),
        timeout=READY_TIMEOUT,
        what="the rollout to refuse a record it does not own",
    )
    assert "vmclock-reboots-taken" in rollout(got)["message"]
    e2e.tenant.wait_event("taken", "RecordConflict", timeout=READY_TIMEOUT)
    assert reboots(e2e, [second]) == []
    assert e2e.tenant.get("configmap", "vmclock-reboots-taken")["data"] == {"note": "not the operator's"}

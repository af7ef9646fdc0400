"""The core loop under crashes, faults and races (design.md §5), end to end.

Real kube-apiserver + etcd, the simulator and the operator as processes. Each test stretches a reconcile
(1,000 VMs, injected latency) so that something can happen in its middle: a SIGKILL, a namespace deletion,
ZStack going away, a Secret rotation, a track flip, a delete and re-create. Every verdict comes from the
simulator's write log and track table, the API server's objects and Events, or the operator's metrics.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from controlplane import Kubectl
from harness import (
    GROUP,
    POLICY,
    SimulatorProcess,
    access_key_secret,
    account_secret,
    condition,
    connection,
    holds_for,
    phases,
    policy,
    vm_entries,
    wait_for,
)
from harness.credentials import RunCredentials
from harness.e2e import CONNECTION_NAME, E2E, READY_TIMEOUT, SECRET_NAME, SHORT_RESYNC, module_simulator
from harness.metrics import scrape
from harness.objects import Obj
from harness.watch import KubectlWatch
from vmclock.engine.records import decode_record

SIMULATED_VMS = 4_800
"""About 80 % of the seeded VMs are on track host (inherited or explicit): enough unused ones for every
test below, so each test can attribute every write in the simulator's log to itself."""

BIG = 1_000
SLOW_CALL = 0.2
"""Seconds the simulator adds to every ZStack request while a test needs to act in the middle of an apply
(a 1,000-VM apply then takes tens of seconds instead of about two)."""

EFFECT_SLACK = 3.0  # a job's run and the simulator's scheduling under load, after its submit left
"""The operator's bound on SetVmClockTrack jobs in flight per reconcile (16 request slots x 4)."""

RESTORE_TIMEOUT = 180.0
"""A restore after a failure waits for the policy's backoff (full jitter, growing) or the connection's
re-check (up to a minute) to notice that ZStack is back."""


@pytest.fixture(scope="module")
def simulator(
    tmp_path_factory: pytest.TempPathFactory, credentials: RunCredentials
) -> Iterator[SimulatorProcess]:
    """Like the conftest's, with enough VMs for several 1,000-VM policies (jobs take the default 50 ms)."""
    with module_simulator(tmp_path_factory.mktemp("simulator"), credentials, vms=SIMULATED_VMS) as sim:
        yield sim


@pytest.fixture(autouse=True)
def healthy_zstack_afterwards(simulator: SimulatorProcess) -> Iterator[None]:
    """Faults are simulator-wide: never leave them on for the next test."""
    yield
    simulator.admin.clear_faults()


def written(e2e: E2E, uuids: list[str]) -> int:
    return len(e2e.simulator.admin.stats().writes_for(uuids))


def wait_written(e2e: E2E, uuids: list[str], at_least: int) -> int:
    """Wait until ``at_least`` of the VMs' writes completed; returns how many had when it returned."""
    return wait_for(
        lambda: written(e2e, uuids),
        lambda count: count >= at_least,
        timeout=READY_TIMEOUT,
        interval=0.1,
        what=f"at least {at_least} completed writes",
    )


def original_tracks(e2e: E2E, uuids: list[str]) -> dict[str, str]:
    """The tracks the VMs had when the module's simulator started (no earlier test touched them)."""
    return {uuid: e2e.vms.by_uuid(uuid).track for uuid in uuids}


def ready_reason(obj: Obj) -> tuple[str, str]:
    ready = condition(obj, "Ready")
    return ready.get("reason", ""), ready.get("message", "")


def gone_or_ready_reason(e2e: E2E, name: str) -> tuple[str, str] | None:
    found = e2e.tenant.find(POLICY, name)
    return None if found is None else ready_reason(found)


def gone_or_pending_because_of(cause: str) -> Callable[[tuple[str, str] | None], bool]:
    """Until-predicate: the policy is gone (the caller fails on that) or RestorePending naming ``cause``."""

    def until(seen: tuple[str, str] | None) -> bool:
        return seen is None or (seen[0] == "RestorePending" and cause in seen[1])

    return until


def delete_and_wait(e2e: E2E, name: str, *, wait: bool = True) -> None:
    """``kubectl delete --wait=false``, then (unless told not to) wait here: a restore can outlast the
    kubectl subprocess timeout."""
    e2e.kubectl("delete", POLICY, name, "--wait=false", namespace=e2e.namespace)
    if wait:
        wait_gone(e2e, name, what=f"policy {name} to be deleted")


def wait_gone(e2e: E2E, name: str, *, what: str) -> None:
    wait_for(
        lambda: e2e.tenant.find(POLICY, name), lambda found: found is None, timeout=RESTORE_TIMEOUT, what=what
    )


def compact(obj: Obj) -> Obj:
    """What a failed wait shows of a big policy: its verdicts, not its thousand UUIDs."""
    status = obj.get("status") or {}
    return {
        "uid": obj["metadata"]["uid"],
        "generation": obj["metadata"]["generation"],
        "deleting": "deletionTimestamp" in obj["metadata"],
        "observedGeneration": status.get("observedGeneration"),
        "conditions": status.get("conditions"),
        "summary": status.get("summary"),
        "connection": status.get("connection"),
        "some vms": (status.get("vms") or [])[:3],
    }


def wait_ready(e2e: E2E, name: str, *, timeout: float) -> Obj:
    """Ready=True for the current generation; on timeout the message shows the status, compacted."""
    wait_for(
        lambda: compact(e2e.tenant.policy(name)),
        lambda seen: any(
            c["type"] == "Ready"
            and c["status"] == "True"
            and c.get("observedGeneration") == seen["generation"]
            for c in seen["conditions"] or []
        ),
        timeout=timeout,
        what=f"Ready=True for the current generation of {name}",
    )
    return e2e.tenant.policy(name)


def wait_no_more_writes(e2e: E2E, uuids: list[str], *, quiet: float = 5.0) -> int:
    """Wait until no write to ``uuids`` completed for ``quiet`` seconds; returns how many completed."""
    history: list[tuple[float, int]] = []

    def probe() -> list[tuple[float, int]]:
        history.append((time.monotonic(), written(e2e, uuids)))
        return history

    def settled(seen: list[tuple[float, int]]) -> bool:
        now, count = seen[-1]
        return any(at <= now - quiet and earlier == count for at, earlier in seen)

    return wait_for(probe, settled, timeout=RESTORE_TIMEOUT, what=f"{quiet:.0f}s without a write")[-1][1]


def clean_up(e2e: E2E, *policies: str) -> None:
    """Delete what a test left behind (Orphan policies go at once), so later tests run on a quiet operator
    and a quiet simulator."""
    for name in policies:
        e2e.tenant.delete(POLICY, name, timeout=READY_TIMEOUT)
    e2e.tenant.delete("zstackconnection", CONNECTION_NAME, timeout=READY_TIMEOUT)


# --------------------------------------------------------------------------- §5.4 intent before action


def test_kill_during_a_long_apply_then_restore_puts_every_vm_back(e2e: E2E) -> None:
    e2e.connect()
    uuids = e2e.vms.take(BIG, track="host")
    e2e.simulator.admin.set_faults(latency=SLOW_CALL)
    e2e.tenant.apply(policy("crashed", "guest", uuids, deletion="Restore"))

    at_kill = wait_written(e2e, uuids, 200)
    e2e.operator.kill()
    try:
        assert at_kill < BIG, f"the apply finished ({at_kill} writes) before the kill; slow it down"
        record = e2e.tenant.find("configmap", "vmclock-tracks-crashed")
        stored = decode_record(record["data"]["previousTracks"]) if record is not None else {}
        missing = sorted(u for u in uuids if stored.get(u) != "host")
        assert not missing, (
            f"killed after {at_kill} of {BIG} writes: {len(missing)} VMs have no previous track 'host' in "
            f"the record (intent must be saved before the first write), e.g. {missing[:3]}"
        )
        e2e.simulator.admin.clear_faults()
    finally:
        e2e.operator.start()

    wait_ready(e2e, "crashed", timeout=2 * READY_TIMEOUT)
    delete_and_wait(e2e, "crashed")

    tracks = e2e.simulator.admin.tracks(uuids)
    wrong = {u: t for u, t in tracks.items() if t != "host"}
    assert not wrong, (
        f"{len(wrong)} of {BIG} VMs not restored after the crash, e.g. {list(wrong.items())[:3]}"
    )
    assert tracks == original_tracks(e2e, uuids)
    print(f"killed after {at_kill} of {BIG} writes")
    clean_up(e2e)


# --------------------------------------------------------------------------- §5.6 restore is a promise


NAMESPACE_RESTORE_LATENCY = 2.0
"""Seconds per ZStack request while a namespace is deleted: a restore makes several calls one after another
(read the VMs and their tracks, write, wait for the job), so it outlasts the namespace controller's first
pass, which requests every deletion in the namespace (a few seconds on a loaded 2-core machine)."""

FINALIZER = f"{GROUP}/finalizer"
"""The operator's finalizer, on Restore policies and on connections."""


def namespace_held_by(e2e: E2E) -> str:
    """What the namespace controller says it waits for (condition NamespaceFinalizersRemaining), or ""."""
    found = e2e.tenant.find("namespace", e2e.namespace)
    conditions = (found or {}).get("status", {}).get("conditions", [])
    return next(
        (
            c["message"]
            for c in conditions
            if c["type"] == "NamespaceFinalizersRemaining" and c["status"] == "True"
        ),
        "",
    )


def test_namespace_deletion_restores_the_vms_and_the_connection_goes_last(e2e: E2E) -> None:
    """``kubectl delete namespace``: Kubernetes' namespace controller deletes the policy, the connection and
    the Secret in one pass. The Restore policy's finalizer holds the namespace until its VMs are back, the
    connection waits for it, and then the namespace goes. (A Terminating namespace takes no new Events, so
    the operator's log shows why the connection waited.)"""
    e2e.connect()
    uuids = e2e.vms.take(10, track="host")
    e2e.tenant.apply(policy("in-doomed-ns", "guest", uuids, deletion="Restore"))
    e2e.tenant.wait_ready("in-doomed-ns", timeout=READY_TIMEOUT)
    e2e.simulator.admin.set_faults(latency=NAMESPACE_RESTORE_LATENCY)
    log_before = len(e2e.operator.log_text())

    e2e.kubectl("delete", "namespace", e2e.namespace, "--wait=false")

    seen: list[tuple[bool, bool, str]] = []

    def present() -> tuple[bool, bool, str]:
        seen.append(
            (
                e2e.tenant.find(POLICY, "in-doomed-ns") is not None,
                e2e.tenant.find("zstackconnection", CONNECTION_NAME) is not None,
                namespace_held_by(e2e),
            )
        )
        return seen[-1]

    wait_for(
        present, lambda now: now[:2] == (False, False), timeout=RESTORE_TIMEOUT, interval=0.2, what="all gone"
    )
    moments = [(policy_there, connection_there) for policy_there, connection_there, _ in seen]
    assert (True, False) not in moments, f"the connection went before the policy it had to restore: {moments}"
    held = [message for policy_there, _, message in seen if policy_there and FINALIZER in message]
    assert held, f"never saw the namespace controller wait on {FINALIZER} while the policy restored: {seen}"
    assert e2e.tenant.find("secret", SECRET_NAME) is None
    assert e2e.simulator.admin.tracks(uuids) == original_tracks(e2e, uuids)
    assert "deletion waits for 1 VmClockPolicies" in e2e.operator.log_text()[log_before:]
    wait_for(
        lambda: e2e.tenant.find("namespace", e2e.namespace),
        lambda found: found is None,
        timeout=READY_TIMEOUT,
        what=f"the namespace controller to remove namespace {e2e.namespace}",
    )


def test_restore_waits_while_zstack_fails_says_why_and_finishes_when_it_is_back(e2e: E2E) -> None:
    e2e.connect()
    uuids = e2e.vms.take(10, track="host")
    e2e.tenant.apply(policy("patient", "guest", uuids, deletion="Restore"))
    e2e.tenant.wait_ready("patient", timeout=READY_TIMEOUT)

    # Unreachable first (every connection dropped: retryable), then every API failing with a code that is
    # not retryable; the old restore handler gave up on the latter and dropped the finalizer.
    e2e.simulator.admin.set_faults(drop_rate=1.0)
    delete_and_wait(e2e, "patient", wait=False)
    for cause in ("CLIENT.TRANSPORT", "SYS.1006"):
        if cause.startswith("SYS."):
            e2e.simulator.admin.set_faults(error_rates={"*": 1.0}, code=cause)
        seen = wait_for(
            lambda: gone_or_ready_reason(e2e, "patient"),
            gone_or_pending_because_of(cause),
            timeout=2 * READY_TIMEOUT,
            what=f"Ready=False/RestorePending naming {cause}",
        )
        assert seen is not None, f"the policy went away, unrestored, while ZStack failed with {cause}"
        assert "Orphan" in seen[1], f"the message does not say how to give up: {seen[1]}"
        assert condition(e2e.tenant.policy("patient"), "Ready")["status"] == "False"
        assert condition(e2e.tenant.policy("patient"), "Synced")["reason"] == "RestorePending"
        holds_for(
            lambda: gone_or_ready_reason(e2e, "patient"),
            lambda seen: seen is not None and seen[0] == "RestorePending",
            duration=10,
            what=f"the deleting policy staying, RestorePending, while ZStack fails with {cause}",
        )
    warnings = [
        e for e in e2e.tenant.events("patient") if e["reason"] == "RestorePending" and e["type"] == "Warning"
    ]
    assert warnings, e2e.tenant.event_reasons("patient")
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest")

    e2e.simulator.admin.clear_faults()

    wait_gone(e2e, "patient", what="the policy to go once ZStack is back")
    assert e2e.simulator.admin.tracks(uuids) == original_tracks(e2e, uuids)
    clean_up(e2e)


# --------------------------------------------------------------------------- §5.8 client swaps drain


def test_secret_rotation_during_a_long_apply_fails_nothing_and_is_used_within_seconds(e2e: E2E) -> None:
    creds, ns = e2e.credentials, e2e.namespace
    # AccessKey first: requests are signed and nothing logs in, so the first LogInByAccount after the
    # rotation can only come from a client built from the rotated Secret (an account and password).
    e2e.tenant.apply(
        access_key_secret(SECRET_NAME, creds.key_id, creds.key_secret, allow=e2e.simulator.endpoint),
        connection(CONNECTION_NAME, e2e.simulator.endpoint, SECRET_NAME),
    )
    # A small policy resyncing every 10 s uses the connection regularly; the connection itself is only
    # re-checked every 300 s, so a rotation noticed within seconds was noticed at a use.
    watcher = e2e.vms.take(2, track="host")
    e2e.tenant.apply(policy("watcher", "guest", watcher, resync_seconds=SHORT_RESYNC))
    e2e.tenant.wait_ready("watcher", timeout=READY_TIMEOUT)
    built_line = f"ZStackConnection {ns}/{CONNECTION_NAME}: client built for"
    built = e2e.operator.log_text().count(built_line)
    logins = e2e.simulator.admin.stats().count("LogInByAccount")

    uuids = e2e.vms.take(BIG, track="host")
    e2e.simulator.admin.set_faults(latency=SLOW_CALL)
    e2e.tenant.apply(policy("big", "guest", uuids))
    wait_written(e2e, uuids, 100)

    rotated = account_secret(SECRET_NAME, creds.account, creds.password, allow=e2e.simulator.endpoint)
    e2e.kubectl("replace", "-f", "-", input=json.dumps(rotated), namespace=ns)
    rotated_at = time.monotonic()
    wait_for(
        lambda: (
            e2e.operator.log_text().count(built_line),
            e2e.simulator.admin.stats().count("LogInByAccount"),
        ),
        lambda seen: seen[0] > built and seen[1] > logins,
        timeout=SHORT_RESYNC + 20,
        interval=0.25,
        what="a client built from the rotated Secret, logging in with the new account",
    )
    noticed = time.monotonic() - rotated_at
    at_swap = written(e2e, uuids)
    assert at_swap < BIG, f"the apply finished before the swap ({noticed:.1f}s); slow it down"

    got = wait_ready(e2e, "big", timeout=3 * READY_TIMEOUT)
    by_phase = Counter(phases(got).values())
    assert set(by_phase) <= {"Applied", "InSync"}, f"swap after {at_swap} writes, {noticed:.1f}s: {by_phase}"
    assert got["status"]["summary"]["failed"] == 0, got["status"]["summary"]
    warnings = [(e["reason"], e["message"]) for e in e2e.tenant.events("big") if e["type"] == "Warning"]
    assert warnings == []
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest")
    print(f"rotation noticed after {noticed:.1f}s, with {at_swap} of {BIG} VMs written")
    clean_up(e2e, "big", "watcher")


# --------------------------------------------------------------------------- §5.3 new generation wins


def test_flipping_the_track_during_a_long_apply_never_writes_a_vm_twice_for_the_stale_one(e2e: E2E) -> None:
    e2e.connect()
    uuids = e2e.vms.take(BIG, track="host")
    e2e.simulator.admin.set_faults(latency=SLOW_CALL)
    e2e.tenant.apply(policy("flipped", "guest", uuids))
    at_flip = wait_written(e2e, uuids, 100)

    flipped_at = time.time()
    e2e.tenant.merge_patch(POLICY, "flipped", {"spec": {"track": "host"}})
    e2e.simulator.admin.clear_faults()

    got = wait_ready(e2e, "flipped", timeout=3 * READY_TIMEOUT)
    assert got["metadata"]["generation"] == 2
    writes = e2e.simulator.admin.stats().writes_for(uuids)
    stale = Counter(w.uuid for w in writes if w.track == "guest")
    twice = {uuid: n for uuid, n in stale.items() if n > 1}
    assert not twice, f"{len(twice)} VMs written more than once for the stale track"
    late = sum(1 for w in writes if w.track == "guest" and w.at >= flipped_at)
    # Once the operator has seen generation 2, no submit of the stale track leaves: the ones already sent
    # then take effect within one call and one job (plus slack), none later. How many were sent between the
    # patch and the operator seeing it depends on how fast the watch delivers it, so that is only printed.
    seen_at = generation_seen_at(e2e, "flipped", 2)
    after_seen = [w for w in writes if w.track == "guest" and w.at > seen_at + SLOW_CALL + EFFECT_SLACK]
    assert not after_seen, f"{len(after_seen)} stale writes took effect well after the operator saw the flip"
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "host")
    print(
        f"flip after {at_flip} writes, seen {seen_at - flipped_at:.2f}s later: {late} stale writes took "
        f"effect after the flip, {len(writes)} writes in all"
    )
    clean_up(e2e, "flipped")


def generation_seen_at(e2e: E2E, name: str, generation: int) -> float:
    """When the operator logged that it saw `generation` of policy `name` (epoch seconds)."""
    wanted = f"{e2e.namespace}/{name}: generation {generation} seen"
    for line in e2e.operator.log_text().splitlines():
        if wanted in line:
            stamp = str(json.loads(line)["timestamp"])
            return datetime.fromisoformat(stamp).timestamp()
    raise AssertionError(f"the operator never logged {wanted!r}")


# --------------------------------------------------------------------------- §5.7 no stale writes


def policy_gauges(e2e: E2E) -> Counter[tuple[str, str]]:
    samples = scrape(e2e.operator.metrics_url, "vmclock_policies")
    return Counter({(dict(k)["ready"], dict(k)["synced"]): int(v) for k, v in samples.items() if v})


def live_policies(e2e: E2E) -> Counter[tuple[str, str]]:
    items = e2e.kubectl.json("get", POLICY, "--all-namespaces")["items"]
    return Counter(
        (condition(p, "Ready").get("status", "Unknown"), condition(p, "Synced").get("status", "Unknown"))
        for p in items
    )


def foreign_versions(events: list[Obj], uid: str, uuids: set[str]) -> list[str]:
    """What, in each version of object ``uid`` the watch saw, could only have come from another object."""
    problems = []
    for event in events:
        obj = event["object"]
        if obj["metadata"]["uid"] != uid:
            continue
        generation, status = obj["metadata"]["generation"], obj.get("status") or {}
        version = obj["metadata"]["resourceVersion"]
        if extra := set(vm_entries(obj)) - uuids:
            problems.append(f"rv {version}: {len(extra)} VMs of another object in status.vms")
        if status.get("observedGeneration", 0) > generation:
            problems.append(f"rv {version}: observedGeneration {status['observedGeneration']} > {generation}")
        for item in status.get("conditions") or []:
            if item.get("observedGeneration", 0) > generation:
                problems.append(
                    f"rv {version}: condition {item['type']} of generation {item['observedGeneration']}"
                )
    return problems


def test_recreated_policy_only_ever_gets_its_own_status_and_metrics_match(e2e: E2E, kubectl: Kubectl) -> None:
    e2e.connect()
    old_vms, new_vms = e2e.vms.take(400, track="host"), e2e.vms.take(150, track="host")
    gone_vms = e2e.vms.take(150, track="host")
    # The old object reaches generation 2 (a track change) before it is replaced, so a status of the old
    # one written onto the new one (generation 1) is visible by its generations as well as by its VMs.
    e2e.tenant.apply(policy("same", "host", old_vms), policy("gone", "host", gone_vms))
    wait_ready(e2e, "same", timeout=READY_TIMEOUT)
    wait_ready(e2e, "gone", timeout=READY_TIMEOUT)
    e2e.simulator.admin.set_faults(latency=SLOW_CALL)
    for name in ("same", "gone"):
        e2e.tenant.merge_patch(POLICY, name, {"spec": {"track": "guest"}})
    wait_written(e2e, old_vms, 20)
    wait_written(e2e, gone_vms, 20)

    watch = KubectlWatch(
        log_path=e2e.operator.log_path.with_name(f"watch-{e2e.namespace}.log"),
        kubectl=kubectl.binary,
        kubeconfig=kubectl.kubeconfig,
        resource=POLICY,
        namespace=e2e.namespace,
    )
    with watch:
        wait_for(watch.events, lambda events: len(events) >= 2, timeout=30, what="the watch to list both")
        old_uid = e2e.tenant.policy("same")["metadata"]["uid"]
        e2e.kubectl("delete", POLICY, "same", "gone", "--wait=false", namespace=e2e.namespace)
        e2e.tenant.apply(policy("same", "guest", new_vms))
        new_uid = e2e.tenant.policy("same")["metadata"]["uid"]
        assert new_uid != old_uid
        at_replace = written(e2e, old_vms)
        at_end = wait_no_more_writes(e2e, old_vms)  # the old object's reconcile is over
        problems = foreign_versions(watch.events(), new_uid, set(new_vms))
        assert not problems, (
            f"a reconcile of the deleted policy wrote onto the re-created one: {problems[:5]}"
        )
        got = wait_ready(e2e, "same", timeout=3 * READY_TIMEOUT)
        events = watch.events()

    assert not foreign_versions(events, new_uid, set(new_vms)), "a foreign status after the new one's own"
    assert set(vm_entries(got)) == set(new_vms)
    assert e2e.simulator.admin.tracks(new_vms) == dict.fromkeys(new_vms, "guest")
    assert e2e.tenant.find(POLICY, "gone") is None

    wait_for(
        lambda: (policy_gauges(e2e), live_policies(e2e)),
        lambda seen: seen[0] == seen[1],
        timeout=30,
        what="vmclock_policies gauges (first) to match the live policies (second)",
    )
    print(f"old apply: {at_replace} of {len(old_vms)} written at the replace, {at_end} in the end")
    clean_up(e2e, "same")

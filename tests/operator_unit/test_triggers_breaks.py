"""Red team of issue 14 (policies triggered by watch-event predicates, not kopf's diff base).

Each test drives kopf's real per-event processing (test_kopf_wiring's Reactor) or the real PolicyController
with the simulator (test_startup_round's helpers), and names the promise it attacks."""

from __future__ import annotations

import copy
import json

import kopf
from kopf._core.intents import causes
from kopf._core.reactor import inventory, processing

from vmclock.engine.spec import PAUSED_ANNOTATION, POLICY_PLURAL, RECONCILE_REQUESTED_ANNOTATION
from vmclock.kopfapp.triggers import Trigger, settled_at_start
from vmclock.refs import Ref

from . import test_kopf_wiring, test_startup_round
from .test_controller import CONNECTION, Parts
from .test_kopf_wiring import (
    CONNECTIONS,
    FINALIZER,
    LAST_HANDLED,
    POLICIES,
    REF,
    Raw,
    Reactor,
    detected,
    merged,
    raw_connection,
    raw_policy,
    status_written,
)
from .test_startup_round import resume, settled_policy

sim = test_startup_round.sim
parts = test_startup_round.parts
no_event_posting = test_startup_round.no_event_posting
reactor = test_kopf_wiring.reactor

OLD_PROGRESS = {
    f"operator.vmclock.zstack.io/{handler}": json.dumps(
        {
            "started": "2026-12-08T02:00:00.000000+00:00",
            "delayed": "2099-01-01T00:00:00.000000+00:00",
            "purpose": "update",
            "retries": 3,
            "success": False,
            "failure": False,
            "message": "an old retry",
        }
    )
    for handler in ("reconcile", "paused", "requested")
}


def upgraded(raw: Raw) -> Raw:
    """A policy as the previous operator version left it: kopf's diff base and progress of its handlers."""
    old = copy.deepcopy(raw)
    old["metadata"]["annotations"].update(OLD_PROGRESS)
    old["metadata"]["annotations"][LAST_HANDLED] = json.dumps({"spec": {"track": "host"}})
    return old


async def test_an_upgraded_policy_with_old_progress_is_enqueued_once_and_never_patched(
    reactor: Reactor,
) -> None:
    """Upgrade: a policy still carrying the old version's diff base and a delayed retry of its old
    `reconcile`/`paused`/`requested` handlers. Promise: it is listed once (first sight), kopf writes
    nothing on it, and our status writes trigger nothing more."""
    listed = upgraded(raw_policy())
    assert not await reactor.event(POLICIES, None, listed), "kopf patches an upgraded policy"
    assert await reactor.enqueued() == [REF]
    written = status_written(listed)
    assert not await reactor.event(POLICIES, "MODIFIED", written), "kopf patches after a status write"
    assert await reactor.enqueued() == []


async def test_an_upgraded_restore_policys_deletion_still_runs_only_the_restore(reactor: Reactor) -> None:
    """Upgrade then deletion of a Restore policy carrying the old annotations and old handlers' progress.
    Promise: the deletion still runs the `restore` handler (which removes the finalizer)."""
    raw = upgraded(raw_policy(deletionPolicy="Restore"))
    raw["metadata"]["finalizers"] = [FINALIZER]
    deleting = merged(raw, {"metadata": {"deletionTimestamp": "2026-12-08T03:00:00Z", "generation": 2}})
    cause = detected(reactor, deleting)
    assert cause is not None
    assert cause.reason == causes.Reason.DELETE
    assert [h.id for h in reactor.registry._changing.get_handlers(cause=cause)] == ["restore"]


async def test_relisting_known_policies_is_no_storm_and_a_gap_change_is_caught(reactor: Reactor) -> None:
    """kopf's watch re-list (type None events for known uids). Promise: an unchanged policy is not queued
    again; one whose spec or trigger annotation changed during the gap is queued once."""
    first = raw_policy()
    await reactor.event(POLICIES, "ADDED", first)
    assert await reactor.enqueued() == [REF]
    settled = status_written(first)
    await reactor.event(POLICIES, "MODIFIED", settled)
    for _ in range(3):
        await reactor.event(POLICIES, None, settled)
    assert await reactor.enqueued() == [], "a re-list storm"
    for change in (
        {"spec": {"track": "host"}, "metadata": {"generation": 2}},
        {"metadata": {"annotations": {RECONCILE_REQUESTED_ANNOTATION: "gap"}}},
        {"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}},
    ):
        settled = status_written(merged(settled, change))
        await reactor.event(POLICIES, None, settled)
        assert await reactor.enqueued() == [REF], f"a change in the watch gap was lost: {change}"
        await reactor.event(POLICIES, None, settled)
        assert await reactor.enqueued() == [], "the same listing again"


async def test_a_namesake_with_a_lower_generation_seen_before_the_old_deletion_is_first_sight(
    reactor: Reactor,
) -> None:
    """Generation regression: the policy (generation 5) is deleted and re-created (generation 1, new uid);
    kopf's per-uid streams may deliver the new ADDED before the old DELETED. Promise: the namesake is
    first sight and queued, its runtime is of the new uid at generation 1, the late DELETED of the old uid
    does not make the new one's later changes be missed, and its status writes trigger nothing."""
    old = raw_policy(generation=5)
    await reactor.event(POLICIES, "ADDED", old)
    new = raw_policy(generation=1)
    new["metadata"]["uid"] = "u-new"
    await reactor.event(POLICIES, "ADDED", new)
    assert await reactor.enqueued() == [REF]
    runtime = reactor.controller.runtimes.get(REF)
    assert runtime is not None
    assert (runtime.uid, runtime.generation) == ("u-new", 1)
    await reactor.event(POLICIES, "DELETED", old)
    await reactor.enqueued()  # the worker learns the old one is gone
    written = status_written(new)
    await reactor.event(POLICIES, "MODIFIED", written)
    assert await reactor.enqueued() == [], "a status write of the namesake"
    changed = merged(written, {"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}})
    await reactor.event(POLICIES, "MODIFIED", changed)
    assert await reactor.enqueued() == [REF], "the namesake's pause was lost"


async def test_a_pause_while_its_reconcile_runs_runs_it_again(reactor: Reactor) -> None:
    """A pause annotation arrives while a worker holds the policy. Promise: never lost: it runs again
    right after the running reconcile."""
    raw = raw_policy()
    await reactor.event(POLICIES, "ADDED", raw)
    queue = reactor.controller.queue
    held = await queue.get()  # a worker is reconciling it
    assert held == REF
    paused = merged(raw, {"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}})
    await reactor.event(POLICIES, "MODIFIED", paused)
    queue.done(held)
    assert await reactor.enqueued() == [REF], "the pause during the reconcile was dropped"


async def test_a_restore_policys_finalizer_patch_event_and_status_writes_trigger_nothing(
    reactor: Reactor,
) -> None:
    """kopf adds the finalizer to a Restore policy created while the operator runs. Promise: our own
    writes (kopf's finalizer, our status) never cause a reconcile; only the creation does."""
    raw = raw_policy(deletionPolicy="Restore")
    patch = await reactor.event(POLICIES, "ADDED", raw)
    applied = copy.deepcopy(raw)
    for fn in patch.fns:
        fn(applied)
    applied["metadata"]["resourceVersion"] = "2"
    assert await reactor.enqueued() == [REF]
    for event in (applied, status_written(applied), status_written(status_written(applied))):
        assert not await reactor.event(POLICIES, "MODIFIED", event)
    assert await reactor.enqueued() == []


async def test_a_connection_status_write_does_not_rerun_its_check(reactor: Reactor) -> None:
    """ZStackConnection: its diff base still works. Promise: after kopf stored its diff base, a status
    write of the connection is no change (no update handler re-runs its check); a spec change is."""
    settings = reactor.settings
    storage = settings.persistence.diffbase_storage
    raw = raw_connection()
    body = kopf.Body(raw)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    stored = copy.deepcopy(raw)
    stored["metadata"]["annotations"].update(patch["metadata"]["annotations"])
    stored["metadata"]["resourceVersion"] = "2"

    def cause_of(new: Raw) -> causes.ChangingCause | None:
        cycle = reactor.cycle(CONNECTIONS, "MODIFIED", new, inventory.ResourceMemory())
        cycle["memory"].fully_handled_once = True
        return processing._detect_causes(**cycle).changing_cause

    status = copy.deepcopy(stored)
    status["status"] = {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}
    written = cause_of(status)
    assert written is not None
    assert written.reason == causes.Reason.NOOP, written.reason
    changed = copy.deepcopy(stored)
    changed["spec"]["endpoint"] = "https://other.example:8080"
    update = cause_of(changed)
    assert update is not None
    assert update.reason == causes.Reason.UPDATE


async def test_a_reconcile_requested_while_down_on_a_settled_policy_is_echoed(parts: Parts) -> None:
    """Restart: reconcile-requested-at was set while the operator was down on a settled policy. Promise:
    the restart's first sight catches it (it joins the start-up round) and the request is answered: its
    value is echoed to status.lastHandledReconcileAt."""
    vms = parts.sim.state.vm_uuids()[:4]
    ref = settled_policy(parts, "asked", vms)
    body = parts.kube.objects[(POLICY_PLURAL, *ref)]
    body["metadata"].setdefault("annotations", {})[RECONCILE_REQUESTED_ANNOTATION] = "while-down"
    parts.index.sync(parts.kube)
    assert parts.controller.triggers.check(None, body) is Trigger.LISTED
    resume(parts, ref)
    await parts.settle(lambda: parts.due(ref))
    status = parts.kube.objects[(POLICY_PLURAL, *ref)].get("status") or {}
    assert status.get("lastHandledReconcileAt") == "while-down", status


async def test_a_pause_set_while_down_holds_back_the_start_up_rounds_writes(parts: Parts) -> None:
    """Restart: `paused: "true"` was set while the operator was down on a settled policy whose VMs then
    drifted. Promise: first sight catches the pause (it joins the start-up round) and nothing is written;
    the policy reports ReconcilePaused."""
    vms = parts.sim.state.vm_uuids()[:4]
    ref = settled_policy(parts, "held", vms)
    body = parts.kube.objects[(POLICY_PLURAL, *ref)]
    body["metadata"].setdefault("annotations", {})[PAUSED_ANNOTATION] = "true"
    parts.index.sync(parts.kube)
    parts.sim.state.set_track_behind(vms[0], "host")
    resume(parts, ref)
    await parts.settle(lambda: parts.due(ref))
    assert parts.sim.state.track_of(vms[0]) == "host", "a paused policy wrote"
    conditions = (parts.kube.objects[(POLICY_PLURAL, *ref)].get("status") or {}).get("conditions") or []
    assert any(c.get("reason") == "ReconcilePaused" for c in conditions), conditions


async def test_a_resume_while_down_of_an_in_sync_policy_clears_its_paused_status(parts: Parts) -> None:
    """Restart: the paused annotation was removed while the operator was down; the policy's status (of its
    current generation, so settled) still says ReconcilePaused and its VMs are in sync. Promise: the
    resume is caught at first sight (start-up round) and its status stops saying paused."""
    vms = parts.sim.state.vm_uuids()[:4]
    ref = settled_policy(parts, "resumed", vms)
    stored = parts.kube.objects[(POLICY_PLURAL, *ref)]
    stored["status"] = {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Synced",
                "status": "False",
                "reason": "ReconcilePaused",
                "message": "paused",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-12-08T02:00:00Z",
            }
        ],
    }
    parts.index.sync(parts.kube)
    resume(parts, ref)
    await parts.settle(lambda: parts.due(ref))
    conditions = (parts.kube.objects[(POLICY_PLURAL, *ref)].get("status") or {}).get("conditions") or []
    assert not any(c.get("reason") == "ReconcilePaused" for c in conditions), conditions


async def test_a_restore_policy_switched_to_orphan_loses_the_finalizer_and_back(reactor: Reactor) -> None:
    """deletionPolicy switched Restore -> Orphan -> Restore (spec changes, new generations). Promise: kopf
    removes the finalizer on Orphan and adds it back on Restore although it keeps no diff base of policies;
    each switch is queued."""
    raw = raw_policy(deletionPolicy="Restore")
    raw["metadata"]["finalizers"] = [FINALIZER]
    await reactor.event(POLICIES, None, raw)
    await reactor.enqueued()
    orphan = merged(raw, {"spec": {"deletionPolicy": "Orphan"}, "metadata": {"generation": 2}})
    patch = await reactor.event(POLICIES, "MODIFIED", orphan)
    applied = copy.deepcopy(orphan)
    for fn in patch.fns:
        fn(applied)
    assert not applied["metadata"].get("finalizers"), patch
    assert await reactor.enqueued() == [REF]
    back = merged(applied, {"spec": {"deletionPolicy": "Restore"}, "metadata": {"generation": 3}})
    patch = await reactor.event(POLICIES, "MODIFIED", back)
    applied = copy.deepcopy(back)
    for fn in patch.fns:
        fn(applied)
    assert applied["metadata"].get("finalizers") == [FINALIZER], patch
    assert await reactor.enqueued() == [REF]


def handle(parts: Parts, event_type: str | None, body: Raw) -> bool:
    """registry.py's policy watch-event handler for one event: kopf's `when=` filter, note, enqueue."""
    triggers = parts.controller.triggers
    if triggers.check(event_type, body) is None:
        return False
    trigger = triggers.note(event_type, body)
    meta = body["metadata"]
    parts.controller.enqueue(
        Ref(meta["namespace"], meta["name"]),
        uid=str(meta["uid"]),
        generation=int(meta.get("generation") or 0),
        connection=CONNECTION.name,
        settled=settled_at_start(trigger, body),
    )
    return True


async def reconciled_then_read_gone(parts: Parts) -> tuple[Ref, Raw]:
    """A policy created and reconciled, then deleted (Orphan: no finalizer); a worker asked to look again
    (a resync round, a sharing policy) reads it gone before kopf has processed the rest of its events.
    Returns the object as our last status write left it: kopf's backlog still holds that MODIFIED event."""
    vms = parts.sim.state.vm_uuids()[:2]
    ref = parts.policy("late", vms)
    assert handle(parts, "ADDED", parts.kube.objects[(POLICY_PLURAL, *ref)])
    await parts.settle(lambda: parts.due(ref))
    written = copy.deepcopy(parts.kube.objects[(POLICY_PLURAL, *ref)])
    assert written.get("status"), "the reconcile wrote its status"
    del parts.kube.objects[(POLICY_PLURAL, *ref)]
    parts.index.sync(parts.kube)
    parts.controller.queue.add(ref)
    await parts.settle(lambda: parts.controller.runtimes.get(ref) is None)
    return ref, written


async def test_our_status_write_event_after_a_worker_read_the_policy_gone_is_no_trigger(parts: Parts) -> None:
    """Status write, then deletion of an Orphan policy; a worker reads it gone first (and `_forget` makes the
    predicate forget its uid), then kopf processes the MODIFIED event of our own status write (its DELETED
    comes after it). Promise: our own status writes never cause a reconcile. Broken: the forgotten uid makes
    that event a first sight (NEW): it is queued and binds a runtime for the dead incarnation."""
    _, written = await reconciled_then_read_gone(parts)
    assert parts.controller.triggers.check("MODIFIED", written) is None, "our status write is a trigger"


async def test_a_dead_incarnations_late_event_does_not_replace_the_live_namesakes_runtime(
    parts: Parts,
) -> None:
    """As above, and a namesake (new uid) is created and reconciled before kopf gets to the old uid's late
    status-write event (kopf keeps one stream per uid: no order between them). Promise: a re-created
    namesake is its own incarnation; our status writes never cause a reconcile. Broken: the late event is a
    first sight, and its enqueue binds the dead uid under the name, marking the live namesake's runtime gone
    (its forward writes stop) and replacing it."""
    ref, written = await reconciled_then_read_gone(parts)
    parts.policy(ref.name, parts.sim.state.vm_uuids()[:2], uid="uid-namesake")
    assert handle(parts, "ADDED", parts.kube.objects[(POLICY_PLURAL, *ref)])
    await parts.settle(lambda: parts.due(ref))
    live = parts.controller.runtimes.get(ref)
    assert live is not None
    assert live.uid == "uid-namesake"
    handle(parts, "MODIFIED", written)
    current = parts.controller.runtimes.get(ref)
    assert current is live, f"the namesake's runtime was replaced by one of uid {current and current.uid}"

"""Red team of the by-VM claims index (issue 14, design.md §2 precedence, §3.7, §5.1, §5.12, §6.3; README
"Ownership"/"Conflict"): each test drives the real PolicyController, engine, client and simulator (Kubernetes:
the FakeKube of test_controller.py; kopf's DELETED event: the registry's own `deleted` handler) into a moment
where a promise about who owns a shared VM does not hold.

Where kopf's real ordering matters (an old incarnation's DELETED handled after its namesake's ADDED and
reconcile, or after a worker already read the object gone; policies resumed in no useful order after a
restart) the test replays that order step by step: FakeIndex.sync drops a vanished uid's claims in the same
call that indexes its namesake and never runs the DELETED handler, so it cannot show those orders."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from typing import Any, cast

import kopf
import pytest
from prometheus_client import CollectorRegistry

from vmclock.connections import ConnectionManager
from vmclock.connections.trust import EndpointPolicy
from vmclock.engine.report import listed_first
from vmclock.engine.spec import CONNECTION_PLURAL, PAUSED_ANNOTATION, POLICY_PLURAL
from vmclock.kopfapp import Runtime, build_registry
from vmclock.kopfapp.claims import INDEX_ID
from vmclock.kopfapp.connectionindex import CONNECTION_INDEX_ID
from vmclock.kopfapp.connections import ConnectionWorker
from vmclock.kopfapp.controller import PolicyController
from vmclock.kopfapp.liveness import Heartbeats
from vmclock.kopfapp.metrics import Metrics
from vmclock.refs import Ref
from vmclock.simulator import Simulator

from . import test_controller
from .test_connections import seconds_pass
from .test_controller import DELETED_AT, NS, Parts, phases, ready
from .test_core_breaks import _tenant

sim = test_controller.sim
parts = test_controller.parts
no_event_posting = test_controller.no_event_posting

WINDOWS = {"platforms": ["Windows", "WindowsVirtio"]}
OLD, YOUNG, NEWER = "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-06-01T00:00:00Z"
HAND_OVER_WITHIN = 5.0  # far below the 300 s default resync: the hand-over is a kick, not a resync


def policy(parts: Parts, name: str, *, created: str, uid: str = "", **spec: Any) -> Ref:
    """A policy with its own creationTimestamp (`parts.policy` gives all the same one)."""
    parts.kube.objects[(POLICY_PLURAL, NS, name)] = {
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": uid or f"uid-{name}",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {"track": "guest", **spec},
    }
    parts.index.sync(parts.kube)
    return Ref(NS, name)


def windows(sim: Simulator) -> list[str]:
    return sorted(u for u in sim.state.vm_uuids() if sim.state.vm(u).platform.startswith("Windows"))


def conflicted(parts: Parts, ref: Ref) -> set[str]:
    return {u for u, phase in phases(parts.status(ref)).items() if phase == "Conflict"}


def idle(controller: PolicyController, ref: Ref) -> bool:
    """No request for the policy is waiting or running (a delayed retry may be, as after a failure)."""
    return ref not in controller.queue._dirty and not controller.queue.is_processing(ref)


async def finished(parts: Parts, controller: PolicyController, ref: Ref) -> None:
    """The reconcile just asked of `controller` for the policy ran to its end."""
    await parts.settle(lambda: idle(controller, ref))


async def reconciled(parts: Parts, *refs: Ref) -> None:
    """Each policy reconciled once more, one after the other."""
    for ref in refs:
        parts.controller.enqueue(ref)
        await finished(parts, parts.controller, ref)
    parts.index.sync(parts.kube)  # the watch brings the status writes back into the index


async def deleted_event(parts: Parts, body: dict[str, Any]) -> None:
    """kopf's DELETED event of `body` reaching the registry's own `deleted` handler (kopf has already
    discarded its index entry; the handler drops the claims and kicks the policies sharing the VMs)."""
    runtime = Runtime(
        parts.kube,
        parts.metrics,
        parts.manager,
        Heartbeats(),
        parts.controller,
        ConnectionWorker(parts.kube, parts.manager, parts.controller, parts.metrics, heartbeats=Heartbeats()),
    )
    registry = build_registry(runtime)
    (handler,) = [h for h in registry._watching.get_all_handlers() if h.id == "deleted"]
    kwargs: dict[str, Any] = {
        INDEX_ID: parts.index,
        CONNECTION_INDEX_ID: parts.index.connections,
        "body": kopf.Body(cast(kopf.RawBody, copy.deepcopy(body))),
    }
    running = handler.fn(type="DELETED", **kwargs)
    assert inspect.isawaitable(running), "the handler is a coroutine (registry.py)"
    await running


def restarted(parts: Parts) -> tuple[PolicyController, ConnectionManager]:
    """A new operator process: a new controller and connection manager, its index filled from the policies
    there are before any handler runs (kopf's pre-population)."""
    manager = ConnectionManager(parts.kube, endpoints=EndpointPolicy(allow_insecure=True))
    controller = PolicyController(parts.kube, manager, Metrics(CollectorRegistry()), workers=4)
    parts.index.serve(controller, parts.kube)
    return controller, manager


@pytest.fixture
def two_listed() -> Iterator[None]:
    """Status lists 2 VMs (stands for the 500 of a 10,000-VM selector policy)."""
    assert listed_first.__defaults__ is not None
    saved = listed_first.__defaults__
    listed_first.__defaults__ = (2,)
    yield None
    listed_first.__defaults__ = saved


async def test_a_paused_owner_hands_its_vm_to_the_younger_policy_at_once(
    parts: Parts, sim: Simulator
) -> None:
    """Pausing the owner (README: a paused policy's claim does not count, design.md §6.3): the younger policy
    in Conflict must look again now (§5.1 "an owner going away"; the brief's "a paused policy hands its
    VMs over: kick_sharing"). Only a new generation or a DELETED event kicks the sharers; a pause is an
    annotation, so the younger policy keeps its Conflict and X keeps the paused policy's track until the
    younger policy's next resync (300 s by default)."""
    x = parts.host_vms(1)[0]
    owner = policy(parts, "owner", created=OLD, vmUuids=[x])
    younger = policy(parts, "younger", created=YOUNG, vmUuids=[x], track="host")
    await reconciled(parts, owner, younger)
    assert sim.state.track_of(x) == "guest"
    assert conflicted(parts, younger) == {x}
    parts.kube.objects[(POLICY_PLURAL, *owner)]["metadata"]["annotations"] = {PAUSED_ANNOTATION: "true"}
    parts.index.sync(parts.kube)
    parts.controller.enqueue(
        owner, uid="uid-owner", generation=1, connection="default"
    )  # the `paused` handler
    await finished(parts, parts.controller, owner)
    try:
        await parts.settle(lambda: sim.state.track_of(x) == "host", within=HAND_OVER_WITHIN)
    except AssertionError:
        pytest.fail(
            f"the owner is paused, yet {younger.name} still reports {sorted(conflicted(parts, younger))} "
            "in Conflict and X keeps the paused policy's track"
        )


async def test_a_deleted_uuid_policy_hands_its_vm_to_the_selector_policy_at_once(
    parts: Parts, sim: Simulator
) -> None:
    """§2 precedence with §5.1: a selector policy leaves X to the UUID policy naming it (no Conflict). Once
    that UUID policy is deleted (Orphan; kopf's DELETED event through the registry's handler), X is the
    selector policy's again and it must look again now. It is not kicked: `kick_sharing` finds the sharers by
    their claims, and the selector policy's remembered selection left X out (it was an exception), so X
    keeps the deleted policy's track until the selector policy's next resync."""
    chosen = windows(sim)
    x = chosen[0]
    selector = policy(parts, "selector", created=OLD, selector=WINDOWS, track="host")
    exact = policy(parts, "exact", created=YOUNG, vmUuids=[x])
    await reconciled(parts, selector, exact, selector)  # the selector policy sees the backed UUID claim
    assert sim.state.track_of(x) == "guest"
    assert all(sim.state.track_of(u) == "host" for u in chosen[1:])
    body = parts.kube.objects.pop((POLICY_PLURAL, *exact))
    parts.index.sync(parts.kube)
    await deleted_event(parts, body)
    try:
        await parts.settle(lambda: sim.state.track_of(x) == "host", within=HAND_OVER_WITHIN)
    except AssertionError:
        pytest.fail(
            "the UUID policy naming X is gone, yet the selector policy selecting X was not asked again"
        )


async def test_a_restore_uuid_policys_deletion_restores_a_vm_a_live_selector_policy_selects(
    parts: Parts, sim: Simulator
) -> None:
    """§5.6 with §2 precedence (README: "a Restore deletion does not restore a VM another live policy still
    selects"; plan.py: "handing the VM over is better than a write the other policy would undo"). The live
    selector policy selects X and wants X's current track, but left X to the UUID policy, so its remembered
    selection (its claim) lacks X: the deletion writes X back to its previous track, and the selector
    policy writes it again at its next reconcile: a tug of war on X."""
    x = next(u for u in windows(sim) if sim.state.track_of(u) == "host")
    restore = policy(parts, "restore", created=OLD, vmUuids=[x], deletionPolicy="Restore")
    await reconciled(parts, restore)
    assert sim.state.track_of(x) == "guest"
    selector = policy(parts, "selector", created=YOUNG, selector=WINDOWS)  # wants guest too
    await reconciled(parts, selector)
    assert ready(parts.status(selector))
    assert await parts.deleted(restore, 10.0), "the deletion completed"
    assert sim.state.track_of(x) == "guest", (
        "X was restored to host although the live selector policy selects it and wants guest"
    )


async def test_after_a_restart_a_younger_selector_policy_writes_a_vm_the_older_one_owns(
    parts: Parts, sim: Simulator
) -> None:
    """§3.7 ("the older one owns it; the younger reports Conflict and never writes it") across an operator
    restart. claims.py promises "kopf fills every index from the initial listing before it invokes the first
    handler, so a reconcile never misses an older policy that would own its VMs". The index is full, but a
    selector policy's VMs live in the runtime of the process that resolved them: in the new process the older
    selector policy claims nothing until its own reconcile ran, and kopf resumes policies in no useful
    order. The younger one, resumed first, writes its track over every VM of the older one."""
    chosen = windows(sim)
    older = policy(parts, "older", created=OLD, selector=WINDOWS)
    younger = policy(parts, "younger", created=YOUNG, selector=WINDOWS, track="host")
    await reconciled(parts, older, younger)
    assert all(sim.state.track_of(u) == "guest" for u in chosen)
    assert conflicted(parts, younger) == set(chosen)
    await parts.controller.stop()
    controller, manager = restarted(parts)
    try:
        controller.enqueue(younger, uid="uid-younger", generation=1, connection="default", settled=True)
        await finished(parts, controller, younger)
    finally:
        await controller.stop()
        await manager.close_all()
    flipped = [u for u in chosen if sim.state.track_of(u) != "guest"]
    assert not flipped, f"the younger policy wrote {len(flipped)} of the older policy's {len(chosen)} VMs"


async def test_after_a_restart_a_restore_deletion_restores_vms_a_live_selector_policy_selects(
    parts: Parts, sim: Simulator
) -> None:
    """§5.6 across an operator restart ("a Restore deletion does not restore a VM another live policy still
    selects"). Two selector policies agree on guest; the older, Restore one changed the VMs. After a restart
    its deletion is handled before kopf resumed the live one (no useful order): the live one has no
    selection in the new process, so its claim is unknown and every VM is put back to host, then taken
    again by the live policy at its reconcile."""
    changed = [u for u in windows(sim) if sim.state.track_of(u) == "host"]
    assert changed
    restore = policy(parts, "restore", created=OLD, selector=WINDOWS, deletionPolicy="Restore")
    live = policy(parts, "live", created=YOUNG, selector=WINDOWS)
    await reconciled(parts, restore, live)
    assert all(sim.state.track_of(u) == "guest" for u in changed)
    assert ready(parts.status(live))
    await parts.controller.stop()
    controller, manager = restarted(parts)
    try:
        parts.kube.objects[(POLICY_PLURAL, *restore)]["metadata"]["deletionTimestamp"] = DELETED_AT
        parts.index.sync(parts.kube)
        released = await controller.wait_restored(restore, "uid-restore", 20.0)
    finally:
        await controller.stop()
        await manager.close_all()
    assert released, "the deletion completed"
    put_back = [u for u in changed if sim.state.track_of(u) != "guest"]
    assert not put_back, f"{len(put_back)} VMs the live selector policy selects were restored to host"


async def test_replace_force_of_a_selector_owner_leaves_the_younger_policy_in_conflict(
    parts: Parts, sim: Simulator, two_listed: None
) -> None:
    """`kubectl replace --force` of the older selector policy with one naming other VMs; kopf handles the new
    object's ADDED (and its reconcile) before the old object's DELETED (its tasks are per uid). The younger
    policy shares X with the old incarnation only, and X is not among the VMs the old status lists (it lists
    500 of a large selection; 2 here). The DELETED handler kicks the sharers of the old spec's vmUuids, the
    old status' VMs and the runtime's selection; but the runtime under that name is the new incarnation's by
    then, so the old selection is lost and the younger policy stays in Conflict with a policy that is gone
    (§5.1 "an owner going away" is a request that is never dropped)."""
    chosen = windows(sim)
    older = policy(parts, "older", created=OLD, selector=WINDOWS)
    await reconciled(parts, older)
    listed = {e["uuid"] for e in parts.status(older)["vms"]}
    assert len(listed) == 2
    x = next(u for u in chosen if u not in listed)
    younger = policy(
        parts, "younger", created=YOUNG, selector={"namePattern": sim.state.vm(x).name}, track="host"
    )
    await reconciled(parts, younger)
    assert conflicted(parts, younger) == {x}
    assert sim.state.track_of(x) == "guest"
    old_body = copy.deepcopy(parts.kube.objects[(POLICY_PLURAL, *older)])
    others = [u for u in sim.state.vm_uuids() if u not in chosen][:1]
    policy(parts, "older", created=NEWER, uid="uid-older-2", vmUuids=others)  # the new object
    parts.controller.enqueue(older, uid="uid-older-2", generation=1, connection="default")  # its ADDED
    await finished(parts, parts.controller, older)
    await deleted_event(parts, old_body)  # the old object's DELETED, handled after
    try:
        await parts.settle(lambda: sim.state.track_of(x) == "host", within=HAND_OVER_WITHIN)
    except AssertionError:
        pytest.fail(
            f"the old owner is gone, yet {younger.name} still reports "
            f"{sorted(conflicted(parts, younger))} in Conflict"
        )


async def test_a_selector_owner_switched_to_vm_uuids_leaves_the_younger_policy_in_conflict(
    parts: Parts, sim: Simulator, two_listed: None
) -> None:
    """§5.12 (a switch between `selector` and `vmUuids`) with §5.1: the older selector policy switches to
    naming other VMs, so X is no longer its; the younger policy in Conflict on X must look again now. The
    switch's reconcile kicks the sharers of `_uuids_of` after `_remember_selection` cleared the runtime's
    selection, so only the VMs the old status listed (500; 2 here) are kicked for: X is not among them."""
    chosen = windows(sim)
    older = policy(parts, "older", created=OLD, selector=WINDOWS)
    await reconciled(parts, older)
    listed = {e["uuid"] for e in parts.status(older)["vms"]}
    x = next(u for u in chosen if u not in listed)
    younger = policy(
        parts, "younger", created=YOUNG, selector={"namePattern": sim.state.vm(x).name}, track="host"
    )
    await reconciled(parts, younger)
    assert conflicted(parts, younger) == {x}
    body = parts.kube.objects[(POLICY_PLURAL, *older)]
    body["spec"] = {"track": "guest", "vmUuids": [u for u in sim.state.vm_uuids() if u not in chosen][:1]}
    body["metadata"]["generation"] = 2
    parts.index.sync(parts.kube)
    parts.controller.enqueue(older, uid="uid-older", generation=2, connection="default")  # the spec handler
    try:
        await parts.settle(lambda: sim.state.track_of(x) == "host", within=HAND_OVER_WITHIN)
    except AssertionError:
        pytest.fail(f"the old owner no longer selects X, yet {younger.name} still reports Conflict on it")


async def test_a_restore_deletion_in_a_deleting_namespace_restores_a_vm_another_tenant_selects(
    parts: Parts, sim: Simulator
) -> None:
    """§5.6 ("a deleting namespace ... must not strand it": the restore runs on the last-known-good client)
    with §6.3 (another tenant's backed claim on the same management node counts) and README "a Restore
    deletion does not restore a VM another live policy still selects". The deleting policy's own connection
    is not Ready any more (its Secret went first), so `_others` finds no management node of its own and
    answers "no claims": X is put back to host under the other tenant's live policy, which wants guest and
    writes it again at its next reconcile (a tug of war across tenants)."""
    x = parts.host_vms(1)[0]
    _tenant(parts.kube, "t2", sim)
    restore = policy(parts, "restore", created=OLD, vmUuids=[x], deletionPolicy="Restore")
    await reconciled(parts, restore)
    assert sim.state.track_of(x) == "guest"
    parts.kube.objects[(POLICY_PLURAL, "t2", "live")] = {
        "metadata": {"namespace": "t2", "name": "live", "uid": "uid-t2", "creationTimestamp": YOUNG},
        "spec": {"track": "guest", "vmUuids": [x]},
    }
    live = Ref("t2", "live")
    parts.index.sync(parts.kube)
    parts.controller.enqueue(live)
    await finished(parts, parts.controller, live)
    parts.index.sync(parts.kube)
    assert ready(parts.kube.objects[(POLICY_PLURAL, *live)]["status"])
    # `kubectl delete namespace ns`: the Secret goes first, the connection waits (deleting) for the restore
    del parts.kube.secrets[(NS, "creds")]
    parts.kube.objects[(CONNECTION_PLURAL, NS, "default")]["metadata"]["deletionTimestamp"] = DELETED_AT
    seconds_pass(parts.manager)
    assert await parts.deleted(restore, 20.0), "the deletion completed"
    assert sim.state.track_of(x) == "guest", (
        "X was restored to host under another tenant's live policy on the same management node"
    )


async def test_an_owner_read_gone_before_its_deleted_event_leaves_the_younger_policy_in_conflict(
    parts: Parts, sim: Simulator, two_listed: None
) -> None:
    """`kubectl delete` of the older (Orphan) selector policy while a request for it is queued (its resync
    round, a kick): the worker reads it gone from the API server before kopf delivers the DELETED event (the
    watch lags the API server), and drops its runtime with the selection. The DELETED handler then kicks the
    sharers of the old status' VMs only (500 of a large selection; 2 here): the younger policy sharing an
    unlisted VM stays in Conflict with a policy that is gone (§5.1 "an owner going away")."""
    chosen = windows(sim)
    older = policy(parts, "older", created=OLD, selector=WINDOWS)
    await reconciled(parts, older)
    listed = {e["uuid"] for e in parts.status(older)["vms"]}
    x = next(u for u in chosen if u not in listed)
    name_x = sim.state.vm(x).name
    younger = policy(parts, "younger", created=YOUNG, selector={"namePattern": name_x}, track="host")
    await reconciled(parts, younger)
    assert conflicted(parts, younger) == {x}
    body = parts.kube.objects.pop((POLICY_PLURAL, *older))  # deleted in the API server
    parts.controller.enqueue(older)  # a request that was on its way (a resync round)
    await parts.settle(lambda: parts.controller.runtimes.get(older) is None)  # the worker read it gone
    parts.index.sync(parts.kube)
    await deleted_event(parts, body)  # the watch delivers DELETED
    try:
        await parts.settle(lambda: sim.state.track_of(x) == "host", within=HAND_OVER_WITHIN)
    except AssertionError:
        pytest.fail(f"the owner is gone, yet {younger.name} still reports Conflict on X")

"""After a restart, writes and restores that selector policies not resolved yet could stop wait for them
(kopfapp/claims.py `ClaimsUnknown`): the waiter goes on as soon as they resolved, and a UUID policy's
dropped VMs wait too. The other two cases (a younger selector policy's writes, a deletion's restores) are
in test_claims_breaks.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vmclock.engine.spec import POLICY_PLURAL
from vmclock.simulator import Simulator

from . import test_controller
from .test_claims_breaks import (
    HAND_OVER_WITHIN,
    OLD,
    WINDOWS,
    YOUNG,
    finished,
    policy,
    reconciled,
    restarted,
    windows,
)
from .test_controller import Parts

sim = test_controller.sim
parts = test_controller.parts
no_event_posting = test_controller.no_event_posting

LONG_BACKOFF_FAILURES = 9  # 1 s doubling: the next retry after a wait would be minutes away


def reconciles_begin(parts: Parts, seen: Callable[[], str]) -> list[tuple[str, str]]:
    """From now on, each reconcile as it begins (by reading its policy): the policy's name and `seen()`."""
    begun: list[tuple[str, str]] = []
    read_object = parts.kube.read_object

    async def reading(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        if plural == POLICY_PLURAL:
            begun.append((name, seen()))
        return await read_object(plural, namespace, name)

    parts.kube.read_object = reading  # type: ignore[method-assign]
    return begun


async def test_a_waiting_selector_policy_goes_on_as_soon_as_the_older_one_resolved(
    parts: Parts, sim: Simulator
) -> None:
    """The younger selector policy waits for the older one after a restart; once the older one resolved,
    the younger one must carry on at once (it corrects a drifted VM only it selects), not at its next
    backoff retry, which a policy that failed before may have minutes away."""
    chosen = windows(sim)
    older = policy(parts, "older", created=OLD, selector=WINDOWS)
    wider = {"platforms": [*WINDOWS["platforms"], "Linux"]}
    younger = policy(parts, "younger", created=YOUNG, selector=wider, track="host")
    await reconciled(parts, older, younger)
    linux = [u for u in sim.state.vm_uuids() if sim.state.vm(u).platform == "Linux"]
    assert linux
    assert all(sim.state.track_of(u) == "host" for u in linux)
    await parts.controller.stop()
    controller, manager = restarted(parts)
    try:
        sim.state.set_track_behind(linux[0], "guest")  # drifted while the operator was away
        for _ in range(LONG_BACKOFF_FAILURES):
            controller.queue._failures.next_delay(younger)
        begun = reconciles_begin(parts, lambda: sim.state.track_of(linux[0]))
        controller.enqueue(younger, uid="uid-younger", generation=1, connection="default", settled=True)
        await parts.settle(lambda: sim.state.track_of(linux[0]) == "host", within=HAND_OVER_WITHIN)
        # (the younger policy's idle moment between its wait and its next run is as short as the older
        # one's reconcile: a few ms, so polling for it missed it at times; the order of the runs shows it)
        assert begun[:2] == [("younger", "guest"), ("older", "guest")], "it waited for the older policy"
    finally:
        await controller.stop()
        await manager.close_all()
    assert all(sim.state.track_of(u) == "guest" for u in chosen), "the older policy's VMs stay its own"


async def test_after_a_restart_a_uuid_policy_keeps_a_dropped_vm_a_live_selector_policy_selects(
    parts: Parts, sim: Simulator
) -> None:
    """A Restore UUID policy drops X from spec.vmUuids right after a restart: X goes back to its previous
    track unless another live policy selects it (§5.6). The selector policy that wants X once the UUID
    policy lets it go has no selection in the new process yet; the UUID policy waits for it rather than
    restore X under it."""
    x = next(u for u in windows(sim) if sim.state.track_of(u) == "host")
    kept = next(u for u in sim.state.vm_uuids() if sim.state.vm(u).platform == "Linux")
    uuid_policy = policy(parts, "exact", created=OLD, vmUuids=[x, kept], deletionPolicy="Restore")
    selector = policy(parts, "selector", created=YOUNG, selector=WINDOWS)  # wants guest too
    await reconciled(parts, uuid_policy, selector)
    assert sim.state.track_of(x) == "guest"
    await parts.controller.stop()
    controller, manager = restarted(parts)
    try:
        body = parts.kube.objects[(POLICY_PLURAL, *uuid_policy)]
        body["spec"]["vmUuids"] = [kept]
        body["metadata"]["generation"] = 2
        parts.index.sync(parts.kube)
        controller.enqueue(uuid_policy, uid="uid-exact", generation=2, connection="default")
        await parts.settle(lambda: parts.status(uuid_policy).get("observedGeneration") == 2)
        await finished(parts, controller, uuid_policy)
    finally:
        await controller.stop()
        await manager.close_all()
    assert sim.state.track_of(x) == "guest", "X was restored under the live selector policy selecting it"

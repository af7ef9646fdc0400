"""The kopf wiring, checked against kopf's own machinery (no cluster needed).

These run what kopf 1.45 runs on every watch event (`processing.process_resource_causes`: cause detection,
handler selection, finalizers, its diff-base and progress storages) with our registry and settings, and
look at what kopf would PATCH (returned here, not sent) and what our handlers enqueue (no workers run).
Issue 14: kopf must write nothing on a policy but the finalizer of a Restore policy; which events enqueue
is our predicate's business (test_triggers.py), shown here as kopf drives it.
"""

from __future__ import annotations

import copy
import datetime
import inspect
import logging
from dataclasses import dataclass, replace
from typing import Any

import kopf
import pytest
from kopf._cogs.structs import diffs
from kopf._core.actions import lifecycles, loggers
from kopf._core.engines import indexing
from kopf._core.intents import causes
from kopf._core.reactor import inventory, processing

from vmclock.engine.spec import PAUSED_ANNOTATION, RECONCILE_REQUESTED_ANNOTATION
from vmclock.kopfapp import Runtime, build_registry, build_settings
from vmclock.kopfapp.connectionindex import IndexedConnection
from vmclock.kopfapp.controller import PolicyController
from vmclock.kopfapp.triggers import Trigger
from vmclock.refs import Ref

POLICIES = kopf.Resource("vmclock.zstack.io", "v1alpha1", "vmclockpolicies")
CONNECTIONS = kopf.Resource("vmclock.zstack.io", "v1alpha1", "zstackconnections")
REF = Ref("ns", "p")
LAST_HANDLED = "operator.vmclock.zstack.io/last-handled-configuration"
FINALIZER = "vmclock.zstack.io/finalizer"
Raw = dict[str, Any]


def raw_policy(annotations: dict[str, str] | None = None, *, generation: int = 1, **spec: Any) -> Raw:
    return {
        "apiVersion": "vmclock.zstack.io/v1alpha1",
        "kind": "VmClockPolicy",
        "metadata": {
            "name": REF.name,
            "namespace": REF.namespace,
            "uid": "u",
            "generation": generation,
            "resourceVersion": "1",
            "annotations": dict(annotations or {}),
        },
        "spec": {"track": "guest", "vmUuids": ["0" * 32], **spec},
    }


def policy(annotations: dict[str, str] | None = None, **spec: Any) -> kopf.Body:
    return kopf.Body(raw_policy(annotations, **spec))


def raw_connection(annotations: dict[str, str] | None = None) -> Raw:
    return {
        "apiVersion": "vmclock.zstack.io/v1alpha1",
        "kind": "ZStackConnection",
        "metadata": {"name": "default", "namespace": "ns", "uid": "c", "annotations": annotations or {}},
        "spec": {"endpoint": "https://zstack.example:8080", "credentialsRef": {"name": "zstack"}},
    }


def status_written(raw: Raw) -> Raw:
    """The object as one of our status writes leaves it: new resourceVersion and status, nothing else."""
    written = copy.deepcopy(raw)
    written["metadata"]["resourceVersion"] = str(int(written["metadata"]["resourceVersion"]) + 1)
    written["status"] = {"observedGeneration": written["metadata"]["generation"]}
    return written


@pytest.fixture(scope="module")
def registry() -> kopf.OperatorRegistry:
    return build_registry(Runtime.build())


@dataclass
class Reactor:
    """kopf's per-event processing for one operator process, without the API calls."""

    controller: PolicyController
    registry: kopf.OperatorRegistry
    settings: kopf.OperatorSettings
    indexers: indexing.OperatorIndexers
    memories: inventory.ResourceMemories

    def cycle(self, resource: kopf.Resource, event_type: str | None, raw: Raw, memory: Any) -> dict[str, Any]:
        """What kopf hands its processing steps for one watch event (type None: kopf's listing)."""
        body = kopf.Body(raw)
        logger = loggers.LocalObjectLogger(body=body, settings=self.settings)
        return {
            "indexers": self.indexers,
            "registry": self.registry,
            "settings": self.settings,
            "resource": resource,
            "raw_event": {"type": event_type, "object": raw},
            "body": body,
            "patch": kopf.Patch(body=body),
            "memory": memory,
            "local_logger": logger,
            "event_logger": logger,
        }

    async def event(self, resource: kopf.Resource, event_type: str | None, raw: Raw) -> kopf.Patch:
        """Process one watch event as kopf does; return what it would PATCH."""
        memory = await self.memories.recall(raw, noticed_by_listing=event_type is None)
        cycle = self.cycle(resource, event_type, raw, memory)
        await processing.process_resource_causes(
            lifecycle=lifecycles.all_at_once,
            stream_pressure=None,
            operator_paused=None,
            consistency_time=None,
            **cycle,
        )
        patch: kopf.Patch = cycle["patch"]
        return patch

    async def enqueued(self) -> list[Ref]:
        """What our handlers queued since the last look (taken off the queue: no workers run here)."""
        queue, taken = self.controller.queue, []
        while queue.depth():
            ref = await queue.get()
            queue.done(ref)
            taken.append(ref)
        return taken


@pytest.fixture
def reactor() -> Reactor:
    built = Runtime.build()
    controller = PolicyController(built.kube, built.connections, built.metrics, workers=0)
    registry = build_registry(replace(built, controller=controller))
    indexers = indexing.OperatorIndexers()
    indexers.ensure(registry._indexing.get_all_handlers())
    return Reactor(controller, registry, build_settings(), indexers, inventory.ResourceMemories())


async def test_kopf_writes_nothing_on_an_orphan_policy_and_its_events_enqueue_only_on_triggers(
    reactor: Reactor,
) -> None:
    """No diff-base annotation, no progress, no finalizer: kopf sends no PATCH at all. The listing at a
    start, a creation, a spec change and each trigger annotation enqueue; our status writes, other
    annotations (Argo CD's tracking id, kopf's annotation left by an older version) and labels do not."""
    listed = raw_policy()
    steps: list[tuple[str, str | None, Raw, list[Ref]]] = [("listed at a start", None, listed, [REF])]
    current = status_written(listed)
    steps.append(("its status written", "MODIFIED", current, []))
    for what, change, asks in [
        ("spec changed", {"spec": {"track": "host"}, "metadata": {"generation": 2}}, True),
        ("paused", {"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}}, True),
        ("resumed", {"metadata": {"annotations": {PAUSED_ANNOTATION: None}}}, True),
        ("requested", {"metadata": {"annotations": {RECONCILE_REQUESTED_ANNOTATION: "t1"}}}, True),
        ("tracked by Argo CD", {"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "a"}}}, False),
        ("an old diff base", {"metadata": {"annotations": {LAST_HANDLED: "{}"}}}, False),
        ("labelled", {"metadata": {"labels": {"team": "a"}}}, False),
    ]:
        current = merged(current, change)
        steps.append((what, "MODIFIED", current, [REF] if asks else []))
        current = status_written(current)
        steps.append((f"{what}, then its status written", "MODIFIED", current, []))

    for what, event_type, raw, wanted in steps:
        patch = await reactor.event(POLICIES, event_type, raw)
        assert not patch, f"{what}: kopf would PATCH the policy: {patch!r}"
        assert await reactor.enqueued() == wanted, what


def merged(raw: Raw, change: Raw) -> Raw:
    """`raw` after a JSON merge patch (None removes), with a new resourceVersion."""

    def merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
        for key, value in patch.items():
            if value is None:
                into.pop(key, None)
            elif isinstance(value, dict):
                merge(into.setdefault(key, {}), value)
            else:
                into[key] = value

    changed = copy.deepcopy(raw)
    merge(changed, change)
    changed["metadata"]["resourceVersion"] = str(int(changed["metadata"]["resourceVersion"]) + 1)
    return changed


async def test_a_created_policy_enqueues_with_no_patch_and_its_deletion_is_forgotten(
    reactor: Reactor,
) -> None:
    raw = raw_policy()
    assert not await reactor.event(POLICIES, "ADDED", raw)
    assert await reactor.enqueued() == [REF]
    assert not await reactor.event(POLICIES, "DELETED", raw)
    assert await reactor.enqueued() == [REF], "the worker learns it is gone"
    assert reactor.controller.triggers.check(None, raw) is Trigger.LISTED, "the predicate forgot its uid"


async def test_a_restore_policy_gets_only_the_finalizer_and_its_deletion_still_runs_the_restore(
    reactor: Reactor,
) -> None:
    raw = raw_policy(deletionPolicy="Restore")
    patch = await reactor.event(POLICIES, "ADDED", raw)
    applied = copy.deepcopy(raw)
    for fn in patch.fns:
        fn(applied)  # kopf's finalizer patch functions, run on the object as the API server would
    assert dict(patch) == {}, "no annotation of kopf's"
    assert applied["metadata"].get("finalizers") == [FINALIZER], patch
    assert await reactor.enqueued() == [REF]

    finalized = status_written(applied)
    assert not await reactor.event(POLICIES, "MODIFIED", finalized), "nothing more once it has the finalizer"

    deleting = merged(finalized, {"metadata": {"deletionTimestamp": "2026-12-08T03:00:00Z"}})
    cause = detected(reactor, deleting)
    assert cause is not None
    assert cause.reason == causes.Reason.DELETE
    assert [h.id for h in reactor.registry._changing.get_handlers(cause=cause)] == ["restore"]


def detected(reactor: Reactor, raw: Raw) -> causes.ChangingCause | None:
    """The cause kopf derives for a MODIFIED event of `raw` (what decides which changing handlers run)."""
    cycle = reactor.cycle(POLICIES, "MODIFIED", raw, inventory.ResourceMemory())
    return processing._detect_causes(**cycle).changing_cause


@pytest.mark.parametrize(("raw", "stored"), [(raw_connection(), True), (raw_policy(), False)])
def test_only_connections_keep_kopfs_diff_base(raw: Raw, stored: bool) -> None:
    """Connections' create/update/resume handlers still need it; for a policy kopf keeps nothing."""
    storage = build_settings().persistence.diffbase_storage
    body = kopf.Body(raw)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert (LAST_HANDLED in patch.get("metadata", {}).get("annotations", {})) is stored


def changing_cause(
    old_body: kopf.Body, new_body: kopf.Body, registry: kopf.OperatorRegistry
) -> causes.ChangingCause:
    """What kopf's processing computes: essences via our diff-base and progress storages, then their diff."""
    settings = build_settings()
    extra = registry._changing.get_extra_fields(resource=POLICIES)
    old = settings.persistence.progress_storage.clear(
        essence=settings.persistence.diffbase_storage.build(body=old_body, extra_fields=extra)
    )
    new = settings.persistence.progress_storage.clear(
        essence=settings.persistence.diffbase_storage.build(body=new_body, extra_fields=extra)
    )
    return causes.ChangingCause(
        logger=logging.getLogger("test"),
        indices={},
        resource=POLICIES,
        patch=kopf.Patch(),
        memo=kopf.Memo(),
        body=new_body,
        initial=False,
        reason=causes.Reason.UPDATE,
        diff=diffs.diff(old, new),
        old=old,
        new=new,
    )


def test_argocd_tracking_alone_is_not_even_a_change_of_a_connection() -> None:
    settings = build_settings()
    tracked = kopf.Body(raw_connection({"argocd.argoproj.io/tracking-id": "x"}))
    assert "metadata" not in settings.persistence.diffbase_storage.build(body=tracked)


@pytest.mark.parametrize(
    ("deletion_policy", "finalizer"), [("Restore", True), ("Orphan", False), (None, False)]
)
def test_only_restore_policies_get_a_finalizer(
    registry: kopf.OperatorRegistry, deletion_policy: str | None, finalizer: bool
) -> None:
    spec = {"deletionPolicy": deletion_policy} if deletion_policy else {}
    body = policy(**spec)
    cause = changing_cause(body, body, registry)
    assert registry._changing.requires_finalizer(cause=cause) is finalizer


def test_only_connections_run_a_daemon(registry: kopf.OperatorRegistry) -> None:
    """Daemons and timers put kopf's finalizer on what they match: policies must match none."""
    daemons = registry._spawning._handlers
    assert [h.id for h in daemons if h.selector is not None and h.selector.check(CONNECTIONS)] == ["resync"]
    assert [h.id for h in daemons if h.selector is not None and h.selector.check(POLICIES)] == []


def test_handlers_run_on_the_event_loop(registry: kopf.OperatorRegistry) -> None:
    """kopf runs a plain function in its thread pool: for the index that is a thread hop on every watch
    event (each status write comes back as one), for the probe one per liveness request. Only the login,
    once at start, may block."""
    handlers = [
        *registry._indexing._handlers,
        *registry._watching._handlers,
        *registry._changing._handlers,
        *registry._spawning._handlers,
        *(h for h in registry._activities._handlers if h.id != "login"),
    ]
    assert [h.id for h in handlers if not inspect.iscoroutinefunction(h.fn)] == []


def test_settings_are_production_shaped() -> None:
    settings = build_settings()
    assert settings.persistence.finalizer == "vmclock.zstack.io/finalizer"
    assert settings.posting.loggers is False
    assert settings.watching.inactivity_timeout > 0
    assert isinstance(settings.watching.server_timeout, int)  # sent as timeoutSeconds; 300.0 is a 400
    assert datetime.timedelta(seconds=settings.networking.request_timeout or 0) <= datetime.timedelta(
        minutes=1
    )


async def test_connections_are_indexed_with_their_spec_and_deletion(registry: kopf.OperatorRegistry) -> None:
    """The workers take a connection's spec from this index instead of a GET per reconcile
    (kopfapp/connectionindex.py); policies have their own index."""
    (handler,) = [
        h for h in registry._indexing._handlers if h.selector is not None and h.selector.check(CONNECTIONS)
    ]
    spec = {"endpoint": "https://zstack.example:8080", "credentialsSecretRef": {"name": "creds"}}
    meta = {"name": "zs", "namespace": "ns", "uid": "u", "deletionTimestamp": "2026-05-01T13:00:00Z"}
    entry = await handler.fn(body=kopf.Body({"metadata": meta, "spec": spec}))
    assert entry == {Ref("ns", "zs"): IndexedConnection("u", spec, deleting=True)}

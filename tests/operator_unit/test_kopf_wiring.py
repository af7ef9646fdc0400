"""The kopf wiring, checked against kopf's own machinery (no cluster needed).

These run the same functions kopf 1.45 runs on every watch event to decide which handlers fire and whether an
object needs a finalizer, with our registry and settings. They caught a real trap: a storage prefix equal to
the user-facing annotation prefix made kopf blind to `vmclock.zstack.io/paused`.
"""

from __future__ import annotations

import datetime
import inspect
import logging
from typing import Any

import kopf
import pytest
from kopf._cogs.structs import diffs
from kopf._core.intents import causes

from vmclock.kopfapp import Runtime, build_registry, build_settings
from vmclock.kopfapp.connectionindex import IndexedConnection
from vmclock.refs import Ref

POLICIES = kopf.Resource("vmclock.zstack.io", "v1alpha1", "vmclockpolicies")
CONNECTIONS = kopf.Resource("vmclock.zstack.io", "v1alpha1", "zstackconnections")


def policy(annotations: dict[str, str] | None = None, **spec: Any) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "vmclock.zstack.io/v1alpha1",
            "kind": "VmClockPolicy",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "annotations": dict(annotations or {})},
            "spec": {"track": "guest", "vmUuids": ["0" * 32], **spec},
        }
    )


@pytest.fixture(scope="module")
def registry() -> kopf.OperatorRegistry:
    return build_registry(Runtime.build())


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


def fired(registry: kopf.OperatorRegistry, old: kopf.Body, new: kopf.Body) -> list[str]:
    cause = changing_cause(old, new, registry)
    return sorted(h.id for h in registry._changing.iter_handlers(cause=cause))


@pytest.mark.parametrize(
    ("before", "after", "handlers"),
    [
        ({}, {"vmclock.zstack.io/paused": "true"}, ["paused/metadata.annotations.vmclock.zstack.io/paused"]),
        (
            {"vmclock.zstack.io/reconcile-requested-at": "1"},
            {"vmclock.zstack.io/reconcile-requested-at": "2"},
            ["requested/metadata.annotations.vmclock.zstack.io/reconcile-requested-at"],
        ),
        ({}, {"argocd.argoproj.io/tracking-id": "app:vmclock.zstack.io/VmClockPolicy:ns/p"}, []),
        ({}, {"example.com/owner": "team-a"}, []),
    ],
)
def test_only_the_two_trigger_annotations_cause_reconciles(
    registry: kopf.OperatorRegistry, before: dict[str, str], after: dict[str, str], handlers: list[str]
) -> None:
    assert fired(registry, policy(before), policy(after)) == handlers


def test_spec_changes_reconcile(registry: kopf.OperatorRegistry) -> None:
    assert fired(registry, policy(), policy(track="host")) == ["reconcile/spec"]


def test_argocd_tracking_alone_is_not_even_a_change() -> None:
    settings = build_settings()
    tracked = policy({"argocd.argoproj.io/tracking-id": "x"})
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

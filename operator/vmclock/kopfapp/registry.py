"""The kopf handlers: thin wiring from Kubernetes events to the controller's work queue (no logic here).

Policies: one watch-event handler enqueues a reconcile when triggers.py's predicate says the event may
need one (first sight of a uid, a new generation, a trigger annotation changed; never our own status
writes), so kopf keeps no diff base on policies and writes nothing on them (diffbase.py); deletion of a
`Restore` policy enqueues its restore and waits for it (the `when=` filter means Orphan policies never get a
finalizer, and kopf removes ours as soon as a policy switches to Orphan); DELETED events let the worker forget
the policy and let policies sharing its VMs take over. Connections: checks on create/resume/spec change, one
daemon each for checks and resync rounds, an index the workers take connection specs from, and a deletion
handler that keeps the connection while Restore policies may still need it. Handlers return nothing, so kopf
writes nothing of its own into status. Every handler that touches the controller is a coroutine: kopf runs
plain functions in threads, and the work queue belongs to the event loop. So are the indexes (run on every
watch event: each status write comes back as one) and the liveness probe: a thread hop each would cost more
than the handler itself.

The restore handler has no timeout and retries forever: a Restore policy's deletion completes only when its
VMs are restored, or when a person decides otherwise (design.md §5.6).
"""

from __future__ import annotations

from typing import Any

import kopf

from vmclock.engine.spec import CONNECTION_PLURAL, DEFAULT_CONNECTION, GROUP, POLICY_PLURAL, VERSION
from vmclock.kopfapp.claims import INDEX_ID, IndexedPolicy, PolicyIndex
from vmclock.kopfapp.connectionindex import (
    CONNECTION_INDEX_ID,
    ConnectionIndex,
    IndexedConnection,
)
from vmclock.kopfapp.controller import DRAIN_SECONDS
from vmclock.kopfapp.runtime import Runtime
from vmclock.kopfapp.triggers import settled_at_start
from vmclock.refs import Ref

POLICIES = (GROUP, VERSION, POLICY_PLURAL)
CONNECTIONS = (GROUP, VERSION, CONNECTION_PLURAL)
HANDLER_BACKOFF = 10.0
RESTORE_WAIT = 30.0  # one handler run waits this long for the worker; then kopf calls it again
RESTORE_POLL = 1.0


def wants_restore(*, spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("deletionPolicy") == "Restore"


def is_deletion(*, type: str, **_: Any) -> bool:
    """Only DELETED watch events reach the handler (kopf logs every handler run, so filter early)."""
    return type == "DELETED"


def indexes(kwargs: dict[str, Any]) -> tuple[PolicyIndex, ConnectionIndex]:
    """kopf passes each index as a keyword argument named after the index handler's id."""
    policies: PolicyIndex = kwargs[INDEX_ID]
    connections: ConnectionIndex = kwargs[CONNECTION_INDEX_ID]
    return policies, connections


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    controller = runtime.controller

    def bound(kwargs: dict[str, Any]) -> None:
        controller.bind(*indexes(kwargs))

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(id="start", registry=registry)
    async def start(*, logger: kopf.Logger, **_: Any) -> None:
        if runtime.metrics_port:
            runtime.metrics.serve(runtime.metrics_port)
            logger.info("serving Prometheus metrics on port %s", runtime.metrics_port)

    @kopf.on.cleanup(id="stop", registry=registry)
    async def stop(**_: Any) -> None:
        await controller.stop()
        await runtime.connections.close_all()

    @kopf.on.probe(id="resync", errors=kopf.ErrorsMode.PERMANENT, registry=registry)
    async def resync_loops_alive(**_: Any) -> dict[str, int]:
        return runtime.heartbeats.check()

    @kopf.index(*POLICIES, id=INDEX_ID, registry=registry)
    async def vmclock_policies(*, body: kopf.Body, **_: Any) -> dict[Ref, IndexedPolicy]:
        return controller.indexed(body)

    @kopf.index(*CONNECTIONS, id=CONNECTION_INDEX_ID, registry=registry)
    async def vmclock_connections(*, body: kopf.Body, **_: Any) -> dict[Ref, IndexedConnection]:
        return controller.connection_indexed(body)

    def triggered(*, type: str | None, body: kopf.Body, **_: Any) -> bool:
        return controller.triggers.check(type, body) is not None

    @kopf.on.event(*POLICIES, id="reconcile", when=triggered, registry=registry)
    async def reconcile_policy(*, type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        bound(kwargs)
        trigger = controller.triggers.note(type, body)
        generation = int(body.metadata.get("generation") or 0)
        connection = str((body.spec.get("connectionRef") or {}).get("name") or DEFAULT_CONNECTION)
        controller.enqueue(
            Ref.of(body),
            uid=str(body.metadata.get("uid") or ""),
            generation=generation,
            connection=connection,
            settled=settled_at_start(trigger, body),
        )

    @kopf.on.delete(*POLICIES, id="restore", when=wants_restore, registry=registry)
    async def restore_policy(*, body: kopf.Body, **kwargs: Any) -> None:
        bound(kwargs)
        ref = Ref.of(body)
        if not await controller.wait_restored(ref, str(body.metadata.get("uid") or ""), RESTORE_WAIT):
            why = controller.restore_problem(ref) or "restoring the VMs' previous tracks"
            raise kopf.TemporaryError(why, delay=RESTORE_POLL)

    @kopf.on.event(*POLICIES, id="deleted", when=is_deletion, registry=registry)
    async def policy_deleted(*, body: kopf.Body, **kwargs: Any) -> None:
        bound(kwargs)
        ref = Ref.of(body)
        controller.deleted(ref, str(body.metadata.get("uid") or ""))
        listed = {
            str(e.get("uuid")) for e in (body.get("status") or {}).get("vms") or () if isinstance(e, dict)
        }
        controller.kick_sharing(set(body.spec.get("vmUuids") or ()) | listed, ref)

    @kopf.on.resume(*CONNECTIONS, id="check", backoff=HANDLER_BACKOFF, registry=registry)
    @kopf.on.create(*CONNECTIONS, id="check", backoff=HANDLER_BACKOFF, registry=registry)
    @kopf.on.update(*CONNECTIONS, id="check", field="spec", backoff=HANDLER_BACKOFF, registry=registry)
    async def check_connection(*, body: kopf.Body, **kwargs: Any) -> None:
        bound(kwargs)
        await runtime.connection_worker.check(body)

    @kopf.on.delete(*CONNECTIONS, id="release", registry=registry)
    async def release_connection(*, body: kopf.Body, **kwargs: Any) -> None:
        bound(kwargs)
        await runtime.connection_worker.release(body)

    @kopf.daemon(*CONNECTIONS, id="resync", cancellation_timeout=DRAIN_SECONDS + 5, registry=registry)
    async def resync_loop(*, body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        bound(kwargs)
        await runtime.connection_worker.run(body, stopped)

    return registry

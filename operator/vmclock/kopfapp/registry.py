"""The kopf handlers: thin wiring from Kubernetes events to the workers (no logic of their own).

Policies: create/resume/spec change and the two trigger annotations reconcile; deletion restores only for
`deletionPolicy: Restore` (the `when=` filter means Orphan policies never get a finalizer, and kopf removes
ours as soon as a policy switches to Orphan); DELETED events let policies sharing VMs take over. Drift
checks come from one daemon per ZStackConnection (see kopfapp/connections.py for why not timers).
Handlers return nothing, so kopf writes nothing of its own into status.
"""

from __future__ import annotations

from typing import Any

import kopf

from vmclock.engine.spec import CONNECTION_PLURAL, GROUP, POLICY_PLURAL, VERSION
from vmclock.kopfapp.claims import INDEX_ID, IndexedPolicy, PolicyIndex, all_entries, index_entry
from vmclock.kopfapp.connections import DRAIN_SECONDS
from vmclock.kopfapp.runtime import Runtime
from vmclock.kopfapp.settings import PAUSED_FIELD, REQUESTED_FIELD

POLICIES = (GROUP, VERSION, POLICY_PLURAL)
CONNECTIONS = (GROUP, VERSION, CONNECTION_PLURAL)
HANDLER_BACKOFF = 10.0
RESTORE_TIMEOUT = 15 * 60.0  # after this a stuck restore gives up and lets the deletion finish


def wants_restore(*, spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("deletionPolicy") == "Restore"


def is_deletion(*, type: str, **_: Any) -> bool:
    """Only DELETED watch events reach the handler (kopf logs every handler run, so filter early)."""
    return type == "DELETED"


def policy_index(kwargs: dict[str, Any]) -> PolicyIndex:
    """kopf passes each index as a keyword argument named after the index handler's id."""
    index: PolicyIndex = kwargs[INDEX_ID]
    return index


def peers(kwargs: dict[str, Any]) -> list[IndexedPolicy]:
    return list(all_entries(policy_index(kwargs)))


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(id="metrics", registry=registry)
    def start_metrics(*, logger: kopf.Logger, **_: Any) -> None:
        if runtime.metrics_port:
            runtime.metrics.serve(runtime.metrics_port)
            logger.info("serving Prometheus metrics on port %s", runtime.metrics_port)

    @kopf.on.cleanup(id="close-clients", registry=registry)
    async def close_clients(**_: Any) -> None:
        await runtime.connections.close_all()

    @kopf.on.probe(id="resync", errors=kopf.ErrorsMode.PERMANENT, registry=registry)
    def resync_loops_alive(**_: Any) -> dict[str, int]:
        return runtime.heartbeats.check()

    @kopf.index(*POLICIES, id=INDEX_ID, registry=registry)
    def vmclock_policies(*, body: kopf.Body, **_: Any) -> dict[tuple[str, str], IndexedPolicy]:
        return index_entry(body)

    @kopf.on.resume(*POLICIES, id="reconcile", backoff=HANDLER_BACKOFF, registry=registry)
    @kopf.on.create(*POLICIES, id="reconcile", backoff=HANDLER_BACKOFF, registry=registry)
    @kopf.on.update(*POLICIES, id="reconcile", field="spec", backoff=HANDLER_BACKOFF, registry=registry)
    @kopf.on.field(*POLICIES, id="paused", field=PAUSED_FIELD, backoff=HANDLER_BACKOFF, registry=registry)
    @kopf.on.field(
        *POLICIES, id="requested", field=REQUESTED_FIELD, backoff=HANDLER_BACKOFF, registry=registry
    )
    async def reconcile_policy(*, namespace: str | None, name: str, **kwargs: Any) -> None:
        await runtime.policies.reconcile((str(namespace), name), peers(kwargs))

    @kopf.on.delete(*POLICIES, id="restore", when=wants_restore, timeout=RESTORE_TIMEOUT, registry=registry)
    async def restore_policy(*, body: kopf.Body, **kwargs: Any) -> None:
        await runtime.policies.restore(body, peers(kwargs))

    @kopf.on.event(*POLICIES, id="deleted", when=is_deletion, registry=registry)
    def policy_deleted(*, body: kopf.Body, **kwargs: Any) -> None:
        key = (str(body.metadata.namespace), str(body.metadata.name))
        runtime.policies.forget(key)
        runtime.policies.kick_sharing(set(body.spec.get("vmUuids") or ()), key, peers(kwargs))

    @kopf.on.resume(*CONNECTIONS, id="check", backoff=HANDLER_BACKOFF, registry=registry)
    @kopf.on.create(*CONNECTIONS, id="check", backoff=HANDLER_BACKOFF, registry=registry)
    @kopf.on.update(*CONNECTIONS, id="check", field="spec", backoff=HANDLER_BACKOFF, registry=registry)
    async def check_connection(*, body: kopf.Body, **kwargs: Any) -> None:
        await runtime.connection_worker.check(body, policy_index(kwargs))

    @kopf.daemon(*CONNECTIONS, id="resync", cancellation_timeout=DRAIN_SECONDS + 5, registry=registry)
    async def resync_loop(*, body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        await runtime.connection_worker.run(body, policy_index(kwargs), stopped)

    return registry

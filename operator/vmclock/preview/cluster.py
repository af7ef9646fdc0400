"""What the cluster knows that a plan needs, read with the user's kubeconfig: the policies that exist (their
claims, seniority and memory) and the connections they use (which management node, whether Ready).

Nothing here writes to the cluster. The operator's rule for which claims count (design.md §6.3) needs the
operator's own view of other policies; the nearest a user can get is the cluster's: a policy's status says
which of its VMs it found, its connection's status whether it is Ready, and a selector policy's VMs are
resolved from ZStack now, as the operator does at every round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from vmclock.connections.manager import management_node
from vmclock.connections.spec import parse_connection_spec
from vmclock.engine import PolicyState
from vmclock.engine.external import ClockTrackClient
from vmclock.engine.report import READY, find_condition
from vmclock.engine.spec import CONNECTION_PLURAL, POLICY_PLURAL, parse_policy_spec
from vmclock.kopfapp.records import ConfigMapRecord
from vmclock.kopfapp.runtimes import PolicyRuntime
from vmclock.kubeapi import KubeApi, KubeApiError
from vmclock.preview.planner import Rival
from vmclock.refs import Ref
from vmclock.zstack.models import Track
from vmclock.zstack.options import Endpoint

FORBIDDEN = 403


ClusterKube = KubeApi  # the operator's Kubernetes reads, with the listings a plan needs (`list_objects`)


async def _listing(
    kube: ClusterKube, plural: str, namespaces: Sequence[str]
) -> tuple[list[dict[str, Any]], bool]:
    """All objects when the user may list cluster-wide, else those of `namespaces`; and whether it was all."""
    try:
        return await kube.list_objects(plural, None), True
    except KubeApiError as error:
        if error.status != FORBIDDEN:
            raise
    found: list[dict[str, Any]] = []
    for namespace in sorted(set(namespaces)):
        found += await kube.list_objects(plural, namespace)
    return found, False


def ready_node(connection: Mapping[str, Any] | None) -> str | None:
    """The management node a ZStackConnection reaches, when its status says Ready (else None)."""
    if connection is None or (connection.get("metadata") or {}).get("deletionTimestamp"):
        return None
    ready = find_condition((connection.get("status") or {}).get("conditions"), READY)
    if ready is None or ready.get("status") != "True":
        return None
    spec = parse_connection_spec(connection.get("spec") or {})
    try:
        return management_node(Endpoint.parse(spec.endpoint, spec.context_path))
    except ValueError:
        return None


class ClusterView:
    """The cluster's policies and connections, listed once per plan."""

    def __init__(
        self,
        kube: ClusterKube,
        policies: Sequence[Mapping[str, Any]],
        connections: Sequence[Mapping[str, Any]],
        *,
        cluster_wide: bool,
    ) -> None:
        self.kube = kube
        self.cluster_wide = cluster_wide
        self.policies = {Ref.of(body): body for body in policies}
        self._nodes = {Ref.of(body): ready_node(body) for body in connections}

    @classmethod
    async def read(cls, kube: ClusterKube, namespaces: Sequence[str]) -> ClusterView:
        """`namespaces`: where the manifests go; listed one by one when a cluster-wide list is forbidden."""
        policies, all_policies = await _listing(kube, POLICY_PLURAL, namespaces)
        connections, all_connections = await _listing(kube, CONNECTION_PLURAL, namespaces)
        return cls(kube, policies, connections, cluster_wide=all_policies and all_connections)

    def current(self, ref: Ref) -> PolicyState | None:
        body = self.policies.get(ref)
        return PolicyState.from_body(body) if body is not None else None

    async def record(self, ref: Ref) -> dict[str, Track]:
        """A policy's previous-track record (what Restore puts back), read through the operator's own reader
        (read-only: a leftover of a deleted namesake reads as empty and stays where it is)."""
        body = self.policies.get(ref)
        uid = str(((body or {}).get("metadata") or {}).get("uid") or "")
        if not uid:
            return {}
        runtime = PolicyRuntime(ref, uid, born=0.0)
        return await ConfigMapRecord(self.kube, runtime, tidy=False).load()

    async def rivals(self, clients: Mapping[str, ClockTrackClient]) -> list[Rival]:
        """The claims that count for ownership (design.md §6.3) on the nodes a plan reads (`clients`): backed
        ones of policies whose connection is Ready there; a selector policy's VMs resolved now."""
        found = []
        for body in self.policies.values():
            state = PolicyState.from_body(body)
            claim = state.claim()
            node = self._nodes.get(Ref(state.namespace, claim.connection)) if claim is not None else None
            if claim is None or node is None or node not in clients:
                continue
            if claim.by_selector and claim.enforce and not claim.paused:
                selector = parse_policy_spec(state.spec).selector
                assert selector is not None  # a selector claim comes from a spec with a selector
                selected = frozenset(await clients[node].select_vms(selector))
                claim = replace(claim, vm_uuids=selected, found=selected)
            backed = claim.backed()
            if backed is not None:
                found.append(Rival(backed, node))
        return found


def manifest_state(manifest: Mapping[str, Any], current: PolicyState | None, now: datetime) -> PolicyState:
    """A manifest as the policy it would become: an existing policy keeps its creation time (seniority) and
    status (previous tracks); annotations merge as `kubectl apply` leaves them; a new one is created now."""
    meta = manifest.get("metadata") or {}
    annotations = {**(current.annotations if current else {}), **(meta.get("annotations") or {})}
    return PolicyState(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        generation=current.generation + 1 if current else 1,
        created=current.created if current else now,
        spec=manifest.get("spec") or {},
        annotations={str(k): str(v) for k, v in annotations.items()},
        status=current.status if current else {},
    )

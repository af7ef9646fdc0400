"""One `vmclock plan` run: manifests -> policies in their namespaces -> the cluster's view -> ZStack clients
-> the engine's plan of each policy. Every failure becomes a `PlanError` whose message names the manifest,
object or flag to fix and never a secret (the connection layer's and the ZStack client's messages are
already free of them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from vmclock.cli import endpoint_policy
from vmclock.connections.leased import LeasedClient
from vmclock.connections.manager import management_node
from vmclock.engine import InvalidSpec, PolicySpec, parse_policy_spec
from vmclock.kubeapi import KubeApiError, NoKubeConfig
from vmclock.preview.access import cluster_clients, direct_client, direct_credentials, verify
from vmclock.preview.cluster import ClusterKube, ClusterView, manifest_state
from vmclock.preview.manifests import Manifest, load_manifests
from vmclock.preview.outcome import PolicyPreview
from vmclock.preview.planner import Proposed, preview
from vmclock.refs import Ref
from vmclock.zstack import ZStackClient, ZStackError


class PlanError(Exception):
    """The plan cannot be made; the message says what to fix."""


@dataclass(frozen=True)
class _Placed:
    manifest: Manifest
    ref: Ref
    spec: PolicySpec

    @property
    def connection(self) -> Ref:
        return Ref(self.ref.namespace, self.spec.connection_name)

    def body(self) -> dict[str, Any]:
        """The manifest with the namespace it lands in, as `kubectl apply -n` would send it."""
        meta = {**(self.manifest.body.get("metadata") or {}), "namespace": self.ref.namespace}
        return {**self.manifest.body, "metadata": meta}


def _place(manifests: list[Manifest], namespace: str | None, fallback: Callable[[], str]) -> list[_Placed]:
    placed: list[_Placed] = []
    default = namespace or (fallback() if any(m.namespace is None for m in manifests) else "")
    for manifest in manifests:
        if namespace and manifest.namespace and manifest.namespace != namespace:
            raise PlanError(
                f"{manifest.source}: metadata.namespace is {manifest.namespace} but -n says {namespace}"
            )
        ref = Ref(manifest.namespace or default, manifest.name)
        try:
            spec = parse_policy_spec(manifest.body["spec"])
        except InvalidSpec as problem:
            raise PlanError(f"{manifest.source}: VmClockPolicy {ref}: {problem}") from None
        if any(p.ref == ref for p in placed):
            raise PlanError(f"{manifest.source}: VmClockPolicy {ref} appears twice in the manifests")
        placed.append(_Placed(manifest, ref, spec))
    return placed


async def _view(kube: ClusterKube, placed: list[_Placed], notes: list[str]) -> ClusterView:
    namespaces = sorted({p.ref.namespace for p in placed})
    view = await ClusterView.read(kube, namespaces)
    if not view.cluster_wide:
        notes.append(
            "you may not list VmClockPolicies and ZStackConnections in all namespaces: ownership was "
            f"checked against the policies of {', '.join(namespaces)} only"
        )
    return view


async def _plan(
    args: argparse.Namespace,
    placed: list[_Placed],
    environ: Mapping[str, str],
    stack: AsyncExitStack,
    notes: list[str],
) -> list[PolicyPreview]:
    direct = args.endpoint is not None
    kube = ClusterKube()
    stack.push_async_callback(kube.close)
    view = await _view(kube, placed, notes) if not direct or args.against_cluster else None
    if view is None:
        notes.append(
            "the cluster was not consulted (--endpoint without --against-cluster): policies that exist "
            "there, and the VMs they own, were not taken into account"
        )
    endpoints = endpoint_policy(args)
    if direct:
        credentials = direct_credentials(
            args.endpoint, endpoints, args.credentials_file, environ, context_path=args.context_path
        )
        client = direct_client(
            args.endpoint, credentials, context_path=args.context_path, ca_file=args.ca_file
        )
        await stack.enter_async_context(client)
        await verify(client)
        by_connection: Mapping[Ref, ZStackClient | LeasedClient] = {p.connection: client for p in placed}
    else:
        by_connection = await stack.enter_async_context(
            cluster_clients(kube, endpoints, [p.connection for p in placed])
        )
    clients = {management_node(c.endpoint): c for c in by_connection.values()}
    now = datetime.now(UTC)
    proposed = []
    for p in placed:
        current = view.current(p.ref) if view is not None else None
        record = await view.record(p.ref) if view is not None else {}
        node = management_node(by_connection[p.connection].endpoint)
        state = manifest_state(p.body(), current, now)
        proposed.append(Proposed(state, p.spec, p.manifest.source, node, record, current))
    rivals = await view.rivals(clients) if view is not None else []
    return await preview(proposed, clients, rivals, against_cluster=args.against_cluster)


async def plan(
    args: argparse.Namespace, stdin: IO[str], environ: Mapping[str, str], context_namespace: Callable[[], str]
) -> tuple[list[PolicyPreview], list[str]]:
    """The plan of every policy in `args.filenames`, and notes on what it could not take into account."""
    manifests = load_manifests(args.filenames, stdin)
    placed = _place(manifests, args.namespace, context_namespace)
    notes: list[str] = []
    try:
        async with AsyncExitStack() as stack:
            return await _plan(args, placed, environ, stack, notes), notes
    except KubeApiError as problem:
        raise PlanError(f"reading the cluster failed: {problem}") from None
    except NoKubeConfig:
        raise PlanError(
            "no Kubernetes configuration found (KUBECONFIG, ~/.kube/config or in-cluster) to read the "
            "ZStackConnection; give one, or reach ZStack directly with --endpoint"
        ) from None
    except ZStackError as problem:
        raise PlanError(f"reading ZStack failed: {problem}") from None
    except ValueError as problem:  # a selector value ZStack's query parser would misread
        raise PlanError(f"a selector cannot be sent to ZStack: {problem}") from None

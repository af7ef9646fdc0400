"""A policy's previous-track record as a ConfigMap in the policy's namespace (engine/records.py).

Why a ConfigMap: the record must survive a crash (it is written before the writes it covers), be namespaced
with the tenant's policy, and be bounded: one line per VM the policy changed, 10,000 VMs in ~420 KB, inside
a ConfigMap's 1 MiB. Status cannot hold it (256 KiB budget, a bounded `status.vms`).

The ConfigMap is named after the policy, carries an ownerReference to the policy's uid (so Kubernetes'
garbage collector removes it with the policy) and the label app.kubernetes.io/managed-by=vmclock. One that
does not name this policy as its owner is someone else's (a user's ConfigMap of that name): it is never
overwritten or deleted; the policy reports it (`RecordConflict`) and writes nothing to ZStack until it is
gone.
One owned by a VmClockPolicy of this name with another uid is a deleted namesake's (its deletion finished,
its restores done or not owed), which the garbage collector is about to remove: it is removed now instead,
exactly as read, so a quick re-create does not wait for the collector.

Writes are whole replacements guarded by the resourceVersion last read or written: only one reconcile of a
policy runs at a time, so a conflict means someone else edited it, and the reconcile fails (and retries)
before writing to ZStack. The copy in the policy's runtime saves a read per reconcile. The operator deletes
the ConfigMap itself once the policy is gone or its Restore completed; a cluster's collector may lag.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from vmclock.engine.records import Origins, decode_record_with_origins, encode_record
from vmclock.engine.spec import GROUP, VERSION
from vmclock.kopfapp.runtimes import PolicyRuntime, RecordCache
from vmclock.kubeapi import Forbidden, Gone, KubeApi, ObjectConflict
from vmclock.refs import Ref
from vmclock.zstack.models import Track

log = logging.getLogger(__name__)

PREFIX = "vmclock-tracks-"
KEY = "previousTracks"
MAX_NAME = 253
MANAGED_BY = {"app.kubernetes.io/managed-by": "vmclock"}


def record_name(policy: str, prefix: str = PREFIX) -> str:
    """`vmclock-tracks-<policy>`; a name too long for that keeps a prefix of it and a hash of the whole."""
    name = prefix + policy
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(policy.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - 11]}-{digest}"


def owner_reference(policy: Ref, uid: str) -> dict[str, str]:
    """The ownerReference that lets Kubernetes' garbage collector remove a record with its policy."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VmClockPolicy", "name": policy.name, "uid": uid}


def _owner(body: Mapping[str, Any]) -> Mapping[str, Any]:
    owners = (body.get("metadata") or {}).get("ownerReferences") or ()
    return next((o for o in owners if o.get("kind") == "VmClockPolicy"), {})


def owning_uid(body: Mapping[str, Any]) -> str | None:
    uid = _owner(body).get("uid")
    return str(uid) if uid else None


def owning_name(body: Mapping[str, Any]) -> str | None:
    name = _owner(body).get("name")
    return str(name) if name else None


class RecordNotOurs(Exception):
    """The record's ConfigMap exists and is not owned by this incarnation of the policy."""


class ConfigMapRecord:
    """The `TrackRecord` of one incarnation (uid) of one policy, cached in its runtime."""

    def __init__(self, kube: KubeApi, runtime: PolicyRuntime, *, tidy: bool = True) -> None:
        """`tidy`: remove a deleted namesake's leftover record (the operator does; a read-only reader
        such as `vmclock plan` reads it as empty instead)."""
        self._kube, self._runtime, self._tidy = kube, runtime, tidy
        self._policy, self._uid = runtime.ref, runtime.uid
        self._name = record_name(runtime.ref.name)

    async def load(self) -> dict[str, Track]:
        if self._runtime.record is None:
            self._runtime.record = await self._read()
        return {uuid: track for uuid, (track, _) in self._runtime.record.tracks.items()}

    def origins(self) -> dict[str, str]:
        cache = self._runtime.record
        return {u: origin for u, (_, origin) in cache.tracks.items() if origin} if cache else {}

    async def _read(self) -> RecordCache:
        body = await self._kube.get_config_map(self._policy.namespace, self._name)
        if body is not None and owning_name(body) == self._policy.name and owning_uid(body) != self._uid:
            if not self._tidy:
                return RecordCache({}, None)
            await delete_exactly(self._kube, self._policy.namespace, body)
            body = await self._kube.get_config_map(self._policy.namespace, self._name)
        if body is None:
            return RecordCache({}, None)
        if owning_uid(body) != self._uid:
            raise RecordNotOurs(
                f"ConfigMap {self._policy.namespace}/{self._name} exists and is not owned by this policy: "
                "it keeps the VMs' previous tracks and must be this policy's own; delete or rename it"
            )
        tracks, origins = decode_record_with_origins(str((body.get("data") or {}).get(KEY) or ""))
        entries = {uuid: (track, origins.get(uuid, "")) for uuid, track in tracks.items()}
        return RecordCache(entries, str(body["metadata"].get("resourceVersion") or ""))

    async def store(self, tracks: Mapping[str, Track], origins: Origins) -> None:
        cache = self._runtime.record if self._runtime.record is not None else await self._read()
        body = self._body(tracks, origins)
        self._runtime.record = None  # unknown until the write's answer says what is stored
        if cache.version is None:
            written = await self._kube.create_config_map(self._policy.namespace, body)
        else:
            try:
                written = await self._kube.replace_config_map(
                    self._policy.namespace,
                    self._name,
                    {**body, "metadata": {**body["metadata"], "resourceVersion": cache.version}},
                )
            except Gone:  # deleted by someone since: what this incarnation knows is written again
                written = await self._kube.create_config_map(self._policy.namespace, body)
        entries = {uuid: (track, origins.get(uuid, "")) for uuid, track in tracks.items()}
        self._runtime.record = RecordCache(entries, str(written["metadata"].get("resourceVersion") or ""))

    def _body(self, tracks: Mapping[str, Track], origins: Origins) -> dict[str, Any]:
        return record_body(self._policy, self._uid, self._name, {KEY: encode_record(tracks, origins)})


def record_body(policy: Ref, uid: str, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    """A ConfigMap a policy keeps beside it: labelled as ours and owned by the policy's uid, so Kubernetes'
    garbage collector removes it with the policy."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": policy.namespace,
            "labels": dict(MANAGED_BY),
            "ownerReferences": [owner_reference(policy, uid)],
        },
        "data": dict(data),
    }


async def delete_record(kube: KubeApi, policy: Ref, *, owner_uid: str) -> None:
    """Delete the policy's record, exactly as read, and only if it belongs to `owner_uid`: a namesake
    created since keeps its own, a ConfigMap of someone else's is never touched, a concurrent change is
    left alone."""
    try:
        body = await kube.get_config_map(policy.namespace, record_name(policy.name))
        if body is not None and owning_uid(body) == owner_uid:
            await delete_exactly(kube, policy.namespace, body)
    except Forbidden:
        # The namespace no longer lets the operator in (a namespace deletion removes its RoleBinding first,
        # or it opted out): the record is owned by the policy, so the garbage collector removes it.
        log.info("record of VmClockPolicy %s left to the garbage collector (access withdrawn)", policy)


async def delete_exactly(kube: KubeApi, namespace: str, body: Mapping[str, Any]) -> None:
    meta = body["metadata"]
    with contextlib.suppress(ObjectConflict):
        await kube.delete_config_map(
            namespace,
            str(meta["name"]),
            uid=str(meta.get("uid")),
            resource_version=str(meta.get("resourceVersion")),
        )

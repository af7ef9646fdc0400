"""A selector policy's previous-track record as a ConfigMap in the policy's namespace (engine/records.py).

Why a ConfigMap: the record must survive a crash (it is written before the writes it covers), be namespaced
with the tenant's policy, and be bounded: one `<uuid> <track>` line per VM the policy changed, 10,000 VMs in
~400 KB, inside a ConfigMap's 1 MiB. Status cannot hold it (256 KiB budget, a bounded `status.vms`).

The ConfigMap is named after the policy, carries an ownerReference to the policy's uid (so a garbage
collector removes it with the policy) and the label app.kubernetes.io/managed-by=vmclock. A record owned by
another uid is a leftover of a deleted namesake: it reads as empty and is overwritten at the first store.
Writes are whole replacements guarded by the resourceVersion read at `load`: only one reconcile of a policy
runs at a time, so a conflict means someone else edited it, and the reconcile fails (and retries) before
writing to ZStack. The operator deletes the ConfigMap itself once the policy is gone (Orphan) or its Restore
completed; the test control plane has no garbage collector, and a cluster's collector may lag.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from vmclock.engine.records import decode_record, encode_record
from vmclock.engine.spec import GROUP, VERSION
from vmclock.kubeapi import KubeApi, ObjectConflict
from vmclock.refs import Ref
from vmclock.zstack.models import Track

PREFIX = "vmclock-tracks-"
KEY = "previousTracks"
MAX_NAME = 253
MANAGED_BY = {"app.kubernetes.io/managed-by": "vmclock"}


def record_name(policy: str) -> str:
    """`vmclock-tracks-<policy>`; a name too long for that keeps a prefix of it and a hash of the whole."""
    name = PREFIX + policy
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(policy.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - 11]}-{digest}"


def _owner_uid(body: Mapping[str, Any]) -> str | None:
    owners = (body.get("metadata") or {}).get("ownerReferences") or ()
    return next((str(o.get("uid")) for o in owners if o.get("kind") == "VmClockPolicy"), None)


class ConfigMapRecord:
    """The `TrackRecord` of one incarnation (uid) of one policy."""

    def __init__(self, kube: KubeApi, policy: Ref, uid: str) -> None:
        self._kube, self._policy, self._uid = kube, policy, uid
        self._name = record_name(policy.name)
        self._version: str | None = None  # resourceVersion read at load; None: there is no ConfigMap

    async def load(self) -> dict[str, Track]:
        body = await self._kube.get_config_map(self._policy.namespace, self._name)
        if body is None:
            self._version = None
            return {}
        self._version = str(body["metadata"].get("resourceVersion") or "")
        if _owner_uid(body) != self._uid:
            return {}
        return decode_record(str((body.get("data") or {}).get(KEY) or ""))

    async def store(self, tracks: Mapping[str, Track]) -> None:
        body = self._body(tracks)
        if self._version is None:
            written = await self._kube.create_config_map(self._policy.namespace, body)
        else:
            body["metadata"]["resourceVersion"] = self._version
            written = await self._kube.replace_config_map(self._policy.namespace, self._name, body)
        self._version = str(written["metadata"].get("resourceVersion") or "")

    def _body(self, tracks: Mapping[str, Track]) -> dict[str, Any]:
        owner = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "VmClockPolicy",
            "name": self._policy.name,
            "uid": self._uid,
        }
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self._name,
                "namespace": self._policy.namespace,
                "labels": dict(MANAGED_BY),
                "ownerReferences": [owner],
            },
            "data": {KEY: encode_record(tracks)},
        }


async def delete_record(kube: KubeApi, policy: Ref, *, owner_uid: str | None) -> None:
    """Delete the policy's record, exactly as read: only if it belongs to `owner_uid` (any owner when the
    uid is not known) so a namesake created since keeps its own; a concurrent change is left alone."""
    name = record_name(policy.name)
    body = await kube.get_config_map(policy.namespace, name)
    if body is None or (owner_uid is not None and _owner_uid(body) not in (owner_uid, None)):
        return
    meta = body["metadata"]
    try:
        await kube.delete_config_map(
            policy.namespace,
            name,
            uid=str(meta.get("uid")),
            resource_version=str(meta.get("resourceVersion")),
        )
    except ObjectConflict:
        return

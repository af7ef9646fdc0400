"""Manifests of what a user writes (Secret, ZStackConnection, VmClockPolicy) and readers of their status.

The builders return plain dicts ready for ``kubectl apply``; the readers take what ``kubectl get -o json``
returned.  Keeping both here means tests state *what* they create and check, not how the YAML is spelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

GROUP = "vmclock.zstack.io"
API_VERSION = f"{GROUP}/v1alpha1"
PAUSED = f"{GROUP}/paused"
RECONCILE_REQUESTED_AT = f"{GROUP}/reconcile-requested-at"

Obj = dict[str, Any]


ALLOWED_ENDPOINTS = f"{GROUP}/allowed-endpoints"


def account_secret(name: str, account: str, password: str, *, allow: str) -> Obj:
    """A Secret whose credentials may be sent to the endpoint `allow` (its owner's allowed-endpoints)."""
    return _secret(name, {"accountName": account, "password": password}, allow)


def access_key_secret(name: str, key_id: str, key_secret: str, *, allow: str) -> Obj:
    return _secret(name, {"accessKeyId": key_id, "accessKeySecret": key_secret}, allow)


def _secret(name: str, string_data: dict[str, str], allow: str) -> Obj:
    metadata = {"name": name, "annotations": {ALLOWED_ENDPOINTS: allow}}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "stringData": string_data}


def connection(
    name: str,
    endpoint: str,
    secret_name: str,
    *,
    resync_seconds: int | None = None,
    **spec: Any,
) -> Obj:
    """A ZStackConnection; extra keyword arguments are further spec fields (camelCase)."""
    body: Obj = {"endpoint": endpoint, "credentialsSecretRef": {"name": secret_name}, **spec}
    if resync_seconds is not None:
        body["resyncIntervalSeconds"] = resync_seconds
    return {"apiVersion": API_VERSION, "kind": "ZStackConnection", "metadata": {"name": name}, "spec": body}


def policy(
    name: str,
    track: str,
    vm_uuids: Iterable[str],
    *,
    connection_name: str | None = None,
    management: str | None = None,
    deletion: str | None = None,
    resync_seconds: int | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """A VmClockPolicy; unset options are left out so the CRD defaults apply."""
    spec: Obj = {"track": track, "vmUuids": list(vm_uuids)}
    optional = {
        "managementPolicy": management,
        "deletionPolicy": deletion,
        "resyncIntervalSeconds": resync_seconds,
    }
    spec.update({key: value for key, value in optional.items() if value is not None})
    if connection_name is not None:
        spec["connectionRef"] = {"name": connection_name}
    metadata: Obj = {"name": name}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": API_VERSION, "kind": "VmClockPolicy", "metadata": metadata, "spec": spec}


def selector_policy(name: str, track: str, selector: Mapping[str, Any], **options: Any) -> Obj:
    """A VmClockPolicy that selects its VMs (``spec.selector``) instead of naming them; ``options`` as for
    :func:`policy`."""
    made = policy(name, track, (), **options)
    del made["spec"]["vmUuids"]
    made["spec"]["selector"] = dict(selector)
    return made


# --------------------------------------------------------------------------- status readers


def condition(obj: Mapping[str, Any], kind: str) -> Obj:
    """The condition of type ``kind`` in ``status.conditions``, or ``{}`` when there is none."""
    for item in obj.get("status", {}).get("conditions", []) or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def condition_is(obj: Mapping[str, Any], kind: str, status: str, reason: str | None = None) -> bool:
    """True when the condition has ``status`` (and ``reason``) *for the object's current generation*."""
    found = condition(obj, kind)
    if found.get("status") != status:
        return False
    if reason is not None and found.get("reason") != reason:
        return False
    return bool(found.get("observedGeneration") == obj["metadata"].get("generation"))


def vm_entries(obj: Mapping[str, Any]) -> dict[str, Obj]:
    """``status.vms`` keyed by UUID."""
    return {entry["uuid"]: dict(entry) for entry in obj.get("status", {}).get("vms", []) or []}


def phases(obj: Mapping[str, Any]) -> dict[str, str]:
    return {uuid: entry.get("phase", "") for uuid, entry in vm_entries(obj).items()}

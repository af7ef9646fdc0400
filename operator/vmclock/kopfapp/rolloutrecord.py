"""A policy's rollout record (engine/restarts.py) as a ConfigMap `vmclock-reboots-<policy>`.

Why a ConfigMap beside the previous-track record rather than status: the reboot intent must be durable
before the reboot leaves (a status write can be refused or overtaken), and it belongs to the policy's
namespace and lifetime like the previous-track record: the same ownerReference and label, removed with the
policy by Kubernetes' garbage collector. Only policies with `spec.restart.policy: Rolling` have one.

Writes are whole replacements guarded by the resourceVersion last read or written, so a concurrent edit
fails the slice before anything more is sent. One left by a deleted namesake (owned by another uid under
the same policy name) is removed, exactly as read; one not owned by a policy of this name is never touched.
"""

from __future__ import annotations

from typing import Any

from vmclock.engine.restarts import RolloutRecord
from vmclock.kopfapp.records import (
    RecordNotOurs,
    delete_exactly,
    owning_name,
    owning_uid,
    record_body,
    record_name,
)
from vmclock.kubeapi import Gone, KubeApi
from vmclock.refs import Ref

PREFIX = "vmclock-reboots-"
KEY = "rollout"


class ConfigMapRolloutStore:
    """The `RolloutStore` of one incarnation (uid) of one policy, for one reconcile."""

    def __init__(self, kube: KubeApi, policy: Ref, uid: str) -> None:
        self._kube, self._policy, self._uid = kube, policy, uid
        self._name = record_name(policy.name, PREFIX)
        self._version: str | None = None

    async def load(self) -> RolloutRecord:
        namespace = self._policy.namespace
        body = await self._kube.get_config_map(namespace, self._name)
        if body is not None and owning_name(body) == self._policy.name and owning_uid(body) != self._uid:
            await delete_exactly(self._kube, namespace, body)
            body = await self._kube.get_config_map(namespace, self._name)
        if body is None:
            self._version = None
            return RolloutRecord()
        if owning_uid(body) != self._uid:
            raise RecordNotOurs(
                f"ConfigMap {namespace}/{self._name} exists and is not owned by this policy: it keeps the "
                "rollout's reboot intents and must be this policy's own; delete or rename it"
            )
        self._version = str(body["metadata"].get("resourceVersion") or "")
        return RolloutRecord.decode(str((body.get("data") or {}).get(KEY) or ""))

    async def store(self, record: RolloutRecord) -> None:
        namespace, body = self._policy.namespace, self._body(record)
        if self._version is None:
            written = await self._kube.create_config_map(namespace, body)
        else:
            guarded = {**body, "metadata": {**body["metadata"], "resourceVersion": self._version}}
            try:
                written = await self._kube.replace_config_map(namespace, self._name, guarded)
            except Gone:  # deleted by someone since: what this slice knows is written again
                written = await self._kube.create_config_map(namespace, body)
        self._version = str(written["metadata"].get("resourceVersion") or "")

    def _body(self, record: RolloutRecord) -> dict[str, Any]:
        return record_body(self._policy, self._uid, self._name, {KEY: record.encode()})

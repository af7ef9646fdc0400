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

from vmclock.engine.restarts import RolloutRecord
from vmclock.kopfapp.records import OwnedConfigMap
from vmclock.kubeapi import KubeApi
from vmclock.refs import Ref

PREFIX = "vmclock-reboots-"
KEY = "rollout"


class ConfigMapRolloutStore:
    """The `RolloutStore` of one incarnation (uid) of one policy, for one reconcile."""

    def __init__(self, kube: KubeApi, policy: Ref, uid: str) -> None:
        self._map = OwnedConfigMap(kube, policy, uid, (PREFIX, KEY, "the rollout's reboot intents"))
        self._version: str | None = None

    async def load(self) -> RolloutRecord:
        text, self._version = await self._map.read()
        return RolloutRecord.decode(text)

    async def store(self, record: RolloutRecord) -> None:
        self._version = await self._map.write(record.encode(), self._version)

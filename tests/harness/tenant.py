"""One namespace's view of the cluster: apply, read, patch and wait on vmclock objects with kubectl.

Tests act as a tenant would (``kubectl apply``, ``kubectl annotate``, ``kubectl delete``) and judge the
operator only by what the API server returns.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .objects import Obj, condition_is
from .waiting import wait_for

POLICY = "vmclockpolicies.vmclock.zstack.io"
CONNECTION = "zstackconnections.vmclock.zstack.io"


class KubectlLike(Protocol):
    """The ``kubectl`` fixture / ``controlplane.Kubectl`` interface the harness relies on."""

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, namespace: str | None = None
    ) -> subprocess.CompletedProcess[str]: ...

    def json(self, *args: str, namespace: str | None = None) -> Any: ...

    def apply(
        self, manifest: str | Mapping[str, Any] | Sequence[Mapping[str, Any]], namespace: str | None = None
    ) -> subprocess.CompletedProcess[str]: ...


@dataclass(frozen=True)
class Tenant:
    kubectl: KubectlLike
    namespace: str

    def apply(self, *objs: Obj) -> None:
        self.kubectl.apply(list(objs), namespace=self.namespace)

    def get(self, resource: str, name: str) -> Obj:
        found: Obj = self.kubectl.json("get", resource, name, namespace=self.namespace)
        return found

    def find(self, resource: str, name: str) -> Obj | None:
        """The object, or None once it is gone."""
        result = self.kubectl(
            "get", resource, name, "--ignore-not-found", "-o", "json", namespace=self.namespace
        )
        return json.loads(result.stdout) if result.stdout.strip() else None

    def policy(self, name: str) -> Obj:
        return self.get(POLICY, name)

    def connection(self, name: str) -> Obj:
        return self.get(CONNECTION, name)

    def wait_policy(self, name: str, until: Callable[[Obj], bool], *, timeout: float, what: str) -> Obj:
        return wait_for(lambda: self.policy(name), until, timeout=timeout, what=f"{what} ({name})")

    def wait_ready(self, name: str, *, timeout: float) -> Obj:
        """Ready=True for the policy's current generation."""
        return self.wait_policy(
            name, lambda p: condition_is(p, "Ready", "True"), timeout=timeout, what="Ready=True"
        )

    def merge_patch(self, resource: str, name: str, patch: Obj) -> None:
        self.kubectl(
            "patch", resource, name, "--type=merge", "-p", json.dumps(patch), namespace=self.namespace
        )

    def annotate(self, resource: str, name: str, key: str, value: str | None) -> None:
        """Set (or, with None, remove) one annotation, the way a user would with ``kubectl annotate``."""
        arg = f"{key}-" if value is None else f"{key}={value}"
        self.kubectl("annotate", "--overwrite", resource, name, arg, namespace=self.namespace)

    def delete(self, resource: str, name: str, *, timeout: float) -> None:
        """Delete and wait until the object is really gone (finalizers included)."""
        self.kubectl("delete", resource, name, f"--timeout={timeout:.0f}s", namespace=self.namespace)

    def events(self, involved_name: str | None = None) -> list[Obj]:
        items: list[Obj] = self.kubectl.json("get", "events", namespace=self.namespace)["items"]
        return [e for e in items if involved_name is None or e["involvedObject"]["name"] == involved_name]

    def event_reasons(self, involved_name: str) -> list[str]:
        return [event["reason"] for event in self.events(involved_name)]

    def wait_event(self, involved_name: str, reason: str, *, timeout: float) -> None:
        """Events are posted asynchronously (after the status), so a test waits for them briefly."""
        wait_for(
            lambda: self.event_reasons(involved_name),
            lambda reasons: reason in reasons,
            timeout=timeout,
            what=f"a {reason} Event on {involved_name}",
        )

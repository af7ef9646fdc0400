"""The few Kubernetes API calls the operator makes outside kopf: read Secrets/ConfigMaps/our objects,
PATCH status, and keep the ConfigMaps that hold selector policies' previous-track records.

Why the official `kubernetes` client (sync, run in threads via `asyncio.to_thread`) rather than a home-made
aiohttp helper on kopf's credentials: kopf's own login for a cluster with the `kubernetes` package installed
(`kopf.login_via_client`, which this operator uses) already imports it, so the memory cost noted in
operator-anchors.md §3.8 is paid either way; in exchange we get its kubeconfig handling (exec plugins,
client certificates, in-cluster token refresh) and status-subresource calls without re-implementing them.
Call volume is low (one Secret read per connection check, one status PATCH per changed reconcile), so
threads are fine.

Secret contents are returned as bytes and never logged; API errors are re-raised as `KubeApiError` whose text
carries only the HTTP status and reason, never a response body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vmclock.engine.spec import GROUP, VERSION

NOT_FOUND = 404
CONFLICT = 409
UNPROCESSABLE = 422
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
REQUEST_TIMEOUT = 30.0
POOL_SIZE = 32

T = TypeVar("T")


class KubeApiError(Exception):
    def __init__(self, status: int | None, reason: str, what: str) -> None:
        self.status = status
        super().__init__(f"Kubernetes API {status or 'error'} ({reason}) for {what}")


class ObjectReplaced(Exception):
    """A write guarded by uid found another object (or none) under the name: the work it was for is void."""


class ObjectConflict(KubeApiError):
    """409: the object exists already (create), or changed since it was read (resourceVersion, uid)."""


@dataclass(frozen=True)
class KubeObject:
    """A Secret's or ConfigMap's data (values as bytes) plus the resourceVersion to notice changes."""

    resource_version: str
    data: Mapping[str, bytes] = field(repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict)


class KubeApi:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api: Any = None

    def _client(self) -> Any:
        with self._lock:
            if self._api is None:
                import kubernetes.client  # noqa: PLC0415 - imported on first use, off the CLI's --help path
                import kubernetes.config  # noqa: PLC0415

                try:
                    kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
                except kubernetes.config.ConfigException:
                    kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
                configuration = kubernetes.client.Configuration.get_default_copy()
                # Above the worker-thread count, so bursts (many policies at start-up) reuse connections
                # instead of discarding them ("Connection pool is full").
                configuration.connection_pool_maxsize = POOL_SIZE
                self._api = kubernetes.client.ApiClient(configuration=configuration)
            return self._api

    async def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        def run() -> T:
            from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

            try:
                return fn(self._client())
            except ApiException as exc:
                raise KubeApiError(exc.status, str(exc.reason), what) from None

        return await asyncio.to_thread(run)

    async def _raw_get(self, what: str, fn: Callable[[Any], Any]) -> dict[str, Any] | None:
        try:
            response = await self._call(what, fn)
        except KubeApiError as exc:
            if exc.status == NOT_FOUND:
                return None
            raise
        body: dict[str, Any] = json.loads(response.data)
        return body

    async def _get_core(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A whole Secret or ConfigMap as the API server returns it, or None when there is none."""
        import kubernetes.client  # noqa: PLC0415

        read = "read_namespaced_secret" if kind == "Secret" else "read_namespaced_config_map"
        return await self._raw_get(
            f"{kind} {namespace}/{name}",
            lambda api: getattr(kubernetes.client.CoreV1Api(api), read)(
                name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            ),
        )

    async def _read_data(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        """A Secret's or ConfigMap's data as bytes (Secret `data` and ConfigMap `binaryData` are base64)."""
        body = await self._get_core(kind, namespace, name)
        if body is None:
            return None
        plain, encoded = ("", "data") if kind == "Secret" else ("data", "binaryData")
        data = {k: v.encode() for k, v in (body.get(plain) or {}).items()}
        data |= {k: base64.b64decode(v) for k, v in (body.get(encoded) or {}).items()}
        meta = body["metadata"]
        return KubeObject(str(meta.get("resourceVersion", "")), data, dict(meta.get("annotations") or {}))

    async def read_secret(self, namespace: str, name: str) -> KubeObject | None:
        return await self._read_data("Secret", namespace, name)

    async def read_config_map(self, namespace: str, name: str) -> KubeObject | None:
        return await self._read_data("ConfigMap", namespace, name)

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A whole ConfigMap (metadata included: owner, resourceVersion), or None when there is none."""
        return await self._get_core("ConfigMap", namespace, name)

    async def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create; ObjectConflict when one of that name exists already."""
        import kubernetes.client  # noqa: PLC0415

        name = str(body["metadata"]["name"])
        payload: Any = dict(body)  # the client sends a plain dict as it is (camelCase keys, no model)
        return await self._written(
            f"ConfigMap {namespace}/{name}",
            lambda api: kubernetes.client.CoreV1Api(api).create_namespaced_config_map(
                namespace, payload, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            ),
        )

    async def replace_config_map(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace; `body`'s metadata.resourceVersion makes it ObjectConflict if the object changed since."""
        import kubernetes.client  # noqa: PLC0415

        payload: Any = dict(body)
        return await self._written(
            f"ConfigMap {namespace}/{name}",
            lambda api: kubernetes.client.CoreV1Api(api).replace_namespaced_config_map(
                name, namespace, payload, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            ),
        )

    async def delete_config_map(self, namespace: str, name: str, *, uid: str, resource_version: str) -> bool:
        """Delete exactly the ConfigMap that was read (uid and resourceVersion preconditions): False when it
        is gone already, ObjectConflict when it was replaced or changed in between."""
        import kubernetes.client  # noqa: PLC0415

        options = kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(uid=uid, resource_version=resource_version)
        )
        try:
            await self._written(
                f"ConfigMap {namespace}/{name}",
                lambda api: kubernetes.client.CoreV1Api(api).delete_namespaced_config_map(
                    name, namespace, body=options, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                ),
            )
        except KubeApiError as exc:
            if exc.status == NOT_FOUND:
                return False
            raise
        return True

    async def _written(self, what: str, fn: Callable[[Any], Any]) -> dict[str, Any]:
        """A write whose reply is the object; a 409 is ObjectConflict."""
        try:
            response = await self._call(what, fn)
        except KubeApiError as exc:
            if exc.status == CONFLICT:
                raise ObjectConflict(exc.status, "Conflict", what) from None
            raise
        body: dict[str, Any] = json.loads(response.data)
        return body

    async def read_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of our custom objects (a VmClockPolicy or ZStackConnection), fresh from the API server."""
        import kubernetes.client  # noqa: PLC0415

        return await self._raw_get(
            f"{plural} {namespace}/{name}",
            lambda api: kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status_patch: Mapping[str, Any],
        *,
        uid: str | None = None,
        status: Mapping[str, Any] | None = None,
    ) -> bool:
        """Patch the status subresource; False when the object is gone (nothing to report on).

        Without `uid`: a merge patch of the changed keys. With `uid` (and the whole new `status`): a JSON
        patch whose first operation tests `/metadata/uid`, so it applies only to that incarnation of the
        object (design.md §5.7) and a reconcile of a deleted policy can never write onto a re-created one of
        the same name. (A merge patch cannot do this: the status subresource ignores metadata in it.) The
        refusal (422, or 409) is reported as ObjectReplaced."""
        import kubernetes.client  # noqa: PLC0415

        body: Any = {"status": dict(status_patch)}
        content_type = MERGE_PATCH
        if uid:
            whole = dict(status if status is not None else status_patch)
            body = [
                {"op": "test", "path": "/metadata/uid", "value": uid},
                {"op": "add", "path": "/status", "value": {k: v for k, v in whole.items() if v is not None}},
            ]
            content_type = JSON_PATCH
        try:
            await self._call(
                f"{plural} {namespace}/{name} status",
                lambda api: kubernetes.client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    name,
                    body,
                    _content_type=content_type,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except KubeApiError as exc:
            if exc.status == NOT_FOUND:
                return False
            if uid and exc.status in (CONFLICT, UNPROCESSABLE):
                raise ObjectReplaced(
                    f"{plural} {namespace}/{name} is no longer the object with uid {uid}"
                ) from None
            raise
        return True

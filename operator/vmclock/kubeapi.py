"""The Kubernetes API calls the operator makes outside kopf, async and cancellable (design.md §5.10, §5.13).

Why `kubernetes.aio` (shipped by the `kubernetes` package) and not the synchronous client in threads: a
reconcile has one deadline, and cancelling it must cancel its Kubernetes calls too. A call running in a thread
cannot be cancelled; it lands whenever it lands, which is how an old progress status once landed after the
final one. Here every call is a coroutine on the event loop, bounded by `REQUEST_TIMEOUT` and by whatever
deadline its caller runs under.

Answers are typed, because they call for different reactions:
- `Gone` (404 on a write or precondition: the object or incarnation is no more): forget the work;
- `Stale` (409, or a failed resourceVersion precondition): re-read and go again, at once;
- `Rejected` (400, 422 with causes: schema, CEL or admission refused what we sent): a bug or an attack; say so
  in a condition and a Warning Event and back off, never spin;
- `Forbidden` (403): RBAC does not let the operator do this here (a namespace that has not opted in).
Reads answer None for 404. Texts carry only the HTTP status and reason, never a response body (a Secret's).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vmclock.engine.spec import GROUP, VERSION

NOT_FOUND = 404
CONFLICT = 409
FORBIDDEN = 403
BAD_REQUEST = 400
UNPROCESSABLE = 422
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
REQUEST_TIMEOUT = 30.0
POOL_SIZE = 64


class KubeApiError(Exception):
    def __init__(self, status: int | None, reason: str, what: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"Kubernetes API {status or 'error'} ({reason}) for {what}")


class Gone(KubeApiError):
    """The object (or the incarnation a write was pinned to by uid) no longer exists."""


class Stale(KubeApiError):
    """409, or a resourceVersion precondition failed: what was read changed since; read again. `current`:
    the object as read right after, when the call had to read it anyway (a guarded status write does)."""

    def __init__(
        self, status: int | None, reason: str, what: str, *, current: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(status, reason, what)
        self.current = current


class Rejected(KubeApiError):
    """The API server refused the content (400, 422 Invalid: schema, CEL, admission)."""


class Forbidden(KubeApiError):
    """403: the operator's RBAC does not allow this call (here)."""


ObjectConflict = Stale  # the name callers of ConfigMap writes know it by


class NoKubeConfig(Exception):
    """Neither the pod's service account nor a kubeconfig (KUBECONFIG, ~/.kube/config) is there."""


@dataclass(frozen=True)
class KubeObject:
    """A Secret's or ConfigMap's data (values as bytes) plus the resourceVersion to notice changes."""

    resource_version: str
    data: Mapping[str, bytes] = field(repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    """What a guarded status write left stored: the resourceVersion the next write must test for."""

    resource_version: str


def _typed(status: int, reason: str, what: str, body: Any) -> KubeApiError:
    if status == NOT_FOUND:
        return Gone(status, reason, what)
    if status == CONFLICT:
        return Stale(status, reason, what)
    if status == FORBIDDEN:
        return Forbidden(status, reason, what)
    if status == BAD_REQUEST or (status == UNPROCESSABLE and _has_causes(body)):
        return Rejected(status, reason, what)
    if status == UNPROCESSABLE:
        # A failed JSON-patch `test` (uid or resourceVersion) is a 422 without causes: the caller re-reads
        # to tell which one (Gone or Stale).
        return Stale(status, "precondition failed", what)
    return KubeApiError(status, reason, what)


def _has_causes(body: Any) -> bool:
    details = body.get("details") if isinstance(body, dict) else None
    return bool(isinstance(details, dict) and details.get("causes"))


class KubeApi:
    def __init__(self) -> None:
        self._api: Any = None
        self._lock = asyncio.Lock()

    async def _client(self) -> Any:
        async with self._lock:
            if self._api is None:
                from kubernetes.aio import client, config  # noqa: PLC0415 - off the CLI's --help path

                configuration = client.Configuration()
                try:
                    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                except config.ConfigException:
                    try:
                        await config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                    except config.ConfigException as missing:
                        raise NoKubeConfig(str(missing)) from None
                configuration.connection_pool_maxsize = POOL_SIZE
                # The client's session trusts the environment by default, and aiohttp then looks up
                # ~/.netrc in a thread for every request: a thread hop per status write, and credentials
                # from a file could meet the API server. Like kopf's own session, no proxy or netrc.
                configuration.client_session_kwargs = {"trust_env": False}
                self._api = client.ApiClient(configuration=configuration)
            return self._api

    async def close(self) -> None:
        if self._api is not None:
            api, self._api = self._api, None
            await api.close()

    async def _exchange(
        self, what: str, call: Callable[[Any], Awaitable[Any]], *, absent_ok: bool = False
    ) -> dict[str, Any] | None:
        """Send one request, read its JSON answer and release the connection, whatever happens (a
        cancelled reconcile included). Errors are typed; 404 is None when `absent_ok`."""
        api = await self._client()
        response = await call(api)
        try:
            raw = await response.read()
            status, reason = int(response.status), str(response.reason or "")
        finally:
            response.release()
        body = _json(raw)
        if 200 <= status < 300:
            return body if isinstance(body, dict) else {}
        if status == NOT_FOUND and absent_ok:
            return None
        raise _typed(status, reason, what, body)

    async def _get_core(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A whole Secret or ConfigMap as the API server returns it, or None when there is none."""
        plural = "secrets" if kind == "Secret" else "configmaps"
        return await self._exchange(
            f"{kind} {namespace}/{name}",
            lambda api: _core(api, "GET", namespace, plural, name),
            absent_ok=True,
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
        """Create; Stale (409) when one of that name exists already."""
        name = str(body["metadata"]["name"])
        payload = _model("V1ConfigMap", body)
        return await self._written(
            f"ConfigMap {namespace}/{name}",
            lambda api: _core(api, "POST", namespace, "configmaps", body=payload),
        )

    async def replace_config_map(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace; `body`'s metadata.resourceVersion makes it Stale if the object changed since."""
        payload = _model("V1ConfigMap", body)
        return await self._written(
            f"ConfigMap {namespace}/{name}",
            lambda api: _core(api, "PUT", namespace, "configmaps", name, body=payload),
        )

    async def delete_config_map(self, namespace: str, name: str, *, uid: str, resource_version: str) -> bool:
        """Delete exactly the ConfigMap that was read (uid and resourceVersion preconditions): False when it
        is gone already, Stale when it was replaced or changed in between."""
        options = _model(
            "V1DeleteOptions", {"preconditions": {"uid": uid, "resourceVersion": resource_version}}
        )
        found = await self._exchange(
            f"ConfigMap {namespace}/{name}",
            lambda api: _core(api, "DELETE", namespace, "configmaps", name, body=options),
            absent_ok=True,
        )
        return found is not None

    async def _written(self, what: str, call: Callable[[Any], Awaitable[Any]]) -> dict[str, Any]:
        body = await self._exchange(what, call)
        assert body is not None  # absent_ok is off: a 404 raised Gone
        return body

    async def read_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of our custom objects (a VmClockPolicy or ZStackConnection), fresh from the API server."""
        return await self._exchange(
            f"{plural} {namespace}/{name}",
            lambda api: _custom(api).get_namespaced_custom_object_without_preload_content(
                GROUP, VERSION, namespace, plural, name, _request_timeout=REQUEST_TIMEOUT
            ),
            absent_ok=True,
        )

    async def list_objects(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        """Every object of one of our kinds, in all namespaces (`namespace` None) or in one (for `vmclock
        plan`: the operator itself learns of objects from kopf's watches)."""

        def call(api: Any) -> Any:
            objects = _custom(api)
            if namespace is None:
                return objects.list_cluster_custom_object_without_preload_content(
                    GROUP, VERSION, plural, _request_timeout=REQUEST_TIMEOUT
                )
            return objects.list_namespaced_custom_object_without_preload_content(
                GROUP, VERSION, namespace, plural, _request_timeout=REQUEST_TIMEOUT
            )

        body = await self._exchange(f"{plural} in {namespace or 'all namespaces'}", call)
        return list((body or {}).get("items") or [])

    async def write_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        uid: str,
        resource_version: str,
    ) -> Written:
        """Replace the whole status of exactly one incarnation (`uid`) as it was last seen
        (`resource_version`): a JSON patch whose first operations test both (design.md §5.7, §5.10).

        So a write that was overtaken — a cancelled progress PATCH still on the wire, a reconcile of a
        deleted object — fails instead of landing over something newer. A merge patch cannot do this (the
        status subresource ignores metadata in it). A failed test answers 422 without causes; re-reading
        tells whether the incarnation is gone (Gone) or only changed (Stale, carrying what it read)."""
        operations = [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/status", "value": {k: v for k, v in status.items() if v is not None}},
        ]
        what = f"{plural} {namespace}/{name} status"
        try:
            written = await self._patch_status(plural, namespace, name, operations, JSON_PATCH)
            assert written is not None  # absent: Gone was raised
        except Stale as stale:
            current = await self.read_object(plural, namespace, name)
            if current is None or (current.get("metadata") or {}).get("uid") != uid:
                raise Gone(NOT_FOUND, "replaced", what) from None
            raise Stale(stale.status, stale.reason, what, current=current) from None
        return Written(str((written.get("metadata") or {}).get("resourceVersion") or ""))

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
        """A merge patch of the changed status keys (connections); False when the object is gone. With
        `uid` (and the whole new `status`) it applies only to that incarnation: a JSON patch testing it."""
        body: Any = {"status": dict(status_patch)}
        content_type = MERGE_PATCH
        if uid:
            whole = dict(status if status is not None else status_patch)
            body = [
                {"op": "test", "path": "/metadata/uid", "value": uid},
                {"op": "add", "path": "/status", "value": {k: v for k, v in whole.items() if v is not None}},
            ]
            content_type = JSON_PATCH
        found = await self._patch_status(plural, namespace, name, body, content_type, absent_ok=True)
        return found is not None

    async def _patch_status(
        self, plural: str, namespace: str, name: str, body: Any, content_type: str, *, absent_ok: bool = False
    ) -> dict[str, Any] | None:
        return await self._exchange(
            f"{plural} {namespace}/{name} status",
            lambda api: _custom(api).patch_namespaced_custom_object_status_without_preload_content(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                body,
                _content_type=content_type,
                _request_timeout=REQUEST_TIMEOUT,
            ),
            absent_ok=absent_ok,
        )


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _model(kind: str, body: Mapping[str, Any]) -> Any:
    """The generated client validates bodies as its models (from the API's camelCase field names)."""
    from kubernetes.aio import client  # noqa: PLC0415

    return getattr(client, kind).from_dict(dict(body))


async def _core(
    api: Any, method: str, namespace: str, plural: str, name: str = "", *, body: Any = None
) -> Any:
    """One call of the core (v1) API, made as the generated `CoreV1Api` makes it, without importing that
    6 MB module: on a loaded machine about a second on the event loop (and 24 MiB) at the first Secret
    read, which every start waits for (the connection check reads the credentials Secret)."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    path = "/api/v1/namespaces/{namespace}/" + plural + ("/{name}" if name else "")
    request = await api.param_serialize(
        method,
        path,
        path_params={"namespace": namespace, "name": name} if name else {"namespace": namespace},
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    sent = await api.call_api(*request, _request_timeout=REQUEST_TIMEOUT, _preload_content=False)
    return sent.response


def _custom(api: Any) -> Any:
    from kubernetes.aio.client import CustomObjectsApi  # noqa: PLC0415

    return CustomObjectsApi(api)

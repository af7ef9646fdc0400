"""How a plan reaches ZStack: through the cluster's ZStackConnection exactly as the operator does, or through
an endpoint and credentials the user holds.

From the cluster, the operator's own `ConnectionManager` builds the client: the same Secret keys, the same
allowed-endpoints annotation check, the same TLS settings and the same ready -> version -> login ladder, so
a plan is refused exactly where the operator would be (and says why with the operator's message).

Directly, the endpoint is a flag and the credentials come from environment variables or a file, never from
a flag value (command lines end up in shell history and process listings). A file may be the Kubernetes
Secret manifest itself, whose allowed-endpoints annotation is then honoured as in the cluster; plain keys
in a file or the environment are the user's own choice of endpoint. The operator-wide rules
(`--allowed-endpoint`, `--allow-insecure-endpoints`) apply to both.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from vmclock.connections.leased import LeasedClient
from vmclock.connections.manager import ConnectionManager
from vmclock.connections.problems import ConnectionProblem
from vmclock.connections.secrets import credentials_from_secret
from vmclock.connections.trust import ALLOWED_ENDPOINTS_ANNOTATION, EndpointPolicy, endpoint_destination
from vmclock.engine import ConnectionUnavailable
from vmclock.engine.spec import CONNECTION_PLURAL
from vmclock.kubeapi import KubeApi, KubeObject
from vmclock.refs import Ref
from vmclock.zstack import ClientOptions, Credentials, ZStackClient, ZStackError

# Environment variables for direct credentials, named after the Secret keys they stand for.
ENVIRONMENT = {
    "ZSTACK_ACCOUNT_NAME": "accountName",
    "ZSTACK_PASSWORD": "password",
    "ZSTACK_ACCESS_KEY_ID": "accessKeyId",
    "ZSTACK_ACCESS_KEY_SECRET": "accessKeySecret",
}
DIRECT = Ref("", "direct")  # how messages name credentials that come from no Secret in the cluster


class AccessError(Exception):
    """ZStack cannot be reached for this plan; the message says why and names no secret."""


@asynccontextmanager
async def cluster_clients(
    kube: KubeApi, endpoints: EndpointPolicy, connections: Iterable[Ref]
) -> AsyncIterator[dict[Ref, LeasedClient]]:
    """A ready client per ZStackConnection, leased from the operator's connection manager."""
    manager = ConnectionManager(kube, endpoints=endpoints)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(manager.close_all)
        clients: dict[Ref, LeasedClient] = {}
        for ref in sorted(set(connections)):
            body = await kube.read_object(CONNECTION_PLURAL, ref.namespace, ref.name)
            deleting = body is not None and (body.get("metadata") or {}).get("deletionTimestamp")
            spec = None if body is None or deleting else body.get("spec") or {}
            try:
                clients[ref] = await stack.enter_async_context(manager.lease(ref.namespace, ref.name, spec))
            except ConnectionUnavailable as problem:
                raise AccessError(f"{problem.reason}: {problem}") from None
        yield clients


@dataclass(frozen=True)
class _Keys:
    """Credential keys as a Secret would hold them, and the annotations that govern where they may go."""

    data: Mapping[str, bytes]
    annotations: Mapping[str, str] | None  # None: not a Secret; the user chose the endpoint
    where: str
    secret: Ref = DIRECT  # the Secret manifest's namespace/name, for the operator's messages


def _from_file(path: Path) -> _Keys:
    where = f"--credentials-file {path}"
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise AccessError(f"{where}: cannot read it as YAML or JSON ({type(error).__name__})") from None
    if not isinstance(document, Mapping):
        raise AccessError(f"{where}: expected a mapping of keys or a Kubernetes Secret manifest")
    if document.get("kind") != "Secret":
        return _Keys({str(k): str(v).encode() for k, v in document.items()}, None, where)
    data = {str(k): str(v).encode() for k, v in (document.get("stringData") or {}).items()}
    try:
        data |= {
            str(k): base64.b64decode(str(v), validate=True) for k, v in (document.get("data") or {}).items()
        }
    except binascii.Error:
        raise AccessError(f"{where}: a value under data is not base64") from None
    meta = document.get("metadata") or {}
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    return _Keys(
        data, annotations, where, Ref(str(meta.get("namespace") or "default"), str(meta.get("name")))
    )


def _from_environment(environ: Mapping[str, str]) -> _Keys:
    data = {key: environ[variable].encode() for variable, key in ENVIRONMENT.items() if environ.get(variable)}
    return _Keys(data, None, f"environment variables ({', '.join(ENVIRONMENT)})")


def direct_credentials(
    endpoint: str,
    endpoints: EndpointPolicy,
    credentials_file: Path | None,
    environ: Mapping[str, str],
    *,
    context_path: str,
) -> Credentials:
    """Credentials for `endpoint` from the file or else the environment, once the endpoint rules pass
    (credentials that come from no Secret go where the user sends them: the destination they named)."""
    keys = _from_file(credentials_file) if credentials_file is not None else _from_environment(environ)
    annotations = keys.annotations
    if annotations is None:
        try:
            annotations = {ALLOWED_ENDPOINTS_ANNOTATION: str(endpoint_destination(endpoint, context_path))}
        except ValueError as error:
            raise AccessError(f"--endpoint {error}") from None
    try:
        endpoints.check(
            endpoint,
            context_path=context_path,
            insecure_skip_verify=False,
            secret_annotations=annotations,
            secret_ref=keys.secret,
        )
        return credentials_from_secret(KubeObject("", keys.data, annotations), keys.where)
    except ConnectionProblem as problem:
        raise AccessError(f"{problem.reason}: {problem}") from None


async def verify(client: ZStackClient) -> None:
    """Log in before planning: a refused login is the plan's error, not an unreadable track on every VM."""
    try:
        await client.get_version()
        await client.login()
    except ZStackError as error:
        raise AccessError(f"{client.endpoint.origin}: {error}") from None


def direct_client(
    endpoint: str, credentials: Credentials, *, context_path: str, ca_file: Path | None
) -> ZStackClient:
    tls: ssl.SSLContext | None = None
    try:
        if ca_file is not None:
            tls = ssl.create_default_context(cafile=str(ca_file))
        return ZStackClient(endpoint, credentials, ClientOptions(context_path=context_path, ssl=tls))
    except (OSError, ssl.SSLError) as error:
        raise AccessError(
            f"--ca-file {ca_file}: not a readable PEM CA bundle ({type(error).__name__})"
        ) from None
    except ValueError as error:
        raise AccessError(f"--endpoint: {error}") from None

"""Turn the referenced Secret (and optional CA bundle) into client credentials and a TLS setting.

Only same-namespace objects are read: the CRD has no namespace field, so a tenant can only use credentials
of its own namespace. A Secret must hold exactly one complete key pair; a half-filled pair is reported
naming the missing key, so the fix is obvious without showing any value.
"""

from __future__ import annotations

import ssl
from typing import Literal, Protocol

from vmclock.connections.problems import INVALID_SECRET, SECRET_NOT_FOUND, ConnectionProblem
from vmclock.connections.spec import ConnectionSpec
from vmclock.connections.trust import EndpointPolicy
from vmclock.kubeapi import KubeObject
from vmclock.refs import Ref
from vmclock.zstack.credentials import AccessKeyCredentials, AccountCredentials, Credentials

PAIRS = (("accountName", "password"), ("accessKeyId", "accessKeySecret"))


class ObjectReader(Protocol):
    async def read_secret(self, namespace: str, name: str) -> KubeObject | None: ...

    async def read_config_map(self, namespace: str, name: str) -> KubeObject | None: ...


def _text(secret: KubeObject, key: str, where: str) -> str:
    try:
        value = secret.data[key].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConnectionProblem(INVALID_SECRET, f"{where} key {key!r} is not UTF-8 text") from None
    if not value:
        raise ConnectionProblem(INVALID_SECRET, f"{where} key {key!r} is empty")
    return value


def credentials_from_secret(secret: KubeObject, where: str) -> Credentials:
    present = [pair for pair in PAIRS if any(k in secret.data for k in pair)]
    if not present:
        raise ConnectionProblem(
            INVALID_SECRET, f"{where} has neither keys accountName+password nor accessKeyId+accessKeySecret"
        )
    if len(present) > 1:
        raise ConnectionProblem(
            INVALID_SECRET,
            f"{where} mixes account and AccessKey keys; keep one pair so the choice is explicit",
        )
    first, second = present[0]
    for key in (first, second):
        if key not in secret.data:
            raise ConnectionProblem(INVALID_SECRET, f"{where} is missing key {key!r}")
    if first == "accountName":
        return AccountCredentials(_text(secret, first, where), _text(secret, second, where))
    return AccessKeyCredentials(_text(secret, first, where), _text(secret, second, where))


async def load_credentials(
    reader: ObjectReader, namespace: str, spec: ConnectionSpec, endpoints: EndpointPolicy
) -> tuple[Credentials, str]:
    """Credentials and the Secret's resourceVersion (a change rebuilds the client), once `endpoints` and the
    Secret's own allowed-endpoints annotation agree that they may go to the connection's endpoint."""
    where = f"Secret {namespace}/{spec.secret_name} (spec.credentialsSecretRef)"
    secret = await reader.read_secret(namespace, spec.secret_name)
    if secret is None:
        raise ConnectionProblem(SECRET_NOT_FOUND, f"{where} not found")
    endpoints.check(
        spec.endpoint,
        insecure_skip_verify=spec.insecure_skip_verify,
        secret_annotations=secret.annotations,
        secret_ref=Ref(namespace, spec.secret_name),
    )
    return credentials_from_secret(secret, where), secret.resource_version


async def load_tls(
    reader: ObjectReader, namespace: str, spec: ConnectionSpec
) -> tuple[ssl.SSLContext | Literal[False] | None, str]:
    """The client's `ssl` option and the CA object's resourceVersion ("" when there is none)."""
    if spec.insecure_skip_verify:
        return False, ""
    ref = spec.ca_bundle
    if ref is None:
        return None, ""
    where = f"{ref.kind} {namespace}/{ref.name} (spec.tls.caBundleRef)"
    source = (
        await reader.read_config_map(namespace, ref.name)
        if ref.kind == "ConfigMap"
        else await reader.read_secret(namespace, ref.name)
    )
    if source is None:
        raise ConnectionProblem(SECRET_NOT_FOUND, f"{where} not found")
    if ref.key not in source.data:
        raise ConnectionProblem(INVALID_SECRET, f"{where} is missing key {ref.key!r}")
    try:
        context = ssl.create_default_context(cadata=source.data[ref.key].decode("ascii"))
    except (ssl.SSLError, ValueError, UnicodeDecodeError):
        raise ConnectionProblem(INVALID_SECRET, f"{where} key {ref.key!r} is not a PEM CA bundle") from None
    return context, source.resource_version

"""Turn the referenced Secret (and optional CA bundle) into client credentials and a TLS setting.

Only same-namespace objects are read: the CRD has no namespace field, so a tenant can only use credentials
of its own namespace. The CA that verifies the endpoint is the one the credentials Secret chooses
(design.md §6.7), and no other object is read before the Secret has allowed the endpoint. A Secret must
hold exactly one complete key pair; a half-filled pair is reported naming the missing key, so the fix is
obvious without showing any value.
"""

from __future__ import annotations

import re
import ssl
from typing import Literal, Protocol

from vmclock.connections.problems import (
    ENDPOINT_NOT_ALLOWED,
    INVALID_SECRET,
    SECRET_NOT_FOUND,
    ConnectionProblem,
)
from vmclock.connections.spec import DEFAULT_CA_KEY, CaBundleRef, ConnectionSpec
from vmclock.connections.trust import EndpointPolicy
from vmclock.kubeapi import KubeObject
from vmclock.refs import Ref
from vmclock.zstack.credentials import AccessKeyCredentials, AccountCredentials, Credentials

PAIRS = (("accountName", "password"), ("accessKeyId", "accessKeySecret"))
CA_BUNDLE_ANNOTATION = "vmclock.zstack.io/ca-bundle"
_OBJECT_NAME = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
_CA_NAME = re.compile(rf"^(Secret|ConfigMap)/({_OBJECT_NAME})(?:/([-._a-zA-Z0-9]+))?$")


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


def _owners_ca(secret: KubeObject, secret_ref: Ref) -> CaBundleRef | None:
    """The CA the Secret's owner chose: key `ca.crt` of the Secret itself, or the object its annotation
    names; None: the system trust store."""
    namespace, name = secret_ref
    named = secret.annotations.get(CA_BUNDLE_ANNOTATION)
    if named is not None and DEFAULT_CA_KEY in secret.data:
        raise ConnectionProblem(
            INVALID_SECRET,
            f"Secret {namespace}/{name} (spec.credentialsSecretRef) names two CAs, key {DEFAULT_CA_KEY!r} "
            f"and annotation {CA_BUNDLE_ANNOTATION}; keep one",
        )
    if named is None:
        return CaBundleRef("Secret", name, DEFAULT_CA_KEY) if DEFAULT_CA_KEY in secret.data else None
    match = _CA_NAME.match(named.strip())
    if match is None:
        raise ConnectionProblem(
            INVALID_SECRET,
            f"Secret {namespace}/{name} (spec.credentialsSecretRef): annotation {CA_BUNDLE_ANNOTATION} must "
            f"be ConfigMap/<name>[/<key>] or Secret/<name>[/<key>] (key default {DEFAULT_CA_KEY})",
        )
    kind, ca_name, key = match.groups()
    return CaBundleRef(kind, ca_name, key or DEFAULT_CA_KEY)


def _chosen_ca(secret: KubeObject, secret_ref: Ref, spec: ConnectionSpec) -> CaBundleRef | None:
    """The owner's CA (design.md §6.7); the connection's own TLS fields may only agree with it, since
    whoever picks the CA picks who receives the credentials (and could make any object of the namespace
    answer whether it exists and holds a given key)."""
    chosen = _owners_ca(secret, secret_ref)
    namespace, name = secret_ref
    if spec.ca_bundle is not None and spec.ca_bundle != chosen:
        raise ConnectionProblem(
            ENDPOINT_NOT_ALLOWED,
            f"spec.tls.caBundleRef is not the CA that Secret {namespace}/{name} (spec.credentialsSecretRef) "
            f"chooses; remove it (the Secret's owner chooses the CA: key {DEFAULT_CA_KEY!r} in the Secret, "
            f"or annotation {CA_BUNDLE_ANNOTATION}: ConfigMap/<name>[/<key>])",
        )
    if spec.insecure_skip_verify and chosen is not None:
        raise ConnectionProblem(
            ENDPOINT_NOT_ALLOWED,
            f"spec.tls.insecureSkipVerify would bypass the CA that Secret {namespace}/{name} "
            "(spec.credentialsSecretRef) chooses; remove it",
        )
    return chosen


async def load_credentials(
    reader: ObjectReader, namespace: str, spec: ConnectionSpec, endpoints: EndpointPolicy
) -> tuple[Credentials, KubeObject]:
    """Credentials and the Secret they came from, once `endpoints` and the Secret's own allowed-endpoints
    annotation agree that they may go to the connection's endpoint."""
    secret = await reader.read_secret(namespace, spec.secret_name)
    endpoints.check(
        spec.endpoint,
        context_path=spec.context_path,
        insecure_skip_verify=spec.insecure_skip_verify,
        secret_annotations=None if secret is None else secret.annotations,
        secret_ref=Ref(namespace, spec.secret_name),
    )
    assert secret is not None  # check() refuses a missing Secret
    where = f"Secret {namespace}/{spec.secret_name} (spec.credentialsSecretRef)"
    return credentials_from_secret(secret, where), secret


async def load_tls(
    reader: ObjectReader, namespace: str, spec: ConnectionSpec, secret: KubeObject
) -> tuple[ssl.SSLContext | Literal[False] | None, str]:
    """The client's `ssl` option from the CA `secret` (the credentials Secret, already allowed) chooses,
    and the CA object's resourceVersion ("" when there is none)."""
    ref = _chosen_ca(secret, Ref(namespace, spec.secret_name), spec)
    if ref is None:
        return (False if spec.insecure_skip_verify else None), ""
    where = f"{ref.kind} {namespace}/{ref.name} (the CA Secret {namespace}/{spec.secret_name} chooses)"
    if ref.kind == "Secret" and ref.name == spec.secret_name:
        source: KubeObject | None = secret
    elif ref.kind == "ConfigMap":
        source = await reader.read_config_map(namespace, ref.name)
    else:
        source = await reader.read_secret(namespace, ref.name)
    if source is None:
        raise ConnectionProblem(SECRET_NOT_FOUND, f"{where} not found")
    if ref.key not in source.data:
        raise ConnectionProblem(INVALID_SECRET, f"{where} is missing key {ref.key!r}")
    try:
        context = ssl.create_default_context(cadata=source.data[ref.key].decode("ascii"))
    except (ssl.SSLError, ValueError, UnicodeDecodeError):
        raise ConnectionProblem(INVALID_SECRET, f"{where} key {ref.key!r} is not a PEM CA bundle") from None
    return context, source.resource_version

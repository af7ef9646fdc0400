"""Where a connection's credentials may be sent: the endpoint binding rules of design.md §6.1.

Being able to edit a ZStackConnection must not be as good as reading the Secret it names, because the
operator sends what the Secret holds (a password hash ZStack accepts, or replayable AccessKey signatures) to
whatever `spec.endpoint` says. So, before any request, three independent gates must all pass:

1. the operator's own opt-in to plain `http://` and to `spec.tls.insecureSkipVerify`
   (`vmclock run --allow-insecure-endpoints`), reason `InsecureEndpoint`;
2. the operator's host allow-list (`vmclock run --allowed-endpoint`, host globs or CIDRs), when one is
   given, reason `EndpointNotAllowed`;
3. the Secret's owner's list of base URLs (annotation `vmclock.zstack.io/allowed-endpoints`), the way Argo CD
   repository credentials carry their URL, reason `EndpointNotAllowed` with the exact command to allow it.

Everything here is pure (no I/O, no DNS): the caller passes what it read from the API server.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from vmclock.connections.problems import ENDPOINT_NOT_ALLOWED, INSECURE_ENDPOINT, ConnectionProblem
from vmclock.refs import Ref

ALLOWED_ENDPOINTS_ANNOTATION = "vmclock.zstack.io/allowed-endpoints"
DEFAULT_PORTS = {"https": 443, "http": 80}
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# A host glob: DNS labels with `*` and `?`; anything else (a URL, a port, a path) is a mistake to report.
_GLOB_TEXT = re.compile(r"^[a-z0-9*?]([a-z0-9*?-]*[a-z0-9*?])?(\.[a-z0-9*?]([a-z0-9*?-]*[a-z0-9*?])?)*$")


def _ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _numeric_name(host: str) -> bool:
    """`10.1`, `167772161`, `0x0a.0.0.1`: not IP literals to `ipaddress`, yet the C resolver reads them as
    IPv4 addresses (inet_aton). No real DNS name ends in such a label, so no host glob may match one."""
    last = host.rsplit(".", 1)[-1]
    return last.isdigit() or last.startswith("0x")


def _looks_like_an_address(text: str) -> bool:
    """`10.0.0.1/33`, `10.0.0.256`, `fd00::/200`: meant as an IP or CIDR, so report it as a bad one."""
    address = text.split("/", 1)[0]
    return (
        bool(address)
        and set(address) <= set("0123456789abcdef.:")
        and (":" in address or ("." in address and _numeric_name(address)))
    )


@dataclass(frozen=True)
class Origin:
    """`scheme://host:port`, normalized: lower-case scheme and host, default port explicit, IPs compressed."""

    scheme: str
    host: str  # without IPv6 brackets
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _origin(parts: SplitResult) -> Origin:
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError("is not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")  # the URL is never echoed: its user-info is secret
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    scheme = parts.scheme.lower()
    host = parts.hostname.rstrip(".")  # urlsplit lower-cases it and drops IPv6 brackets
    address = _ip_literal(host)
    return Origin(scheme, address.compressed if address else host, port or DEFAULT_PORTS[scheme])


def endpoint_origin(endpoint: str) -> Origin:
    """The origin requests to `spec.endpoint` go to (its path is ZStack's context path, not part of it)."""
    parts = urlsplit(endpoint.strip())
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return _origin(parts)


def base_url_origin(entry: str) -> Origin:
    """An annotation entry: a base URL `scheme://host[:port]` with no path (a trailing `/` is tolerated)."""
    parts = urlsplit(entry.strip())
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("is not a base URL scheme://host[:port]")
    return _origin(parts)


@dataclass(frozen=True)
class HostPattern:
    """One `--allowed-endpoint` value: a host glob (`*.zstack.example`) or a CIDR (`10.0.0.0/8`, or one IP).

    A CIDR matches only an endpoint whose host is an IP literal, and a glob only a host name. Names are
    never resolved here, on purpose: the addresses a lookup returns now need not be the ones the client
    connects to later (DNS rebinding: a tenant controls both its endpoint and, often, its DNS records), a
    blocking lookup would stall the event loop, and the verdict would change with resolver caches. An admin
    who allows a network therefore allows endpoints written as addresses in it; names need a glob.
    In a glob `*` and `?` stay within one DNS label, as in TLS wildcard certificates: `*.zstack.example`
    matches `mn1.zstack.example`, not `a.b.zstack.example` nor `zstack.example.evil`.
    """

    text: str
    network: IpNetwork | None = None
    glob: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, value: str) -> HostPattern:
        text = value.strip().lower()
        try:
            return cls(text, network=ipaddress.ip_network(text, strict=True))
        except ValueError as error:
            if _looks_like_an_address(text):
                raise ValueError(f"{value!r} is not a valid IP address or CIDR: {error}") from None
        if not _GLOB_TEXT.match(text):
            raise ValueError(
                f"{value!r} is neither a host glob (like *.zstack.example) nor a CIDR (like 10.0.0.0/8)"
            )
        label = re.escape(text).replace(r"\*", "[^.]*").replace(r"\?", "[^.]")
        return cls(text, glob=re.compile(label + r"\Z"))

    def matches(self, host: str) -> bool:
        address = _ip_literal(host)
        if self.network is not None:
            return address is not None and address in self.network
        assert self.glob is not None  # parse() sets exactly one of the two
        return address is None and not _numeric_name(host) and self.glob.match(host) is not None


def _annotation_command(secret_ref: Ref, value: str) -> str:
    namespace, name = secret_ref
    assignment = shlex.quote(f"{ALLOWED_ENDPOINTS_ANNOTATION}={value}")
    return f"kubectl annotate secret {name} -n {namespace} {assignment} --overwrite"


@dataclass(frozen=True)
class EndpointPolicy:
    """The operator-wide endpoint rules (`vmclock run` flags); the default allows any https endpoint that
    its Secret allows, and nothing insecure."""

    allowed_hosts: tuple[HostPattern, ...] = ()  # empty: the operator does not restrict hosts
    allow_insecure: bool = False

    def check(
        self,
        endpoint: str,
        *,
        insecure_skip_verify: bool,
        secret_annotations: Mapping[str, str],
        secret_ref: Ref,
    ) -> None:
        """Raise `ConnectionProblem` unless credentials of Secret `secret_ref` (namespace, name) may be sent
        to `endpoint`. Messages carry URLs and names only, never anything read from the Secret's data."""
        try:
            origin = endpoint_origin(endpoint)
        except ValueError as error:
            raise ConnectionProblem(ENDPOINT_NOT_ALLOWED, f"spec.endpoint {error}") from None
        self._check_transport(origin, insecure_skip_verify=insecure_skip_verify)
        if self.allowed_hosts and not any(pattern.matches(origin.host) for pattern in self.allowed_hosts):
            allowed = ", ".join(pattern.text for pattern in self.allowed_hosts)
            raise ConnectionProblem(
                ENDPOINT_NOT_ALLOWED,
                f"endpoint {origin} is outside the operator's --allowed-endpoint list ({allowed}); "
                "ask a cluster admin",
            )
        _check_secret_allows(origin, secret_annotations, secret_ref)

    def _check_transport(self, origin: Origin, *, insecure_skip_verify: bool) -> None:
        if self.allow_insecure:
            return
        if origin.scheme != "https":
            raise ConnectionProblem(
                INSECURE_ENDPOINT,
                f"endpoint {origin} is plain http://, which would send credentials unencrypted; use "
                "https:// (the operator allows http:// only with --allow-insecure-endpoints)",
            )
        if insecure_skip_verify:
            raise ConnectionProblem(
                INSECURE_ENDPOINT,
                "spec.tls.insecureSkipVerify is true, so anyone on the path could receive the credentials; "
                "use spec.tls.caBundleRef (the operator allows it only with --allow-insecure-endpoints)",
            )


def _check_secret_allows(origin: Origin, annotations: Mapping[str, str], secret_ref: Ref) -> None:
    listed: list[Origin] = []
    ignored = 0
    for entry in annotations.get(ALLOWED_ENDPOINTS_ANNOTATION, "").split(","):
        if entry.strip():
            try:
                listed.append(base_url_origin(entry))
            except ValueError:
                ignored += 1
    if origin in listed:
        return
    namespace, name = secret_ref
    if ALLOWED_ENDPOINTS_ANNOTATION not in annotations:
        why = f"it has no annotation {ALLOWED_ENDPOINTS_ANNOTATION}"
    else:
        why = f"its annotation {ALLOWED_ENDPOINTS_ANNOTATION} does not list it"
    if ignored:
        why += f" ({ignored} entries are not base URLs scheme://host[:port] and never match)"
    # Keep what is already allowed: another connection may share this Secret.
    value = ",".join(dict.fromkeys(str(item) for item in [*listed, origin]))
    raise ConnectionProblem(
        ENDPOINT_NOT_ALLOWED,
        f"Secret {namespace}/{name} (spec.credentialsSecretRef) does not allow sending its credentials to "
        f"endpoint {origin}: {why}; the Secret's owner can allow it with: "
        f"{_annotation_command(secret_ref, value)}",
    )

"""Where a connection's credentials may be sent: the endpoint binding rules of design.md §6.1 and §6.7.

Being able to edit a ZStackConnection must not be as good as reading the Secret it names, because the
operator sends what the Secret holds (a password hash ZStack accepts, or replayable AccessKey signatures) to
whatever `spec.endpoint` says. So, before any request, three independent gates must all pass:

1. the operator's own opt-in to plain `http://` and to `spec.tls.insecureSkipVerify`
   (`vmclock run --allow-insecure-endpoints`), reason `InsecureEndpoint`;
2. the operator's host allow-list (`vmclock run --allowed-endpoint`, host globs or CIDRs), when one is
   given, reason `EndpointNotAllowed`;
3. the Secret's owner's list of destinations (annotation `vmclock.zstack.io/allowed-endpoints`), the way
   Argo CD repository credentials carry their URL, reason `EndpointNotAllowed`. A destination is scheme,
   host, port AND context path: another context path on the same origin may be another application. An
   entry without a path allows ZStack's default `/zstack` only.

What a connection editor reads back (its status) must not tell them more about a Secret than they could
already know: a missing Secret and one that does not allow the endpoint get the same reason and message,
and no message shows what a Secret does allow. Hosts are compared in the form the resolver will look up
(zstack/hostnames.py). Everything here is pure (no I/O, no DNS): the caller passes what it read.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from vmclock.connections.problems import ENDPOINT_NOT_ALLOWED, INSECURE_ENDPOINT, ConnectionProblem
from vmclock.connections.spec import DEFAULT_CONTEXT_PATH
from vmclock.refs import Ref
from vmclock.zstack.hostnames import numeric_name, resolver_host
from vmclock.zstack.options import context_path

log = logging.getLogger(__name__)

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


def _looks_like_an_address(text: str) -> bool:
    """`10.0.0.1/33`, `10.0.0.256`, `fd00::/200`: meant as an IP or CIDR, so report it as a bad one."""
    address = text.split("/", 1)[0]
    return (
        bool(address)
        and set(address) <= set("0123456789abcdef.:")
        and (":" in address or ("." in address and numeric_name(address)))
    )


@dataclass(frozen=True)
class Origin:
    """`scheme://host:port`, normalized: lower-case scheme, the host as the resolver looks it up (IPs
    compressed), default port explicit."""

    scheme: str
    host: str  # without IPv6 brackets
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class Destination:
    """Where requests go: an origin plus ZStack's servlet context path (without a trailing `/`)."""

    origin: Origin
    context_path: str

    def __str__(self) -> str:
        return f"{self.origin}{self.context_path}"


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
    return Origin(scheme, resolver_host(parts.hostname), port or DEFAULT_PORTS[scheme])


def _split(url: str) -> SplitResult:
    parts = urlsplit(url.strip())
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return parts


def endpoint_origin(endpoint: str) -> Origin:
    """The origin requests to `spec.endpoint` go to."""
    return _origin(_split(endpoint))


def endpoint_destination(endpoint: str, default_context_path: str) -> Destination:
    """Where requests to `spec.endpoint` go: a path in it replaces `spec.contextPath`, as in the client.
    ValueError names the field at fault."""
    try:
        parts = _split(endpoint)
        origin = _origin(parts)
    except ValueError as error:
        raise ValueError(f"spec.endpoint {error}") from None
    own_path = parts.path not in ("", "/")
    try:
        return Destination(origin, context_path(parts.path if own_path else default_context_path))
    except ValueError as error:
        raise ValueError(f"{'spec.endpoint' if own_path else 'spec.contextPath'}: {error}") from None


def allowed_destination(entry: str) -> Destination:
    """An annotation entry `scheme://host[:port][/context/path]`; without a path, ZStack's default
    `/zstack` only (the safe reading: the owner named no other application on that origin)."""
    return endpoint_destination(entry, DEFAULT_CONTEXT_PATH)


@dataclass(frozen=True)
class HostPattern:
    """One `--allowed-endpoint` value: a host glob (`*.zstack.example`) or a CIDR (`10.0.0.0/8`, or one IP).

    A CIDR matches only an endpoint whose host is an IP literal, and a glob only a host name. Names are
    never resolved here, on purpose: the addresses a lookup returns now need not be the ones the client
    connects to later (DNS rebinding: a tenant controls both its endpoint and, often, its DNS records), a
    blocking lookup would stall the event loop, and the verdict would change with resolver caches. An admin
    who allows a network therefore allows endpoints written as addresses in it; names need a glob.
    In a glob `*` and `?` stay within one DNS label, as in TLS wildcard certificates: `*.zstack.example`
    matches `mn1.zstack.example`, not `a.b.zstack.example` nor `zstack.example.evil`. Globs are matched
    against the resolver's ASCII form, where a label separator can only be `.`.
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
        """`host` as `resolver_host` returns it."""
        address = _ip_literal(host)
        if self.network is not None:
            return address is not None and address in self.network
        assert self.glob is not None  # parse() sets exactly one of the two
        return address is None and not numeric_name(host) and self.glob.match(host) is not None


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
        context_path: str,
        insecure_skip_verify: bool,
        secret_annotations: Mapping[str, str] | None,
        secret_ref: Ref,
    ) -> Destination:
        """The destination, or `ConnectionProblem` unless credentials of Secret `secret_ref` may be sent to
        `endpoint`. `secret_annotations` is None when the Secret does not exist. The operator's own rules
        are checked first, so whether the Secret exists shows in no answer but the last, which is the same
        either way. Messages carry URLs and names only, never anything read from the Secret."""
        try:
            destination = endpoint_destination(endpoint, context_path)
        except ValueError as error:
            raise ConnectionProblem(ENDPOINT_NOT_ALLOWED, str(error)) from None
        self._check_transport(destination.origin, insecure_skip_verify=insecure_skip_verify)
        host = destination.origin.host
        if self.allowed_hosts and not any(pattern.matches(host) for pattern in self.allowed_hosts):
            allowed = ", ".join(pattern.text for pattern in self.allowed_hosts)
            raise ConnectionProblem(
                ENDPOINT_NOT_ALLOWED,
                f"endpoint {destination.origin} is outside the operator's --allowed-endpoint list "
                f"({allowed}); ask a cluster admin",
            )
        _check_secret_allows(destination, secret_annotations, secret_ref)
        return destination

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
                "verify with a CA the Secret carries (the operator allows it only with "
                "--allow-insecure-endpoints)",
            )


def _listed(annotations: Mapping[str, str], secret_ref: Ref) -> set[Destination]:
    listed: set[Destination] = set()
    ignored = 0
    for entry in annotations.get(ALLOWED_ENDPOINTS_ANNOTATION, "").split(","):
        if entry.strip():
            try:
                listed.add(allowed_destination(entry))
            except ValueError:
                ignored += 1
    if ignored:  # for the admin's eyes: a connection editor must not learn what the Secret holds
        log.warning(
            "Secret %s/%s: %d entries of annotation %s are not URLs scheme://host[:port][/path] and never "
            "match",
            *secret_ref,
            ignored,
            ALLOWED_ENDPOINTS_ANNOTATION,
        )
    return listed


def _check_secret_allows(
    destination: Destination, annotations: Mapping[str, str] | None, secret_ref: Ref
) -> None:
    if annotations is not None and destination in _listed(annotations, secret_ref):
        return
    namespace, name = secret_ref
    raise ConnectionProblem(
        ENDPOINT_NOT_ALLOWED,
        f"Secret {namespace}/{name} (spec.credentialsSecretRef) does not exist or does not allow sending its "
        f"credentials to {destination}; its owner allows that by creating the Secret or adding "
        f"{destination} to its annotation {ALLOWED_ENDPOINTS_ANNOTATION} (comma-separated URLs)",
        # A missing Secret is no refusal: a restore may still use the last client that worked with it.
        refused=annotations is not None,
    )

"""Endpoint binding (design.md §6.1, §6.6, §6.7): where a Secret's credentials may be sent.

The rules are pure; `vmclock run`'s flags are parsed with the real argument parser.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from vmclock.cli import _parser, endpoint_policy
from vmclock.connections.problems import ENDPOINT_NOT_ALLOWED, INSECURE_ENDPOINT, ConnectionProblem
from vmclock.connections.trust import (
    ALLOWED_ENDPOINTS_ANNOTATION,
    EndpointPolicy,
    HostPattern,
    allowed_destination,
    endpoint_destination,
    endpoint_origin,
)
from vmclock.refs import Ref

SECRET = Ref("tenant-a", "zstack-creds")
OPEN = EndpointPolicy()


def allowing(*entries: str) -> dict[str, str]:
    return {ALLOWED_ENDPOINTS_ANNOTATION: ",".join(entries)}


def problem(
    policy: EndpointPolicy,
    endpoint: str,
    annotations: Mapping[str, str] | None,
    *,
    context_path: str = "/zstack",
    insecure_skip_verify: bool = False,
) -> ConnectionProblem | None:
    try:
        policy.check(
            endpoint,
            context_path=context_path,
            insecure_skip_verify=insecure_skip_verify,
            secret_annotations=annotations,
            secret_ref=SECRET,
        )
    except ConnectionProblem as refused:
        return refused
    return None


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://zstack.example:8080", "https://zstack.example:8080"),
        ("HTTPS://ZStack.Example", "https://zstack.example:443"),
        ("http://zstack.example/", "http://zstack.example:80"),
        ("https://zstack.example.:443/zstack", "https://zstack.example:443"),
        ("https://[0:0::1]:8443/ctx", "https://[::1]:8443"),
        ("  https://10.0.0.1  ", "https://10.0.0.1:443"),
    ],
)
def test_endpoint_origins_are_normalized(url: str, origin: str) -> None:
    assert str(endpoint_origin(url)) == origin


@pytest.mark.parametrize(
    ("url", "context_path", "destination"),
    [
        ("https://zstack.example:8080", "/zstack", "https://zstack.example:8080/zstack"),
        ("https://zstack.example:8080/", "/zstack/", "https://zstack.example:8080/zstack"),
        ("https://zstack.example:8080/other/", "/zstack", "https://zstack.example:8080/other"),  # path wins
        ("https://zstack.example", "/", "https://zstack.example:443"),  # the root context
    ],
)
def test_a_destination_is_the_origin_and_the_context_path_requests_go_to(
    url: str, context_path: str, destination: str
) -> None:
    assert str(endpoint_destination(url, context_path)) == destination


@pytest.mark.parametrize(
    ("entry", "destination"),
    [
        ("https://ZStack.example:8080", "https://zstack.example:8080/zstack"),  # no path: /zstack only
        ("https://zstack.example/", "https://zstack.example:443/zstack"),
        ("https://zstack.example/api/zs/", "https://zstack.example:443/api/zs"),
    ],
)
def test_annotation_entries_name_a_destination(entry: str, destination: str) -> None:
    assert str(allowed_destination(entry)) == destination


@pytest.mark.parametrize(
    "entry",
    ["https://zstack.example?x=1", "ftp://zstack.example", "x", "https://zstack.example/zstack/../other"],
)
def test_malformed_annotation_entries_are_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match=r"query|http|context path"):
        allowed_destination(entry)


@pytest.mark.parametrize(
    ("endpoint", "context_path", "entry"),
    [
        ("https://zstack.example:8080", "/zstack", "https://zstack.example:8080"),
        ("https://zstack.example/zstack", "/ignored", "https://ZSTACK.example:443/"),
        ("https://zstack.example:443", "/zstack", "https://zstack.example/zstack/"),
        ("https://[::1]:8443", "/zstack", "https://[0::1]:8443"),
        ("https://zstack.example", "/api/zs", "https://zstack.example/api/zs"),
    ],
)
def test_an_endpoint_listed_by_its_secret_is_allowed(endpoint: str, context_path: str, entry: str) -> None:
    annotations = allowing("https://other.example", entry)
    assert problem(OPEN, endpoint, annotations, context_path=context_path) is None


@pytest.mark.parametrize(
    "other",
    [
        "https://zstack.example:8443",  # another port
        "http://zstack.example:8080",  # another scheme
        "https://zstack.example.evil:8080",  # another host
        "https://zstack.example:8080/other",  # another context path on the same origin
    ],
)
def test_only_the_exact_destination_matches(other: str) -> None:
    refused = problem(OPEN, "https://zstack.example:8080", allowing(other))
    assert refused is not None
    assert refused.reason == ENDPOINT_NOT_ALLOWED


@pytest.mark.parametrize(
    ("endpoint", "context_path"),
    [
        ("https://zstack.example:8080/other", "/zstack"),  # a path in spec.endpoint
        ("https://zstack.example:8080", "/other"),  # spec.contextPath
        ("https://zstack.example:8080", "/"),  # the root context is not /zstack either
        ("https://zstack.example:8080/zstack/../other", "/zstack"),  # no spelling around the check
    ],
)
def test_an_origin_without_a_path_allows_only_the_default_context_path(
    endpoint: str, context_path: str
) -> None:
    """Another application on the same origin must not receive the login hash or AccessKey signatures."""
    refused = problem(OPEN, endpoint, allowing("https://zstack.example:8080"), context_path=context_path)
    assert refused is not None
    assert refused.reason == ENDPOINT_NOT_ALLOWED


@pytest.mark.parametrize(
    ("endpoint", "context_path", "field"),
    [
        ("https://zstack.example/zstack/../x", "/zstack", "spec.endpoint: context path '/zstack/../x'"),
        ("https://zstack.example", "/zstack/./x", "spec.contextPath: context path '/zstack/./x'"),
        ("https://zstack.example:99999", "/zstack", "spec.endpoint has an invalid port"),
    ],
)
def test_a_refused_endpoint_names_the_field_at_fault(endpoint: str, context_path: str, field: str) -> None:
    refused = problem(OPEN, endpoint, allowing(endpoint), context_path=context_path)
    assert refused is not None
    assert str(refused).startswith(field)


def test_the_refusal_names_only_the_endpoint_and_how_the_owner_allows_it() -> None:
    refused = problem(OPEN, "https://new.example", allowing("https://old.example:8080", "https://10.1.2.3"))
    assert refused is not None
    message = str(refused)
    assert "https://new.example:443/zstack" in message
    assert ALLOWED_ENDPOINTS_ANNOTATION in message
    assert "Secret tenant-a/zstack-creds" in message
    for other in ("old.example", "10.1.2.3", "8080", "kubectl"):
        assert other not in message, other


@pytest.mark.parametrize(
    "annotations",
    [
        allowing("https://old.example:8080", "not a url"),
        allowing(""),
        {"unrelated": "x"},
        {},
    ],
)
def test_a_missing_secret_reads_exactly_like_one_that_does_not_allow(annotations: dict[str, str]) -> None:
    """Status must not tell a connection editor whether a Secret exists or what it holds."""
    missing = problem(OPEN, "https://zstack.example", None)
    not_allowing = problem(OPEN, "https://zstack.example", annotations)
    assert missing is not None
    assert not_allowing is not None
    assert (missing.reason, str(missing)) == (not_allowing.reason, str(not_allowing))
    # Kept apart inside: a restore may outlive a deleted Secret, never a refusal.
    assert (missing.refused, not_allowing.refused) == (False, True)


@pytest.mark.parametrize(
    "endpoint",
    ["https://user:pw@zstack.example", "https://zstack.example:99999", "ftp://zstack.example", "https://"],
)
def test_an_endpoint_without_a_checkable_origin_is_not_allowed(endpoint: str) -> None:
    refused = problem(OPEN, endpoint, allowing(endpoint))
    assert refused is not None
    assert refused.reason == ENDPOINT_NOT_ALLOWED
    assert "pw" not in str(refused)


def test_plain_http_needs_the_operator_opt_in() -> None:
    annotations = allowing("http://zstack.example:8080")
    refused = problem(OPEN, "http://zstack.example:8080", annotations)
    assert refused is not None
    assert refused.reason == INSECURE_ENDPOINT
    assert "--allow-insecure-endpoints" in str(refused)
    assert problem(EndpointPolicy(allow_insecure=True), "http://zstack.example:8080", annotations) is None


def test_insecure_skip_verify_needs_the_operator_opt_in() -> None:
    annotations = allowing("https://zstack.example")
    refused = problem(OPEN, "https://zstack.example", annotations, insecure_skip_verify=True)
    assert refused is not None
    assert refused.reason == INSECURE_ENDPOINT
    assert "insecureSkipVerify" in str(refused)
    lenient = EndpointPolicy(allow_insecure=True)
    assert problem(lenient, "https://zstack.example", annotations, insecure_skip_verify=True) is None


def test_the_opt_in_does_not_replace_the_secrets_consent() -> None:
    refused = problem(EndpointPolicy(allow_insecure=True), "http://zstack.example", {})
    assert refused is not None
    assert refused.reason == ENDPOINT_NOT_ALLOWED


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("*.zstack.example", "mn1.zstack.example", True),
        ("*.zstack.example", "MN1.zstack.example", True),  # endpoint hosts are lower-cased first
        ("*.zstack.example", "a.b.zstack.example", False),  # * stays within one label
        ("*.zstack.example", "zstack.example", False),
        ("*.zstack.example", "zstack.example.evil", False),
        ("mn?.zstack.example", "mn2.zstack.example", True),
        ("zstack.example", "zstack.example", True),
        ("*", "10.0.0.1", False),  # globs never match IP literals
        ("*.example", "xn--bcher-kva.example", True),  # IDNs are matched in the resolver's ASCII form
        ("10.0.0.0/8", "10.20.30.40", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.0.0.0/8", "ten.zstack.example", False),  # CIDRs never match names: no DNS lookup
        ("10.0.0.7", "10.0.0.7", True),
        ("fd00::/8", "fd00::5", True),
        ("fd00::/8", "10.0.0.1", False),
    ],
)
def test_operator_host_patterns(pattern: str, host: str, matches: bool) -> None:
    scheme_host = f"[{host}]" if ":" in host else host
    endpoint = f"https://{scheme_host}:8080"
    policy = EndpointPolicy(allowed_hosts=(HostPattern.parse(pattern),))
    refused = problem(policy, endpoint, allowing(endpoint))
    if matches:
        assert refused is None
    else:
        assert refused is not None
        assert refused.reason == ENDPOINT_NOT_ALLOWED
        assert f"--allowed-endpoint list ({pattern})" in str(refused)


@pytest.mark.parametrize(
    ("pattern", "host", "looked_up"),
    [
        ("*", "evil\u3002com", "evil.com"),  # ideographic full stop: a dot to the resolver
        ("*", "\uff11\uff10\uff0e\uff10\uff0e\uff10\uff0e\uff11", "10.0.0.1"),  # fullwidth 10.0.0.1
        ("*", "169\u3002254\u3002169\u3002254", "169.254.169.254"),
        ("*.zstack.example", "a\u3002b.zstack.example", "a.b.zstack.example"),
        ("zstack-*", "zstack-x\uff0eevil\uff61com", "zstack-x.evil.com"),
        ("*.example", "\uff4d\uff4e.example", "mn.example"),  # fullwidth letters
    ],
)
def test_look_alike_hosts_are_refused_as_written(pattern: str, host: str, looked_up: str) -> None:
    """Compared as the resolver will look them up, these would cross label or IP boundaries a glob
    respects; the operator refuses any name that looks up as something else than it reads."""
    endpoint = f"https://{host}:8080"
    for policy in (OPEN, EndpointPolicy(allowed_hosts=(HostPattern.parse(pattern),))):
        refused = problem(policy, endpoint, allowing(endpoint, f"https://{looked_up}:8080"))
        assert refused is not None
        assert refused.reason == ENDPOINT_NOT_ALLOWED
        assert str(refused).startswith(f"spec.endpoint host {host!r} is written with look-alike characters")
        assert repr(looked_up) in str(refused)


@pytest.mark.parametrize("host", ["167772161", "10.1", "0x0a.0.0.1", "10.0x0a", "mn.10"])
def test_names_the_resolver_reads_as_ipv4_addresses_are_refused(host: str) -> None:
    endpoint = f"https://{host}"
    refused = problem(OPEN, endpoint, allowing(endpoint))
    assert refused is not None
    assert refused.reason == ENDPOINT_NOT_ALLOWED
    assert "ends in a number" in str(refused)


@pytest.mark.parametrize("written", ["b\u00fccher.example", "B\u00dcCHER.example", "xn--bcher-kva.example"])
def test_an_internationalized_name_is_one_host_however_it_is_written(written: str) -> None:
    """A real IDN reads as it looks up, so it is allowed, and compared in its ASCII form everywhere."""
    assert endpoint_origin(f"https://{written}").host == "xn--bcher-kva.example"
    glob = EndpointPolicy(allowed_hosts=(HostPattern.parse("*.example"),))
    assert problem(glob, f"https://{written}", allowing("https://b\u00fccher.example")) is None
    assert problem(glob, f"https://{written}", allowing("https://xn--bcher-kva.example")) is None


@pytest.mark.parametrize("host", ["evil%2ecom", "a..b", "-", "a b"])
def test_hosts_that_are_not_dns_names_are_refused(host: str) -> None:
    refused = problem(OPEN, f"https://{host}", {})
    assert refused is not None
    assert refused.reason == ENDPOINT_NOT_ALLOWED
    assert str(refused).startswith("spec.endpoint ")


def test_any_listed_pattern_is_enough() -> None:
    patterns = tuple(HostPattern.parse(text) for text in ("10.0.0.0/8", "*.zstack.example"))
    policy = EndpointPolicy(allowed_hosts=patterns)
    for endpoint in ("https://10.1.2.3", "https://mn.zstack.example"):
        assert problem(policy, endpoint, allowing(endpoint)) is None


@pytest.mark.parametrize(
    "text", ["https://zstack.example", "zstack.example:8080", "10.0.0.1/8", "10.0.0.0/33", "10.0.0.256", ""]
)
def test_malformed_host_patterns_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="CIDR"):
        HostPattern.parse(text)


def test_cli_flags_build_the_policy() -> None:
    args = _parser().parse_args(
        [
            "run",
            "--allowed-endpoint",
            "*.ZStack.example",
            "--allowed-endpoint=10.0.0.0/8",
            "--allow-insecure-endpoints",
        ]
    )
    assert endpoint_policy(args) == EndpointPolicy(
        allowed_hosts=(HostPattern.parse("*.zstack.example"), HostPattern.parse("10.0.0.0/8")),
        allow_insecure=True,
    )


def test_cli_defaults_are_strict() -> None:
    assert endpoint_policy(_parser().parse_args(["run"])) == EndpointPolicy(
        allowed_hosts=(), allow_insecure=False
    )


def test_cli_rejects_a_bad_pattern_as_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["run", "--allowed-endpoint", "https://zstack.example"])
    assert exit_info.value.code == 2
    assert "--allowed-endpoint: 'https://zstack.example' is neither a host glob" in capsys.readouterr().err

"""Endpoint binding (design.md §6.1): which endpoints a Secret's credentials may be sent to.

The rules are pure; `vmclock run`'s flags are parsed with the real argument parser.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

import pytest

from vmclock.cli import _parser, endpoint_policy
from vmclock.connections.problems import ENDPOINT_NOT_ALLOWED, INSECURE_ENDPOINT, ConnectionProblem
from vmclock.connections.trust import (
    ALLOWED_ENDPOINTS_ANNOTATION,
    EndpointPolicy,
    HostPattern,
    base_url_origin,
    endpoint_origin,
)

SECRET = ("tenant-a", "zstack-creds")
OPEN = EndpointPolicy()


def allowing(*entries: str) -> dict[str, str]:
    return {ALLOWED_ENDPOINTS_ANNOTATION: ",".join(entries)}


def problem(
    policy: EndpointPolicy,
    endpoint: str,
    annotations: Mapping[str, str],
    *,
    insecure_skip_verify: bool = False,
) -> ConnectionProblem | None:
    try:
        policy.check(
            endpoint,
            insecure_skip_verify=insecure_skip_verify,
            secret_annotations=annotations,
            secret_ref=SECRET,
        )
    except ConnectionProblem as refused:
        return refused
    return None


def suggested_command(refused: ConnectionProblem) -> list[str]:
    return shlex.split(str(refused).split("can allow it with: ", 1)[1])


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
    "entry", ["https://zstack.example/zstack", "https://zstack.example?x=1", "ftp://zstack.example", "x"]
)
def test_annotation_entries_must_be_base_urls(entry: str) -> None:
    with pytest.raises(ValueError, match=r"base URL|http"):
        base_url_origin(entry)


@pytest.mark.parametrize(
    ("endpoint", "entry"),
    [
        ("https://zstack.example:8080", "https://zstack.example:8080"),
        ("https://zstack.example/zstack", "https://ZSTACK.example:443/"),
        ("https://zstack.example:443", "https://zstack.example"),
        ("https://[::1]:8443", "https://[0::1]:8443"),
    ],
)
def test_an_endpoint_listed_by_its_secret_is_allowed(endpoint: str, entry: str) -> None:
    annotations = allowing("https://other.example", entry)
    assert problem(OPEN, endpoint, annotations) is None


def test_a_secret_without_the_annotation_allows_nothing_and_says_how_to_allow() -> None:
    refused = problem(OPEN, "https://ZStack.example:8080/zstack", {"unrelated": "x"})
    assert refused is not None
    assert refused.reason == ENDPOINT_NOT_ALLOWED
    assert "has no annotation" in str(refused)
    expected = (
        f"kubectl annotate secret zstack-creds -n tenant-a "
        f"{ALLOWED_ENDPOINTS_ANNOTATION}=https://zstack.example:8080 --overwrite"
    )
    assert str(refused).endswith(expected)


@pytest.mark.parametrize(
    "other",
    [
        "https://zstack.example:8443",  # another port
        "http://zstack.example:8080",  # another scheme
        "https://zstack.example.evil:8080",  # another host
        "https://zstack.example:8080/zstack",  # not a base URL: never matches
    ],
)
def test_only_the_exact_origin_matches(other: str) -> None:
    refused = problem(OPEN, "https://zstack.example:8080", allowing(other))
    assert refused is not None
    assert refused.reason == ENDPOINT_NOT_ALLOWED


def test_the_suggested_command_keeps_what_the_secret_already_allows() -> None:
    refused = problem(OPEN, "https://new.example", allowing("https://old.example:8080", "not a url"))
    assert refused is not None
    assert "does not list it (1 entries are not base URLs" in str(refused)
    assert suggested_command(refused) == [
        "kubectl",
        "annotate",
        "secret",
        "zstack-creds",
        "-n",
        "tenant-a",
        f"{ALLOWED_ENDPOINTS_ANNOTATION}=https://old.example:8080,https://new.example:443",
        "--overwrite",
    ]
    # Running it would fix the annotation: the new value allows the endpoint.
    (_, value) = suggested_command(refused)[6].split("=", 1)
    assert problem(OPEN, "https://new.example", allowing(value)) is None


def test_an_ipv6_origin_is_quoted_for_the_shell() -> None:
    refused = problem(OPEN, "https://[fd00::5]:8080", {})
    assert refused is not None
    assert suggested_command(refused)[6] == f"{ALLOWED_ENDPOINTS_ANNOTATION}=https://[fd00::5]:8080"


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
        ("*", "167772161", False),  # nor names the resolver would read as IPv4 (inet_aton)
        ("*.example", "10.0x0a", False),
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

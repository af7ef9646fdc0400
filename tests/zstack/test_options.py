"""Endpoint parsing and option validation: context path rules, no credentials in URLs."""

from __future__ import annotations

import pytest

from vmclock.zstack.jobs import PollPacer
from vmclock.zstack.options import ClientOptions, Endpoint


def test_endpoint_path_replaces_the_context_path() -> None:
    assert Endpoint.parse("https://mn:8080", "/zstack").url("/v1/x") == "https://mn:8080/zstack/v1/x"
    assert Endpoint.parse("https://mn:8080/", "/zstack").url("/v1/x") == "https://mn:8080/zstack/v1/x"
    assert Endpoint.parse("https://mn/api/zs/", "/zstack").url("/v1/x", "q=a") == "https://mn/api/zs/v1/x?q=a"
    assert Endpoint.parse("http://[::1]:8080", "").url("/v1/x") == "http://[::1]:8080/v1/x"


def test_request_line_length_counts_method_target_version_and_crlf() -> None:
    endpoint = Endpoint.parse("http://mn:8080", "/zstack")
    assert endpoint.request_line_length("GET", "/v1/a", "q=b") == len("GET /zstack/v1/a?q=b HTTP/1.1\r\n")


@pytest.mark.parametrize("url", ["ftp://mn", "mn:8080", "http://", "http://mn/a?b=c", "http://mn/a b"])
def test_bad_endpoints_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        Endpoint.parse(url, "/zstack")


@pytest.mark.parametrize("url", ["http://mn/zstack/..", "http://mn/./zstack", "http://mn/a/../../b"])
def test_dot_segments_are_refused_so_one_context_path_has_one_spelling(url: str) -> None:
    with pytest.raises(ValueError, match="not a plain path"):
        Endpoint.parse(url, "/zstack")
    with pytest.raises(ValueError, match="not a plain path"):
        ClientOptions(context_path=url.removeprefix("http://mn"))


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://B\u00dcCHER.example:8080", "https://xn--bcher-kva.example:8080"),
        ("https://stra\u00dfe.example", "https://xn--strae-oqa.example"),  # not IDNA 2003's strasse
        ("https://MN.example.", "https://mn.example"),
        ("https://[0:0::1]:8443", "https://[::1]:8443"),
    ],
)
def test_the_client_connects_to_the_host_the_endpoint_rules_checked(url: str, origin: str) -> None:
    """The ASCII form the checks compared, so no later IDNA step (yarl's, the resolver's) can differ."""
    assert Endpoint.parse(url, "/zstack").origin == origin


@pytest.mark.parametrize(
    "host", ["evil\u3002com", "\uff11\uff10\uff0e\uff10\uff0e\uff10\uff0e\uff11", "10.1"]
)
def test_hosts_that_look_up_as_something_else_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match=r"endpoint host .*(look-alike|ends in a number)"):
        Endpoint.parse(f"https://{host}:8080", "/zstack")


def test_endpoint_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="credentials") as caught:
        Endpoint.parse("https://admin:s3cret-pw@mn:8080", "/zstack")
    assert "s3cret-pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"context_path": "zstack"}, "context_path"),
        ({"max_concurrent_requests": 0}, "max_concurrent_requests"),
        ({"retry_attempts": 0}, "retry_attempts"),
        ({"retry_base_delay": 10.0, "retry_max_delay": 1.0}, "retry delays"),
        ({"poll_first_delay": 1.0, "poll_max_delay": 0.5}, "poll_max_delay"),
        ({"max_reply_bytes": 0}, "max_reply_bytes"),
        ({"max_listing_rows": 0}, "max_listing_rows"),
        ({"max_job_timeout": 0.0}, "max_job_timeout"),
    ],
)
def test_invalid_options_are_refused(kwargs: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        ClientOptions(**kwargs)  # type: ignore[arg-type]


def test_polling_starts_soon_backs_off_to_a_cap_and_learns_typical_durations() -> None:
    pacer = PollPacer(first_delay=0.02, max_delay=2.0)
    fresh = pacer.delays("SetVmClockTrack")
    assert [round(next(fresh), 4) for _ in range(4)] == [0.02, 0.03, 0.045, 0.0675]
    assert max(next(fresh) for _ in range(30)) == 2.0
    pacer.record("SetVmClockTrack", 0.2)
    learned = pacer.delays("SetVmClockTrack")
    assert [round(next(learned), 4) for _ in range(3)] == [0.15, 0.02, 0.03]  # most of 0.2 s, then soon again
    pacer.record("SetVmClockTrack", 3600.0)
    assert next(pacer.delays("SetVmClockTrack")) == 2.0  # a long job never makes one poll wait beyond the cap
    assert next(pacer.delays("OtherApi")) == 0.02

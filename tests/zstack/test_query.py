"""The `q=` condition builder and URL batching: what ZStack would misread is refused before it is sent."""

from __future__ import annotations

import itertools

import pytest

from vmclock.zstack.options import MAX_REQUEST_LINE, Endpoint
from vmclock.zstack.query import (
    Condition,
    Page,
    Shape,
    any_of,
    batch_any_of,
    encode_query,
    eq,
    pack,
    parse_like_zstack,
)


@pytest.mark.parametrize(
    ("condition", "parsed"),
    [
        ("uuid=abc", ("uuid", "=", "abc")),
        ("name!=a=b", ("name", "!=", "a=b")),  # != is found before =
        ("cpuNum>=2", ("cpuNum", ">=", "2")),
        ("uuid?=a,b", ("uuid", "?=", "a,b")),
        ("state<x>=y", ("state<x", ">=", "y")),  # the higher-priority operator wins wherever it is
        (" name =v ", ("name", "=", "v ")),  # name trimmed, value kept as is
        ("nothing here", None),
    ],
)
def test_parser_mirrors_zstack_priority(condition: str, parsed: tuple[str, str, str] | None) -> None:
    assert parse_like_zstack(condition) == parsed


@pytest.mark.parametrize(
    ("field", "op", "value"),
    [
        ("tag", "=", "clockTrack::guest"),
        ("name", "~=", "web-%"),
        ("uuid", "?=", "a=b,c"),  # '=' ranks below '?=', so ZStack reads this as meant
        ("cpuNum", ">", "2"),
        ("vmNics.ip", "=", "10.0.0.1"),
        ("__systemTag__", "=", "clockTrack::guest"),
    ],
)
def test_conditions_zstack_reads_as_meant_are_accepted(field: str, op: str, value: str) -> None:
    cond = Condition(field, op, value)
    assert parse_like_zstack(cond.render()) == (field, op, value)


@pytest.mark.parametrize(
    ("field", "op", "value", "why"),
    [
        ("name", "=", "a!=b", "operator"),  # would become name != b
        ("tag", "=", "x<=y", "operator"),
        ("uuid", "?=", "a~=b", "operator"),  # ~= outranks ?=
        ("cpuNum", ">", "=2", "operator"),  # rendered "cpuNum>=2" is >= 2
        ("name", "<", "=x", "operator"),
        ("name", "=", "", "empty"),
        ("uuid", "?=", "a,,b", "non-empty"),
        ("uuid", "?=", "a,", "non-empty"),
        ("na me", "=", "x", "field name"),
        ("name!", "=", "x", "field name"),  # would render "name!=x"
        ("", "=", "x", "field name"),
        ("name", "is null", "x", "operator"),
        ("name", "==", "x", "operator"),
    ],
)
def test_misread_conditions_are_rejected_naming_the_field(field: str, op: str, value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        Condition(field, op, value)
    assert repr(field) in str(caught.value)


def test_any_of_rejects_commas_inside_items_and_empty_lists() -> None:
    with pytest.raises(ValueError, match=r"'uuid'.*no comma"):
        any_of("uuid", ["a", "b,c"])
    with pytest.raises(ValueError, match=r"'uuid'.*at least one"):
        any_of("uuid", [])
    with pytest.raises(ValueError, match="'resourceUuid'"):
        any_of("resourceUuid", ["ok", "x!=y"])
    assert any_of("uuid", ["a", "b"]).render() == "uuid?=a,b"


def test_encoded_query_is_exact() -> None:
    query = encode_query(
        [eq("name", "vm.clock.track"), any_of("resourceUuid", ["a1", "b2"])],
        page=Page(start=2000, limit=1000),
        shape=Shape(sort="uuid", fields=("resourceUuid", "value")),
    )
    assert query == (
        "q=name%3Dvm.clock.track&q=resourceUuid%3F%3Da1,b2&limit=1000&start=2000&replyWithCount=true"
        "&sort=%2Buuid&fields=resourceUuid,value"
    )
    assert encode_query([eq("name", "a b&c")]) == "q=name%3Da%20b%26c"


def test_pack_fills_batches_to_the_byte_budget() -> None:
    assert pack(["aaa", "bbb", "ccc", "ddd"], budget=7) == [["aaa", "bbb"], ["ccc", "ddd"]]  # "aaa,bbb" = 7
    assert pack(["aaa", "bbb", "ccc"], budget=6) == [["aaa"], ["bbb"], ["ccc"]]
    assert pack(["a%"], budget=4) == [["a%"]]  # encoded "a%25" costs 4
    with pytest.raises(ValueError, match="does not fit"):
        pack(["a%"], budget=3)


def test_2000_uuids_batch_under_8_kib_request_lines_with_the_fewest_batches() -> None:
    endpoint = Endpoint.parse("http://zstack.example:8080", "/zstack")
    uuids = [f"{i:032x}" for i in range(2000)]
    conditions = [eq("name", "vm.clock.track")]
    shape = Shape(sort="uuid")

    def line(batch: list[str], page: Page) -> int:
        query = encode_query([*conditions, any_of("resourceUuid", batch)], page=page, shape=shape)
        return endpoint.request_line_length("GET", "/v1/resource-configurations", query)

    def measure(extra: Condition) -> int:
        query = encode_query([*conditions, extra], page=Page.widest(1000), shape=shape)
        return endpoint.request_line_length("GET", "/v1/resource-configurations", query)

    batches = batch_any_of("resourceUuid", uuids + uuids[:10], measure, MAX_REQUEST_LINE)
    assert [u for batch in batches for u in batch] == uuids  # duplicates dropped, order kept
    for batch in batches:
        assert line(batch, Page.widest(1000)) <= MAX_REQUEST_LINE
    for batch, following in itertools.pairwise(batches):
        assert line([*batch, following[0]], Page.widest(1000)) > MAX_REQUEST_LINE  # nothing more would fit
    assert len(batches) == 9


def test_batching_validates_every_item_before_sending_anything() -> None:
    with pytest.raises(ValueError, match="'uuid'"):
        batch_any_of("uuid", ["a" * 32, "b,c"], lambda _: 100, MAX_REQUEST_LINE)
    assert batch_any_of("uuid", [], lambda _: 100, MAX_REQUEST_LINE) == []

"""Bounds on what a management node can make the client hold, compute or report (design §6.2).

The pure parts, tested directly: JSON admission, version parsing, truncation to the CRD's status limits,
masking of AccessKey signatures, the job deadline clamp. tests/hostile drives the same rules over HTTP.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmclock.zstack.auth import SIGNATURE_RE, AccessKeyAuth, sign
from vmclock.zstack.credentials import AccessKeyCredentials
from vmclock.zstack.errors import ErrorCode, ZStackError
from vmclock.zstack.jobs import MIN_API_TIMEOUT, JobRunner
from vmclock.zstack.jsonguard import MAX_DEPTH, MAX_VALUES, ReplyRejected
from vmclock.zstack.jsonstream import decode
from vmclock.zstack.models import VmInventory, ZStackVersion
from vmclock.zstack.options import ClientOptions, Endpoint
from vmclock.zstack.redact import MASK, Redactor
from vmclock.zstack.replies import Reply
from vmclock.zstack.transport import Transport

CRD = Path(__file__).resolve().parents[2] / "crds" / "vmclock.zstack.io_vmclockpolicies.yaml"
SESSION = "5d1b3c0e9f2a4b6c8d0e1f2a3b4c5d6e"


def vm_status_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    return status["properties"]["vms"]["items"]["properties"]  # type: ignore[no-any-return]


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


# --- JSON admission ------------------------------------------------------------------------------------


async def test_json_as_deep_as_allowed_decodes() -> None:
    value = await decode(nested(MAX_DEPTH))
    for _ in range(MAX_DEPTH):
        value = value["a"]
    assert value == 1


@pytest.mark.parametrize("body", [nested(MAX_DEPTH + 1), b"[" * 150_000 + b"]" * 150_000])
async def test_deeper_json_is_refused_quickly_without_recursion(body: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(ReplyRejected, match="nested deeper"):
        await decode(body)
    assert time.perf_counter() - started < 1.0


async def test_brackets_and_escaped_quotes_inside_strings_are_not_structure() -> None:
    text = '[[[[[[[[[[[[[[[[[[[[[[[[[[ "quoted" \\ ,,,,'
    body = json.dumps({"name": text, "other": "\\" * 7, "list": ["a", "b"]}).encode()
    assert (await decode(body))["name"] == text


async def test_a_zstack_error_with_a_long_cause_chain_decodes() -> None:
    error: dict[str, Any] = {"code": "SYS.1000"}
    for n in range(12):
        error = {"code": f"SYS.{n}", "description": "wrapped", "cause": error, "opaque": {"k": [1, 2]}}
    assert (await decode(json.dumps({"error": error}).encode()))["error"]["code"] == "SYS.11"


async def test_too_many_values_are_refused_before_decoding() -> None:
    body = b"[" + b"0," * MAX_VALUES + b"0]"
    with pytest.raises(ReplyRejected, match="more than"):
        await decode(body)
    await decode(b"[" + b"0," * (MAX_VALUES - 2) + b"0]")


async def test_numbers_longer_than_a_java_long_and_nan_are_refused() -> None:
    await decode(b'{"memorySize": 9223372036854775807}')
    with pytest.raises(ReplyRejected, match="digits"):
        await decode(b'{"memorySize": ' + b"9" * 4000 + b"}")
    with pytest.raises(ValueError, match="NaN"):
        await decode(b'{"apiTimeout": NaN}')


async def test_a_rejected_body_is_a_typed_rejection_not_a_value_error() -> None:
    with pytest.raises(ReplyRejected):
        await Reply.read(200, nested(100))
    assert (await Reply.read(200, b"<html>" + b"[" * 100 + b"</html>")).body is None  # not JSON: text only


# --- Version -------------------------------------------------------------------------------------------


def test_version_parsing_reads_a_short_head_only() -> None:
    assert ZStackVersion.parse("zstack-4.8.0") == ZStackVersion(4, 8, 0)
    assert ZStackVersion.parse("5.3.0.123") == ZStackVersion(5, 3, 0)
    with pytest.raises(ValueError, match=r"x\.y\.z"):
        ZStackVersion.parse(" " * 100 + "4.8.0")


def test_a_megabyte_of_digits_is_refused_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"x\.y\.z") as caught:
        ZStackVersion.parse("1" * 1_000_000 + ".2.3")
    assert time.perf_counter() - started < 0.05
    assert len(str(caught.value)) < 100


# --- Truncation to what status allows --------------------------------------------------------------------


def test_hostile_inventory_fits_the_crd_status_schema() -> None:
    schema = vm_status_schema()["inventory"]["properties"]
    row = {
        "uuid": "a" * 32,
        **{key: "x" * 100_000 for key in VmInventory.ZSTACK_FIELDS if key not in ("cpuNum", "memorySize")},
        "cpuNum": 10**30,
        "memorySize": -5,
    }
    status = VmInventory.from_json(row).to_status()
    for key, value in status.items():
        if isinstance(value, str):
            assert len(value) == schema[key]["maxLength"], key
    assert status["cpuNum"] == 2**31 - 1  # int32
    assert "memorySize" not in status  # clamped to 0, so left out
    assert VmInventory.from_json({"uuid": "u", "memorySize": 10**30}).memory_size == 2**63 - 1


def test_hostile_error_text_fits_status_and_a_log_line() -> None:
    schema = vm_status_schema()["error"]["properties"]
    data = {"code": "C" * 10_000, "description": "d" * 1_000_000, "details": "x" * 1_000_000}
    err = ZStackError(ErrorCode.from_json(data).redacted(Redactor()), http_status=503)
    for key, value in err.to_status().items():
        assert len(value) <= schema[key]["maxLength"], key
    assert len(str(err)) < 1024


def test_secrets_are_masked_before_the_cut_so_no_head_of_one_survives() -> None:
    redact = Redactor()
    redact.add(SESSION)
    for at in range(240, 260):
        data = {"code": "ID.1001", "description": "d" * at + SESSION, "details": "x" * (at + 260) + SESSION}
        error = ErrorCode.from_json(data).redacted(redact)
        assert SESSION[:6] not in error.description
        assert SESSION[:6] not in error.details


def test_a_text_cut_before_redaction_shows_no_head_of_a_secret_at_its_end() -> None:
    """Server texts are bounded before they are redacted (a 1,200-byte reply head, 4,096 characters of a
    field): a secret that crossed that cut ends the text half, and half a session id is still too much."""
    redact = Redactor()
    redact.add(SESSION)
    for kept in range(8, len(SESSION)):
        assert redact("the server said " + SESSION[:kept]) == f"the server said {MASK}"
    assert redact("ends in abc") == "ends in abc", "ordinary words are not masked"


@pytest.mark.parametrize("code", ["SYS.1001", "ID.1001", "VM.1010", "HOST.1000"])
def test_zstack_codes_are_kept(code: str) -> None:
    assert ErrorCode.from_json({"code": code}).code == code


@pytest.mark.parametrize("code", [SESSION, "not a code", "<html>", "sys.1001", "SYS.1001 and more", ""])
def test_a_code_that_is_not_zstacks_is_not_echoed(code: str) -> None:
    """The code is shown and logged everywhere (status, Events, connection messages of endpoints not yet
    proven to be ZStack): only the `<PREFIX>.<id>` shape is kept, never a server's free text."""
    assert ErrorCode.from_json({"code": code}).code == "UNKNOWN"


# --- AccessKey signatures ----------------------------------------------------------------------------------


def test_accesskey_signatures_are_masked_in_every_text() -> None:
    redact = Redactor()
    transport = Transport(Endpoint.parse("https://mn:8080", "/zstack"), ClientOptions(), redact)
    credentials = AccessKeyCredentials("AKID0123", "the-secret-key")
    auth = AccessKeyAuth(credentials, transport, clock=time.time)
    header = auth.headers(None, "GET", "/v1/vm-instances")["Authorization"]
    signature = header.split(":", 1)[1]
    text = redact(f"401 for Authorization: {header}; sig={signature}; again {sign('k', 'PUT', 'd', '/v1/x')}")
    assert signature not in text
    assert text.count(MASK) == 3
    assert "AKID0123" in text  # the key id is no secret and helps to diagnose


def test_signature_pattern_leaves_ordinary_ids_alone() -> None:
    assert not SIGNATURE_RE.search(f"uuid={SESSION}")
    assert not SIGNATURE_RE.search("a" * 40 + "=")


# --- Job deadline --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_timeout_ms", "expected"),
    [(1e15, 60.0), (1, MIN_API_TIMEOUT), (-3, 60.0), ("soon", 60.0), (20_000, 20.0)],
)
def test_server_given_api_timeout_is_clamped(api_timeout_ms: object, expected: float) -> None:
    options = ClientOptions(max_job_timeout=60.0, request_timeout=1.0, poll_max_delay=1.0)
    transport = Transport(Endpoint.parse("https://mn:8080", "/zstack"), options, Redactor())
    deadline = JobRunner(transport, options)._deadline({"apiTimeout": api_timeout_ms}, since=100.0)
    assert deadline == pytest.approx(100.0 + expected + 2.0)


# --- Decoding in slices ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"inventories":[{"uuid":"a","vmNics":[{"ip":"1"}]},{"uuid":"b"}],"total":2,"schema":{"x":"y"}}',
        ' { "inventories" : [ ] , "total" : 0 } ',
        '{"error":{"code":"SYS.1006","cause":{"code":"VM.1010"}}}',
        "[[1, 2], [3], []]",
        '{"a":[1,2,3],"b":[[],{}],"c":{}, "d":"[\\"{"}',
        "{}",
    ],
)
async def test_decoding_in_slices_gives_what_json_loads_gives(text: str) -> None:
    assert (await Reply.read(200, text.encode())).body == json.loads(text)


@pytest.mark.parametrize(
    "text",
    ['{"a":1} x', '{"a":1 "b":2}', "{1:2}", '{"rows":[{"a":1} {"b":2}]}', '{"a":[{"b":1},]}', '{"a":NaN}'],
)
async def test_malformed_json_decoded_in_slices_is_no_body(text: str) -> None:
    reply = await Reply.read(503, text.encode())
    assert reply.body is None
    assert reply.text == text

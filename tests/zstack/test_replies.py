"""How answers are classified, as ZStack sends them: no Content-Type, plain text, Gson dates, extra keys."""

from __future__ import annotations

import pytest

from vmclock.zstack.errors import GARBAGE, HTTP, REDIRECT, ZStackError
from vmclock.zstack.redact import Redactor
from vmclock.zstack.replies import Reply, error_from_reply, success_body

SESSION = "5d1b3c0e9f2a4b6c8d0e1f2a3b4c5d6e"


def redactor() -> Redactor:
    redact = Redactor()
    redact.add(SESSION)
    return redact


async def test_zstack_error_body_keeps_code_details_and_cause_chain() -> None:
    raw = (
        b'{"error":{"code":"SYS.1006","description":"operation error","details":"cannot do it",'
        b'"cause":{"code":"VM.1010","description":"not in correct state","details":"state Stopped"}}}'
    )
    err = error_from_reply(await Reply.read(503, raw), "SetVmClockTrack", redactor())
    assert (err.code, err.description, err.details) == ("SYS.1006", "operation error", "cannot do it")
    assert err.root_cause_code == "VM.1010"
    assert err.http_status == 503
    assert not err.retryable


async def test_error_text_from_the_server_is_redacted_including_causes() -> None:
    raw = (
        b'{"error":{"code":"ID.1001","details":"session[' + SESSION.encode() + b'] expired",'
        b'"cause":{"code":"X","details":"again ' + SESSION.encode() + b'"}}}'
    )
    err = error_from_reply(await Reply.read(503, raw), "QueryVmInstance", redactor())
    assert SESSION not in str(err)
    assert err.error.cause is not None
    assert SESSION not in err.error.cause.details
    assert err.session_expired


@pytest.mark.parametrize("status", [502, 500, 503])
async def test_non_json_5xx_is_retryable_garbage(status: int) -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    err = error_from_reply(await Reply.read(status, html), "QueryVmInstance", redactor())
    assert err.code == GARBAGE
    assert err.retryable
    assert err.http_status == status
    assert "Bad Gateway" in err.details


@pytest.mark.parametrize("status", [400, 403, 404, 405])
async def test_plain_text_4xx_is_terminal_with_the_text(status: int) -> None:
    text = f"the body doesn't contain action mapping, session {SESSION}".encode()
    err = error_from_reply(await Reply.read(status, text), "SetVmClockTrack", redactor())
    assert err.code == HTTP
    assert not err.retryable
    assert err.http_status == status
    assert "action mapping" in err.details
    assert SESSION not in str(err)


async def test_success_body_tolerates_extra_keys_and_gson_dates() -> None:
    raw = b'{"inventories":[{"uuid":"a","createDate":"Jan 6, 2017 3:51:16 AM"}],"schema":{"x":"y"}}'
    body = success_body(await Reply.read(200, raw), "QueryVmInstance", redactor())
    assert body["inventories"][0]["createDate"] == "Jan 6, 2017 3:51:16 AM"


@pytest.mark.parametrize("raw", [b"<html>ok</html>", b"[1, 2]", b"", b'"text"'])
async def test_garbage_200_is_a_garbage_error(raw: bytes) -> None:
    with pytest.raises(ZStackError) as caught:
        success_body(await Reply.read(200, raw), "GetVersion", redactor())
    assert caught.value.code == GARBAGE


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_a_terminal_redirect_error(status: int) -> None:
    err = error_from_reply(await Reply.read(status, b"moved"), "GetVersion", redactor())
    assert (err.code, err.http_status) == (REDIRECT, status)
    assert not err.retryable

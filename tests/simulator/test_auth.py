"""Login, sessions (sliding expiry, logout, validate) and AccessKey signing, as ZStack answers them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import datetime, timedelta

import pytest

from vmclock.simulator import Simulator

from .conftest import MakeSim, ZSFor
from .rawhttp import SHA512_PASSWORD, ZS

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(moment: datetime, zone: str = "CST") -> str:
    """'EEE, dd MMM yyyy HH:mm:ss z' in local time, like the Go SDK (locale-independent)."""
    return f"{_DAYS[moment.weekday()]}, {moment:%d} {_MONTHS[moment.month - 1]} {moment:%Y %H:%M:%S} {zone}"


def signed(key_id: str, secret: str, method: str, uri: str, date: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{method}\n{date}\n{uri}".encode(), hashlib.sha1).digest()
    return {"Authorization": f"ZStack {key_id}:{base64.b64encode(digest).decode()}", "Date": date}


async def test_login_returns_a_session_inventory(sim: Simulator, zs_for: ZSFor) -> None:
    resp = await zs_for(sim).login()
    assert resp.status == 200
    inventory = resp.json()["inventory"]
    assert len(inventory["uuid"]) == 32
    assert inventory["accountUuid"] == inventory["userUuid"]
    assert inventory["expiredDate"].endswith(("AM", "PM"))


@pytest.mark.parametrize(
    ("account", "password"),
    [
        ("admin", hashlib.sha512(b"wrong").hexdigest()),
        ("admin", "password"),  # the plain password instead of its SHA-512 hex
        ("nobody", SHA512_PASSWORD),
    ],
)
async def test_bad_login_is_id_1000(sim: Simulator, zs_for: ZSFor, account: str, password: str) -> None:
    resp = await zs_for(sim).login(account, password)
    assert resp.error_code == "ID.1000"
    assert resp.json()["error"]["details"] == "wrong account name or password"


async def test_login_without_fields_is_sys_1007(sim: Simulator, zs_for: ZSFor) -> None:
    resp = await zs_for(sim).call(
        "PUT", "/v1/accounts/login", json={"logInByAccount": {"accountName": "admin"}}
    )
    assert resp.error_code == "SYS.1007"
    assert "field[password]" in resp.json()["error"]["details"]


async def test_configured_accounts_replace_the_default(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(accounts={"ops": "s3cret"}))
    assert (await zs.login()).error_code == "ID.1000"
    assert (await zs.login("ops", hashlib.sha512(b"s3cret").hexdigest())).status == 200


async def test_session_expiry_slides_with_each_call(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(session_timeout=0.5))
    await zs.login()
    for _ in range(3):  # 0.9 s in total, well past the first expiry, kept alive by each call
        await asyncio.sleep(0.3)
        assert (await zs.get("/v1/vm-instances?limit=1")).status == 200
    await asyncio.sleep(0.7)
    expired = await zs.get("/v1/vm-instances?limit=1")
    assert expired.error_code == "ID.1001"


async def test_logout_invalidates_sync_and_async_calls(zs: ZS) -> None:
    session = zs.session_uuid
    valid = await zs.call("GET", f"/v1/accounts/sessions/{session}/valid")
    assert valid.json() == {"valid": True}
    logout = await zs.call("DELETE", f"/v1/accounts/sessions/{session}")
    assert (logout.status, logout.json()) == (200, {})
    assert (await zs.call("GET", f"/v1/accounts/sessions/{session}/valid")).json() == {"valid": False}
    assert (await zs.get("/v1/vm-instances")).error_code == "ID.1001"
    accepted = await zs.set_track(zs.sim.state.vm_uuids()[0], "guest")
    assert accepted.status == 202
    result = await zs.wait_job(accepted)
    assert result.error_code == "ID.1001"
    assert zs.sim.stats.writes == []


async def test_unknown_session_is_id_1001_not_a_rest_error(zs: ZS) -> None:
    resp = await zs.get(
        "/v1/vm-instances", headers={"Authorization": "OAuth 0123456789abcdef0123456789abcdef"}
    )
    assert resp.error_code == "ID.1001"


async def test_missing_authorization_header_is_400(zs: ZS) -> None:
    resp = await zs.call("GET", "/v1/vm-instances")
    assert (resp.status, resp.text) == (400, "missing header 'Authorization'")


async def test_wrong_authorization_scheme_is_400(zs: ZS) -> None:
    resp = await zs.call("GET", "/v1/vm-instances", headers={"Authorization": f"Bearer {zs.session_uuid}"})
    assert (resp.status, resp.text) == (400, "Authorization type must be 'OAuth'")


@pytest.fixture
async def keyed(make_sim: MakeSim, zs_for: ZSFor) -> ZS:
    return zs_for(await make_sim(access_keys={"AK1": "sekret"}))


async def test_access_key_signature_authenticates(keyed: ZS) -> None:
    headers = signed("AK1", "sekret", "GET", "/v1/vm-instances", http_date(datetime.now()))
    resp = await keyed.call("GET", "/v1/vm-instances?q=state=Running", headers=headers)
    assert resp.status == 200
    assert resp.json()["inventories"]


async def test_access_key_drives_an_async_job(keyed: ZS) -> None:
    uuid = keyed.sim.state.vm_uuids()[0]
    path = f"/v1/vm-instances/{uuid}/actions"
    headers = signed("AK1", "sekret", "PUT", path, http_date(datetime.now(), "GMT"))
    accepted = await keyed.call("PUT", path, json={"setVmClockTrack": {"track": "guest"}}, headers=headers)
    assert (await keyed.wait_job(accepted)).status == 200
    assert keyed.sim.state.track_of(uuid) == "guest"


@pytest.mark.parametrize(
    ("key_id", "secret", "signed_path", "text"),
    [
        ("AK1", "wrong", "/v1/vm-instances", "wrong accessKey signature"),
        ("AK1", "sekret", "/v1/x", "wrong accessKey signature"),
        ("AK2", "sekret", "/v1/vm-instances", "access key id: AK2 does not existed or disabled"),
    ],
)
async def test_bad_access_key_or_signature_is_403_with_zstacks_texts(
    keyed: ZS, key_id: str, secret: str, signed_path: str, text: str
) -> None:
    """The Go SDK tells the two apart by substring (ErrInvalidAccessKey), so the texts are ZStack's own."""
    headers = signed(key_id, secret, "GET", signed_path, http_date(datetime.now()))
    resp = await keyed.call("GET", "/v1/vm-instances", headers=headers)
    assert (resp.status, resp.text) == (403, text)
    assert resp.headers.get("Content-Type") is None


@pytest.mark.parametrize("skew", [timedelta(minutes=16), timedelta(minutes=-16)])
async def test_skewed_date_is_403(keyed: ZS, skew: timedelta) -> None:
    headers = signed("AK1", "sekret", "GET", "/v1/vm-instances", http_date(datetime.now() + skew))
    resp = await keyed.call("GET", "/v1/vm-instances", headers=headers)
    assert (resp.status, resp.text) == (403, "requestTimeTooSkewed")


async def test_date_within_the_window_is_accepted(keyed: ZS) -> None:
    headers = signed(
        "AK1", "sekret", "GET", "/v1/vm-instances", http_date(datetime.now() - timedelta(minutes=14))
    )
    assert (await keyed.call("GET", "/v1/vm-instances", headers=headers)).status == 200


async def test_access_key_date_and_format_errors_are_400(keyed: ZS) -> None:
    good = signed("AK1", "sekret", "GET", "/v1/vm-instances", http_date(datetime.now()))
    cases = {
        "'Date' must be incuded in request header": {"Authorization": good["Authorization"]},
        "'Date' format error, correct format is 'EEE, dd MMM yyyy HH:mm:ss z'": {
            **good,
            "Date": "2024-01-01",
        },
        "accessKey format is 'ZStack AccessKeyId:Signature'": {**good, "Authorization": "ZStack AK1"},
    }
    for text, headers in cases.items():
        resp = await keyed.call("GET", "/v1/vm-instances", headers=headers)
        assert (resp.status, resp.text) == (400, text)

"""RestServer-level behaviour: routing, status codes, plain-text errors, no Content-Type, versioning."""

from __future__ import annotations

from vmclock.simulator import Simulator

from .conftest import MakeSim, ZSFor
from .rawhttp import ZS


async def test_no_response_from_the_api_carries_a_content_type(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    responses = [
        await zs.login(),
        await zs.get("/v1/vm-instances"),
        await zs.call("GET", "/v1/nowhere"),
        await zs.call("GET", "/v1/vm-instances"),  # 400 plain text
        accepted := await zs.set_track(uuid, "guest"),
        await zs.call("GET", zs.job_url(accepted)),
        await zs.wait_job(accepted),
        await zs.call("POST", zs.job_url(accepted)),
    ]
    assert {r.status for r in responses} == {200, 202, 400, 404, 405}
    assert [r.headers.get("Content-Type") for r in responses] == [None] * len(responses)


async def test_unknown_path_is_404_plain_text(zs: ZS) -> None:
    resp = await zs.call("GET", "/v1/vm-instancez")
    assert (resp.status, resp.text) == (404, "no api mapping to /v1/vm-instancez")


async def test_body_without_a_known_action_key_is_400(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    resp = await zs.call(
        "PUT", f"/v1/vm-instances/{uuid}/actions", json={"rebootVmInstanz": {}}, headers=zs.auth()
    )
    assert resp.status == 400
    assert resp.text == f"the body doesn't contain action mapping to the URL[/v1/vm-instances/{uuid}/actions]"


async def test_wrong_method_on_a_known_path_is_405(zs: ZS) -> None:
    resp = await zs.call("DELETE", "/v1/vm-instances", headers=zs.auth())
    assert resp.status == 405
    assert "DELETE" in resp.text


async def test_get_version_needs_no_auth(sim: Simulator, zs_for: ZSFor) -> None:
    zs = zs_for(sim)
    resp = await zs.call("PUT", "/v1/management-nodes/actions", json={"getVersion": {}})
    assert (resp.status, resp.json()) == (200, {"version": "5.3.0"})
    assert sim.stats.calls["GetVersion"] == 1


async def test_management_node_ready(zs: ZS) -> None:
    resp = await zs.call("GET", "/v1/management-nodes/ready")
    assert (resp.status, resp.json()) == (200, {})


async def test_invalid_json_body_is_500_plain_text(zs: ZS) -> None:
    resp = await zs.call("PUT", "/v1/accounts/login", data=b"{not json")
    assert resp.status == 500
    assert not resp.text.startswith("{")


async def test_type_checks_on_boolean_and_integer_fields_are_400(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[0]
    bad_bool = await zs.set_track(uuid, "guest", syncAfterVMResume="yes")
    assert bad_bool.status == 400
    assert bad_bool.text.startswith("Invalid value for boolean field [syncAfterVMResume], [yes]")
    bad_int = await zs.set_track(uuid, "guest", intervalInSeconds=1.5)
    assert bad_int.status == 400
    assert bad_int.text == "[intervalInSeconds] field is excepted an int or long, but was [1.5]."


async def test_request_line_limit_is_8192_bytes(zs: ZS) -> None:
    prefix = "/zstack/v1/vm-instances?q=name="
    overhead = len("GET ") + len(" HTTP/1.1")

    def url(line_length: int) -> str:
        return zs.sim.endpoint + prefix + "x" * (line_length - overhead - len(prefix))

    at_limit = await zs.call("GET", url(8192), headers=zs.auth())
    assert (at_limit.status, at_limit.json()["inventories"]) == (200, [])
    over = await zs.call("GET", url(8193), headers=zs.auth())
    assert over.status == 414
    assert over.headers.get("Content-Type") is None


async def test_custom_context_path(make_sim: MakeSim, zs_for: ZSFor) -> None:
    sim = await make_sim(context_path="/api")
    zs = zs_for(sim)
    assert (await zs.login()).status == 200
    missing = await zs.call("GET", sim.endpoint + "/zstack/v1/management-nodes/ready")
    assert missing.status == 404

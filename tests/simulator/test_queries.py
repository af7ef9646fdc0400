"""The query API over vm-instances: operators, paging, counting, sorting, fields and RestServer's quirks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .conftest import MakeSim, ZSFor
from .rawhttp import ZS

Inventory = dict[str, Any]


async def query(zs: ZS, *conditions: str, **params: str) -> Any:
    resp = await zs.get("/v1/vm-instances", params=[*(("q", c) for c in conditions), *params.items()])
    assert resp.status == 200, resp.text
    return resp.json()


async def everything(zs: ZS) -> list[Inventory]:
    inventories: list[Inventory] = (await query(zs))["inventories"]
    assert len(inventories) == len(zs.sim.state.vm_uuids())
    return inventories


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("platform=windows", lambda vm: vm["platform"] == "Windows"),  # collation ignores case
        ("platform!=Linux", lambda vm: vm["platform"] != "Linux"),
        ("cpuNum>=4", lambda vm: vm["cpuNum"] >= 4),
        ("cpuNum<=2", lambda vm: vm["cpuNum"] <= 2),
        ("cpuNum>4", lambda vm: vm["cpuNum"] > 4),
        ("cpuNum<4", lambda vm: vm["cpuNum"] < 4),
        ("state?=Stopped,Paused", lambda vm: vm["state"] in ("Stopped", "Paused")),
        ("state!?=Stopped,Paused", lambda vm: vm["state"] not in ("Stopped", "Paused")),
        ("name~=win-%", lambda vm: vm["name"].startswith("win-")),
        ("name!~=%-00_", lambda vm: not (vm["name"][-3:-1] == "00" and vm["name"][-4] == "-")),
        ("hostUuid is null", lambda vm: "hostUuid" not in vm),
        ("hostUuid not null", lambda vm: "hostUuid" in vm),
        ("vmNics.l3NetworkUuid!=x", lambda vm: bool(vm["vmNics"])),
    ],
)
async def test_operators(zs: ZS, condition: str, expected: Callable[[Inventory], bool]) -> None:
    wanted = [vm["uuid"] for vm in await everything(zs) if expected(vm)]
    assert wanted, "the seeded fleet should give every condition something to find"
    found = [vm["uuid"] for vm in (await query(zs, condition))["inventories"]]
    assert found == wanted


async def test_nested_fields_and_conditions_are_anded(zs: ZS) -> None:
    vm = (await everything(zs))[0]
    ip = vm["vmNics"][0]["ip"]
    found = await query(zs, f"vmNics.ip={ip}", f"platform={vm['platform']}", f"uuid={vm['uuid']}")
    assert [v["uuid"] for v in found["inventories"]] == [vm["uuid"]]
    assert (await query(zs, f"vmNics.ip={ip}", "platform=Nope"))["inventories"] == []


async def test_value_is_not_trimmed_and_higher_operators_win(zs: ZS) -> None:
    name = (await everything(zs))[0]["name"]
    assert (await query(zs, f"name= {name}"))["inventories"] == []
    misparsed = await zs.get(
        "/v1/vm-instances", params={"q": f"name={name}!=x"}
    )  # read as `name=<name>` != x
    assert misparsed.error_code == "SYS.1007"


async def test_default_limit_is_1000_and_reply_with_count(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(vms=1003))
    await zs.login()
    body = await query(zs, replyWithCount="true")
    assert (len(body["inventories"]), body["total"]) == (1000, 1003)
    assert "total" not in await query(zs, limit="1")


async def test_start_and_limit_page_through_everything(zs: ZS) -> None:
    every = [vm["uuid"] for vm in await everything(zs)]
    pages = [(await query(zs, start=str(s), limit="7"))["inventories"] for s in range(0, len(every), 7)]
    assert [vm["uuid"] for page in pages for vm in page] == every
    assert {len(page) for page in pages[:-1]} == {7}


async def test_count_replies_with_total_only(zs: ZS) -> None:
    running = sum(vm["state"] == "Running" for vm in await everything(zs))
    assert await query(zs, "state=Running", count="true") == {"total": running, "schema": {}}


async def test_sort_and_fields(zs: ZS) -> None:
    by_cpu = await query(zs, sort="-cpuNum", fields="uuid,cpuNum")
    cpus = [vm["cpuNum"] for vm in by_cpu["inventories"]]
    assert cpus == sorted(cpus, reverse=True)
    assert {tuple(vm) for vm in by_cpu["inventories"]} == {("uuid", "cpuNum")}
    names = [vm["name"] for vm in (await query(zs, sort="+name"))["inventories"]]
    assert names == sorted(names)
    unencoded_plus = await zs.call(
        "GET", "/v1/vm-instances?sort=+name", headers=zs.auth()
    )  # '+' decodes to ' '
    assert [vm["name"] for vm in unencoded_plus.json()["inventories"]] == names


async def test_query_reply_always_has_a_schema(zs: ZS) -> None:
    body = await query(zs, limit="2")
    assert body["schema"]["inventories[1]"] == "org.zstack.header.vm.VmInstanceInventory"
    assert body["schema"]["inventories[0].vmNics[0]"] == "org.zstack.header.vm.VmNicInventory"
    assert (await query(zs, "uuid=nope")) == {"inventories": [], "schema": {}}


async def test_get_by_uuid_path_ignores_other_parameters(zs: ZS) -> None:
    uuid = zs.sim.state.vm_uuids()[5]
    resp = await zs.get(f"/v1/vm-instances/{uuid}", params={"q": "state=Nope", "limit": "x"})
    assert [vm["uuid"] for vm in resp.json()["inventories"]] == [uuid]
    missing = await zs.get("/v1/vm-instances/0123456789abcdef0123456789abcdef")
    assert (missing.status, missing.json()["inventories"]) == (200, [])


@pytest.mark.parametrize(
    ("params", "text"),
    [
        (
            {"q": "name"},
            "Invalid query parameter. The 'name' in the parameter[q] doesn't contain any query operator."
            " Valid query operators are [!=, >=, <=, !?=, !~=, ~=, ?=, =, >, <, is null, not null]",
        ),
        (
            {"q": "name="},
            "Invalid query parameter. The 'name=' in parameter[q] is not a key-value pair split by =",
        ),
        ({"limit": "ten"}, "Invalid query parameter. 'limit' must be an integer"),
        ({"limit": "1.5"}, "Invalid query parameter. 'limit' must be an integer"),
        ({"start": "-"}, "Invalid query parameter. 'start' must be an integer"),
    ],
)
async def test_malformed_queries_are_400(zs: ZS, params: dict[str, str], text: str) -> None:
    resp = await zs.get("/v1/vm-instances", params=params)
    assert (resp.status, resp.text) == (400, text)


async def test_unknown_field_is_sys_1007(zs: ZS) -> None:
    resp = await zs.get("/v1/vm-instances", params={"q": "clockTrack=guest"})
    assert resp.error_code == "SYS.1007"


async def test_query_reply_shape_is_stable_for_a_seed(make_sim: MakeSim, zs_for: ZSFor) -> None:
    first, second = [zs_for(await make_sim(vms=10, seed=7)) for _ in range(2)]
    for zs in (first, second):
        await zs.login()
    assert await everything(first) == await everything(second)

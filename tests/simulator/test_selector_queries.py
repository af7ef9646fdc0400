"""The VM queries a selector policy resolves with (issue 10), answered as ZStack's QueryFacade/ZQL would.

Expected results are computed from the simulator's own state, independently of its query code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vmclock.simulator import Simulator
from vmclock.simulator.state import NewVm

from .conftest import MakeSim, ZSFor
from .rawhttp import ZS

WINDOWS = ("Windows", "WindowsVirtio")


async def query(zs: ZS, *conditions: str, **params: str) -> Any:
    resp = await zs.get("/v1/vm-instances", params=[*(("q", c) for c in conditions), *params.items()])
    assert resp.status == 200, resp.text
    return resp.json()


async def uuids(zs: ZS, *conditions: str) -> list[str]:
    return [vm["uuid"] for vm in (await query(zs, *conditions, fields="uuid"))["inventories"]]


def where(sim: Simulator, test: Callable[[str], bool]) -> list[str]:
    found = [uuid for uuid in sim.state.vm_uuids() if test(uuid)]
    assert found, "the seeded fleet should give the condition something to find"
    return found


def tags(sim: Simulator, uuid: str) -> list[str]:
    return sim.state.user_tags.tags_of(uuid)


@pytest.fixture
async def fleet(make_sim: MakeSim, zs_for: ZSFor) -> ZS:
    zs = zs_for(await make_sim(vms=300, seed=11))
    assert (await zs.login()).status == 200
    return zs


async def test_platforms(fleet: ZS) -> None:
    sim = fleet.sim
    assert {vm.platform for vm in sim.state.vms.values()} == {
        *WINDOWS,
        "Linux",
        "Paravirtualization",
        "Other",
    }
    windows = where(sim, lambda u: sim.state.vm(u).platform in WINDOWS)
    assert await uuids(fleet, "platform?=Windows,WindowsVirtio") == windows
    pv = where(sim, lambda u: sim.state.vm(u).platform == "Paravirtualization")
    assert await uuids(fleet, "platform=Paravirtualization") == pv


async def test_zones_and_clusters(fleet: ZS) -> None:
    sim = fleet.sim
    fields = {u: sim.state.vm(u).fields for u in sim.state.vm_uuids()}
    zones = sorted({f["zoneUuid"] for f in fields.values()})
    clusters = sorted({f["clusterUuid"] for f in fields.values()})
    assert (len(zones), len(clusters)) >= (3, 5)
    assert await uuids(fleet, f"zoneUuid={zones[0]}") == where(
        sim, lambda u: fields[u]["zoneUuid"] == zones[0]
    )
    two = clusters[:2]
    in_two = where(sim, lambda u: fields[u]["clusterUuid"] in two)
    assert await uuids(fleet, f"clusterUuid?={','.join(two)}") == in_two
    both = await uuids(fleet, f"zoneUuid={zones[1]}", "platform?=Windows,WindowsVirtio")
    assert both == where(
        sim, lambda u: fields[u]["zoneUuid"] == zones[1] and sim.state.vm(u).platform in WINDOWS
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("name~=win-%", lambda name: name.startswith("win-")),
        ("name~=WIN-SQL-%", lambda name: name.startswith("win-sql-")),  # collation ignores case
        ("name~=%-01_", lambda name: name[-4:-1] == "-01"),
        ("name!~=win-%", lambda name: not name.startswith("win-")),
        ("name~=%sql%", lambda name: "sql" in name),
    ],
)
async def test_name_like(fleet: ZS, condition: str, expected: Callable[[str], bool]) -> None:
    sim = fleet.sim
    assert await uuids(fleet, condition) == where(sim, lambda u: expected(sim.state.vm(u).name))


async def test_like_wildcards_are_escaped_with_a_backslash(fleet: ZS) -> None:
    state = fleet.sim.state
    underscore = state.add_vm(NewVm(name="win_lit-1")).uuid
    percent = state.add_vm(NewVm(name="win%lit-2")).uuid
    dash = state.add_vm(NewVm(name="win-lit-3")).uuid
    assert await uuids(fleet, "name~=win_lit-%") == [underscore, percent, dash]
    assert await uuids(fleet, r"name~=win\_lit-%") == [underscore]
    assert await uuids(fleet, r"name~=win\%lit-%") == [percent]
    assert await uuids(fleet, r"name!~=win\_%") == [u for u in state.vm_uuids() if u != underscore]


async def test_quotes_in_values(fleet: ZS) -> None:
    """A lone quote ends ZQL's string early (an internal error, 503); a doubled one is a quote."""
    quoted = fleet.sim.state.add_vm(NewVm(name="o'brien")).uuid
    assert await uuids(fleet, "name=o''brien") == [quoted]
    broken = await fleet.get("/v1/vm-instances", params={"q": "name=o'brien"})
    assert broken.error_code == "SYS.1000"
    broken_in = await fleet.get("/v1/vm-instances", params={"q": "name?=x,o'brien"})
    assert broken_in.error_code == "SYS.1000"


async def test_user_tags(fleet: ZS) -> None:
    sim = fleet.sim
    prod = where(sim, lambda u: "env::prod" in tags(sim, u))
    assert await uuids(fleet, "__userTag__=env::prod") == prod
    prod_a = where(sim, lambda u: {"env::prod", "team::a"} <= set(tags(sim, u)))
    assert await uuids(fleet, "__userTag__=env::prod", "__userTag__=team::a") == prod_a  # ANDed
    assert await uuids(fleet, "__userTag__=env::prod", "__userTag__=env::dev") == []
    either = where(sim, lambda u: bool({"team::a", "team::b"} & set(tags(sim, u))))
    assert await uuids(fleet, "__userTag__?=team::a,team::b") == either
    env = where(sim, lambda u: any(t.startswith("env::") for t in tags(sim, u)))
    assert await uuids(fleet, "__userTag__~=env::%") == env
    tagged = where(sim, lambda u: bool(tags(sim, u)))
    assert await uuids(fleet, "__userTag__ not null") == tagged
    assert await uuids(fleet, "__userTag__ is null") == []  # tagvo.tag is never NULL


@pytest.mark.parametrize(
    ("condition", "excluded"),
    [
        ("__userTag__!=env::prod", lambda t: "env::prod" in t),
        ("__userTag__!?=team::a,team::b", lambda t: bool({"team::a", "team::b"} & set(t))),
        ("__userTag__!~=env::%", lambda t: any(x.startswith("env::") for x in t)),
    ],
)
async def test_negated_user_tags_are_not_in(
    fleet: ZS, condition: str, excluded: Callable[[list[str]], bool]
) -> None:
    """TagZQLExtension: `uuid NOT IN (resources with a matching tag)`, so a VM carrying the tag and another
    one is excluded, and a VM without any tag is included."""
    sim = fleet.sim
    expected = where(sim, lambda u: not excluded(tags(sim, u)))
    assert any(not tags(sim, u) for u in expected)
    assert await uuids(fleet, condition) == expected


async def test_platform_tag_and_exclusions_together(fleet: ZS) -> None:
    sim = fleet.sim
    selected = where(sim, lambda u: sim.state.vm(u).platform in WINDOWS and "env::prod" in tags(sim, u))
    excluded = selected[:3]
    found = await uuids(
        fleet, "platform?=Windows,WindowsVirtio", "__userTag__=env::prod", f"uuid!?={','.join(excluded)}"
    )
    assert found == selected[3:]


async def test_pages_of_a_selection_with_fields_count_and_sort(fleet: ZS) -> None:
    sim = fleet.sim
    selected = where(sim, lambda u: sim.state.vm(u).platform in WINDOWS)
    by_name = sorted(selected, key=lambda u: sim.state.vm(u).name)
    pages = []
    for start in range(0, len(selected), 40):
        body = await query(
            fleet,
            "platform?=Windows,WindowsVirtio",
            fields="uuid,name,platform",
            limit="40",
            start=str(start),
            replyWithCount="true",
            sort="+name",
        )
        assert body["total"] == len(selected)
        assert {tuple(vm) for vm in body["inventories"]} == {("uuid", "name", "platform")}
        pages.append(body["inventories"])
    assert [vm["uuid"] for page in pages for vm in page] == by_name
    beyond = await query(
        fleet, "platform?=Windows,WindowsVirtio", start=str(len(selected)), replyWithCount="true"
    )
    assert (beyond["inventories"], beyond["total"]) == ([], len(selected))


async def test_a_ten_thousand_vm_selection_pages_completely(make_sim: MakeSim, zs_for: ZSFor) -> None:
    zs = zs_for(await make_sim(vms=10_000))
    await zs.login()
    state = zs.sim.state
    expected = [u for u in state.vm_uuids() if state.vm(u).platform in WINDOWS]
    found: list[str] = []
    while True:
        page = (
            await query(
                zs,
                "platform?=Windows,WindowsVirtio",
                fields="uuid,name,platform",
                limit="1000",
                start=str(len(found)),
            )
        )["inventories"]
        found += [vm["uuid"] for vm in page]
        if len(page) < 1000:
            break
    assert found == expected

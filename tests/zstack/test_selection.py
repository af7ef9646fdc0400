"""Selecting VMs by what they are, against the real simulator over loopback HTTP."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.simulator.inventory import Vm
from vmclock.simulator.state import NewVm
from vmclock.zstack import VmInventory, ZStackClient
from vmclock.zstack import selection as limits
from vmclock.zstack.options import MAX_REQUEST_LINE
from vmclock.zstack.selection import Selector, glob_matcher, like_pattern

from .recorder import RecordingProxy, Seen
from .support import MakeClient


def _uuids(sim: Simulator, wanted: Callable[[Vm], bool]) -> set[str]:
    return {uuid for uuid, vm in sim.state.vms.items() if wanted(vm)}


def _queries(proxy: RecordingProxy) -> list[Seen]:
    """The VM queries the client sent (the proxy also sees the login)."""
    return proxy.matching("GET", "/v1/vm-instances")


def _conditions(seen: Seen) -> list[str]:
    return parse_qs(urlsplit(seen.target).query)["q"]


def _add_vms(sim: Simulator, names: list[str]) -> dict[str, str]:
    """Create VMs with these names (as CreateVmInstance would); returns name -> uuid."""
    return {name: sim.state.add_vm(NewVm(name)).uuid for name in names}


@pytest.mark.parametrize(
    ("glob", "like"),
    [
        ("win-*", "win-%"),
        ("db-??", "db-__"),
        ("db_1*", "db_1%"),  # a literal _ stays _ (any one character): a superset, checked exactly after
        ("50%off", "50_off"),
        ("a\\b*", "a_b%"),  # MySQL would read a backslash as LIKE's escape character
    ],
)
def test_globs_become_like_patterns_that_match_at_least_as_much(glob: str, like: str) -> None:
    assert like_pattern(glob) == like


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("win-*", ["win-", "WIN-SQL-001", "win-\nx"], ["xwin-a", "win"]),
        ("db-??", ["db-01", "DB-ab"], ["db-1", "db-001"]),
        ("db_1", ["db_1", "DB_1"], ["dbx1"]),
        ("50%", ["50%"], ["500", "50"]),
        ("a[1]", ["a[1]"], ["a1"]),  # no character classes: only * and ? are special
    ],
)
def test_glob_matching_is_exact_apart_from_case(glob: str, matches: list[str], misses: list[str]) -> None:
    pattern = glob_matcher(glob)
    assert [name for name in matches if pattern.fullmatch(name)] == matches
    assert [name for name in misses if pattern.fullmatch(name)] == []


@pytest.mark.parametrize(
    "fields", [{}, {"exclude_vm_uuids": frozenset({"a" * 32})}, {"name_pattern": ""}, {"platforms": ()}]
)
def test_a_selector_that_selects_nothing_in_particular_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="at least one of platforms"):
        Selector(**fields)


async def test_platforms_select_the_same_inventories_a_uuid_lookup_returns(
    sim: Simulator, client: ZStackClient
) -> None:
    windows = _uuids(sim, lambda vm: vm.platform in ("Windows", "WindowsVirtio"))
    assert 0 < len(windows) < len(sim.state.vms)

    selected = await client.select_vms(Selector(platforms=("Windows", "WindowsVirtio")))

    assert selected == await client.get_vm_inventories(sorted(windows))
    assert all(isinstance(vm, VmInventory) and vm.host_uuid for vm in selected.values())


async def test_fields_and_together_and_list_values_or_together(sim: Simulator, client: ZStackClient) -> None:
    first = next(iter(sim.state.vms.values()))
    zone, cluster = first.fields["zoneUuid"], first.fields["clusterUuid"]
    platforms = ("Linux", "Other", first.platform)
    expected = _uuids(sim, lambda vm: vm.platform in platforms and vm.fields["clusterUuid"] == cluster)
    assert first.uuid in expected
    assert expected != _uuids(sim, lambda vm: vm.fields["clusterUuid"] == cluster)

    selected = await client.select_vms(
        Selector(platforms=platforms, zone_uuids=(zone,), cluster_uuids=(cluster,))
    )

    assert set(selected) == expected


@pytest.mark.parametrize(
    ("glob", "wanted"),
    [
        ("WIN-SQL-*", lambda name: name.startswith("win-sql-")),
        ("*-00?", lambda name: name[-4:-1] == "-00"),
    ],
)
async def test_name_pattern_is_a_case_insensitive_glob(
    sim: Simulator, client: ZStackClient, glob: str, wanted: Callable[[str], bool]
) -> None:
    expected = _uuids(sim, lambda vm: wanted(vm.name))
    assert expected

    assert set(await client.select_vms(Selector(name_pattern=glob))) == expected


@pytest.mark.parametrize(
    ("glob", "like", "selected"),
    [
        ("db_1", "db_1", ["db_1"]),
        ("50%off*", "50_off%", ["50%off"]),
        ("a\\b", "a_b", ["a\\b"]),
        ("d?_1", "d__1", ["db_1"]),
        ("o'neil-*", "o_neil-%", ["o'neil-1"]),  # a quote would end ZQL's string literal
    ],
)
async def test_literal_like_characters_in_a_glob_match_only_themselves(
    sim: Simulator, make_client: MakeClient, glob: str, like: str, selected: list[str]
) -> None:
    """ZStack's LIKE returns the look-alikes too (the server-side pattern is a superset); they are dropped."""
    names = _add_vms(sim, ["db_1", "dbx1", "50%off", "50xoff", "a\\b", "axb", "ab", "o'neil-1", "oxneil-1"])
    async with RecordingProxy(sim.endpoint) as proxy:
        client = make_client(proxy.endpoint)
        found = await client.select_vms(Selector(name_pattern=glob))
    assert found.keys() == {names[name] for name in selected}
    assert [_conditions(seen) for seen in _queries(proxy)] == [[f"name~={like}"]]


async def test_user_tags_must_all_be_carried_one_condition_each(
    sim: Simulator, make_client: MakeClient
) -> None:
    both, clock_only, gold_only = sim.state.vm_uuids()[:3]
    for uuid, tags in ((both, ["clock", "tier::gold"]), (clock_only, ["clock"]), (gold_only, ["tier::gold"])):
        for tag in tags:
            sim.state.add_user_tag(uuid, tag)
    async with RecordingProxy(sim.endpoint) as proxy:
        client = make_client(proxy.endpoint)

        assert set(await client.select_vms(Selector(user_tags=("clock", "tier::gold")))) == {both}
        assert set(await client.select_vms(Selector(user_tags=("clock",)))) == {both, clock_only}
        platform = sim.state.vm(gold_only).platform
        assert set(await client.select_vms(Selector(platforms=(platform,), user_tags=("tier::gold",)))) == (
            {gold_only} | ({both} if sim.state.vm(both).platform == platform else set())
        )
    first = _conditions(_queries(proxy)[0])
    assert sorted(first) == ["__userTag__=clock", "__userTag__=tier::gold"]


async def test_replies_carry_only_the_fields_status_shows(sim: Simulator, make_client: MakeClient) -> None:
    async with RecordingProxy(sim.endpoint) as proxy:
        client = make_client(proxy.endpoint)
        await client.select_vms(Selector(platforms=("Linux",)))
    (seen,) = _queries(proxy)
    query = parse_qs(urlsplit(seen.target).query)
    assert query["fields"] == [",".join(VmInventory.ZSTACK_FIELDS)]
    assert query["sort"] == ["+uuid"]


async def test_a_short_exclusion_list_is_sent_and_a_long_one_applied_locally(make_client: MakeClient) -> None:
    async with Simulator(SimulatorConfig(vms=1000, seed=7)) as sim, RecordingProxy(sim.endpoint) as proxy:
        client = make_client(proxy.endpoint)
        windows = sorted(_uuids(sim, lambda vm: vm.platform == "Windows"))
        assert len(windows) > 300
        for excluded in (windows[:3], windows[:300]):
            proxy.seen.clear()
            selector = Selector(platforms=("Windows",), exclude_vm_uuids=frozenset(excluded))

            selected = await client.select_vms(selector)

            assert set(selected) == set(windows) - set(excluded)
            sent = [c for seen in _queries(proxy) for c in _conditions(seen) if c.startswith("uuid!?=")]
            assert sent == ([f"uuid!?={','.join(excluded)}"] if len(excluded) == 3 else [])
            assert max(len(seen.request_line) + 2 for seen in _queries(proxy)) <= MAX_REQUEST_LINE


@pytest.mark.parametrize("page_size", [100, 1000])
async def test_selection_is_paged(make_client: MakeClient, page_size: int) -> None:
    async with Simulator(SimulatorConfig(vms=2000, seed=11)) as sim:
        client = make_client(sim.endpoint, page_size=page_size)
        expected = _uuids(sim, lambda vm: vm.platform in ("Windows", "WindowsVirtio"))

        selected = await client.select_vms(Selector(platforms=("Windows", "WindowsVirtio")))

        assert set(selected) == expected
        assert sim.stats.calls["QueryVmInstance"] == math.ceil(len(expected) / page_size)


async def test_the_largest_admissible_selector_fits_in_request_lines(
    sim: Simulator, make_client: MakeClient
) -> None:
    """Every list and text at the CRD's bound, every character 9 bytes once encoded: no request over 8 KiB,
    and only the longest list is split."""
    wide = "界"  # one character, three UTF-8 bytes

    def hexes(prefix: str, count: int) -> tuple[str, ...]:
        return tuple(f"{prefix}{i:031x}" for i in range(count))

    selector = Selector(
        platforms=("Windows", "WindowsVirtio", "Linux", "Paravirtualization", "Other"),
        zone_uuids=hexes("a", limits.MAX_ZONE_UUIDS),
        cluster_uuids=hexes("b", limits.MAX_CLUSTER_UUIDS),
        name_pattern=wide * limits.MAX_NAME_PATTERN,
        user_tags=tuple(
            f"{i}" + wide * (limits.MAX_USER_TAG_LENGTH - 1) for i in range(limits.MAX_USER_TAGS)
        ),
        exclude_vm_uuids=frozenset(hexes("c", limits.MAX_EXCLUDED_VMS)),
    )
    async with RecordingProxy(sim.endpoint) as proxy:
        client = make_client(proxy.endpoint)
        assert await client.select_vms(selector) == {}

    lines = [len(seen.request_line) + 2 for seen in _queries(proxy)]
    print(f"largest selector: {len(lines)} requests, longest request line {max(lines)} bytes")
    assert max(lines) <= MAX_REQUEST_LINE
    split = {c.split("?=")[0] for seen in _queries(proxy) for c in _conditions(seen) if "?=" in c}
    assert len(_queries(proxy)) > 1
    assert split == {"platform", "zoneUuid", "clusterUuid"}
    cluster_lists = [
        c for seen in _queries(proxy) for c in _conditions(seen) if c.startswith("clusterUuid?=")
    ]
    assert len(cluster_lists) == len(_queries(proxy))  # the longest list is the one spread over the requests


@pytest.mark.parametrize(
    "selector",
    [
        Selector(name_pattern="a!=b"),
        Selector(user_tags=("x>=y",)),
        Selector(zone_uuids=("a,b",)),
        Selector(platforms=("Windows",), user_tags=("",)),
        Selector(user_tags=("o'neil",)),
        Selector(user_tags=("a\\b",)),
    ],
)
async def test_values_zstack_would_misread_are_refused_before_sending(
    sim: Simulator, client: ZStackClient, selector: Selector
) -> None:
    with pytest.raises(ValueError, match="query field"):
        await client.select_vms(selector)
    assert sim.stats.calls["QueryVmInstance"] == 0

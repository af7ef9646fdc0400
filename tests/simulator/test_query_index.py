"""Queries by uuid read only the rows they name (a database's index), with the answers of a full scan.

A VM query with `uuid?=` of ten VMs used to render and test every VM of the fleet; on a shared machine that
CPU was charged to whatever a benchmark measured beside the simulator. The index may only leave out rows
no condition could match, so every answer here is compared with the full scan's.
"""

from __future__ import annotations

from typing import Any

import pytest

from vmclock.simulator import inventory
from vmclock.simulator.queries import Condition, QuerySpec, Table, every_row, run_query

from .conftest import MakeSim, ZSFor
from .rawhttp import ZS


async def uuids_found(zs: ZS, path: str, *conditions: str, **params: str) -> list[str]:
    """The VMs of the rows found: a VM's uuid, a resource config's resourceUuid."""
    resp = await zs.get(path, params=[*(("q", c) for c in conditions), *params.items()])
    assert resp.status == 200, resp.text
    return [row.get("resourceUuid") or row["uuid"] for row in resp.json()["inventories"]]


async def test_uuid_conditions_answer_what_a_full_scan_answers(zs: ZS) -> None:
    every = zs.sim.state.vm_uuids()
    picked = [every[7], every[2], every[11]]
    table_order = [u for u in every if u in picked]
    cases = [
        ([f"uuid?={','.join(picked)}"], table_order),
        ([f"uuid?={','.join(u.upper() for u in picked)},{'0' * 32}"], table_order),  # collation ignores case
        ([f"uuid={picked[0].upper()}"], [picked[0]]),
        ([f"uuid?={picked[0]}", f"uuid?={picked[1]}"], []),  # conditions are ANDed
        ([f"uuid= {picked[0]}"], []),  # the value is not trimmed
        ([f"uuid!={picked[0]}"], [u for u in every if u != picked[0]]),  # not a key lookup: a scan
        ([f"uuid?={','.join(picked)}", "state=Running"], [u for u in table_order if running(zs, u)]),
    ]
    for conditions, wanted in cases:
        assert await uuids_found(zs, "/v1/vm-instances", *conditions) == wanted, conditions
    paged = [
        await uuids_found(zs, "/v1/vm-instances", f"uuid?={','.join(picked)}", start=str(s), limit="2")
        for s in (0, 2)
    ]
    assert paged == [table_order[:2], table_order[2:]]
    counted = await zs.get("/v1/vm-instances", params=[("q", f"uuid?={','.join(picked)}"), ("count", "true")])
    assert counted.json()["total"] == 3


def running(zs: ZS, uuid: str) -> bool:
    return zs.sim.state.vm(uuid).state == "Running"


async def test_resource_configs_by_vm_answer_what_a_full_scan_answers(zs: ZS) -> None:
    every = zs.sim.state.vm_uuids()
    for config in zs.sim.state.configs.values():
        for uuid in (every[9], every[4], every[1], every[6]):
            config.set(uuid, config.global_value)
    path = "/v1/resource-configurations"
    scanned = await uuids_found(zs, path)  # no key condition: every row, in table order
    picked = {every[4], every[1], every[15]}  # every[15] has no row of its own
    wanted = [u for u in scanned if u in picked]
    assert len(wanted) == 2 * len(zs.sim.state.configs) > 0
    assert await uuids_found(zs, path, f"resourceUuid?={','.join(p.upper() for p in picked)}") == wanted
    name = next(iter(zs.sim.state.configs))
    assert await uuids_found(zs, path, f"resourceUuid={every[4]}", f"name={name}") == [every[4]]


async def test_a_query_by_uuid_renders_only_the_vms_it_names(
    make_sim: MakeSim, zs_for: ZSFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    zs = zs_for(await make_sim(vms=2000))
    await zs.login()
    picked = zs.sim.state.vm_uuids()[100:110]
    rendered: list[str] = []
    real = inventory.Vm.inventory

    def counted(vm: inventory.Vm) -> dict[str, Any]:
        rendered.append(vm.uuid)
        return real(vm)

    monkeypatch.setattr(inventory.Vm, "inventory", counted)
    assert await uuids_found(zs, "/v1/vm-instances", f"uuid?={','.join(picked)}") == picked
    assert sorted(rendered) == sorted(picked)


def test_an_index_is_only_asked_for_the_values_a_key_condition_allows() -> None:
    asked: list[frozenset[str] | None] = []
    rows = [{"uuid": "a1"}, {"uuid": "B2"}, {"uuid": "c3"}]

    def source(keys: Any) -> list[dict[str, Any]]:
        asked.append(keys)
        return rows

    table = Table("T", source, frozenset({"uuid"}), key="uuid")
    found = run_query(table, QuerySpec(conditions=[Condition("uuid", "?=", r"A1,b2,x\_y")]))
    assert [row["uuid"] for row in found["inventories"]] == ["a1", "B2"]
    assert asked == [frozenset({"a1", "b2", "x\\_y"})]
    run_query(Table("T", every_row(rows), frozenset({"uuid"})), QuerySpec())  # no key: a plain list

"""A hostile management node harms only its own client (design §6.2, issue 9).

Each attack is served for real over loopback by tests/hostile/server.py (its own process). For each one the
client must end with one typed ZStackError (or, for oversized texts, a result cut to status's limits) after
few requests and little time, while the peak RSS of this process grows by less than MAX_GROWTH_MIB.
"""

from __future__ import annotations

import asyncio
import logging
import time
import tracemalloc
from typing import Any

import pytest

from vmclock.zstack import AccessKeyCredentials, ZStackError, replycost
from vmclock.zstack.budget import process_budget
from vmclock.zstack.errors import BAD_REPLY, GARBAGE, JOB_TIMEOUT, REDIRECT, REPLY_TOO_LARGE
from vmclock.zstack.models import FIELD_MAX, INT32_MAX, NAME_MAX

from .conftest import Cost, HostileServer

MAX_GROWTH_MIB = 64  # the Deployment's limit is 384Mi; one hostile tenant may cost a small part of it
HEADROOM_MIB = 384 - 120  # the Deployment's limit less what the operator takes idle
QUICK = 5.0  # seconds; generous for a loaded 2-core machine, far below what each attack costs unbounded
VM = "a" * 32


def failed(
    outcome: object, code: str, cost: Cost, *, requests: int = 1, seconds: float = QUICK
) -> ZStackError:
    assert isinstance(outcome, ZStackError), outcome
    assert outcome.code == code, outcome
    assert len(str(outcome)) < 1024
    assert cost.requests <= requests, cost
    assert cost.seconds < seconds, cost
    assert cost.rss_growth_mib < MAX_GROWTH_MIB, cost
    return outcome


async def test_huge_declared_body_is_refused_before_reading(hostile: HostileServer) -> None:
    client = hostile.client("huge")
    outcome, cost = await hostile.measure("huge", client.check_ready(), "huge body (600 MB, declared)")
    failed(outcome, REPLY_TOO_LARGE, cost)


async def test_endless_body_is_cut_at_the_cap(hostile: HostileServer) -> None:
    client = hostile.client("endless")
    outcome, cost = await hostile.measure(
        "endless", client.get_vm_inventories([VM]), "endless body (chunked)"
    )
    failed(outcome, REPLY_TOO_LARGE, cost)


async def test_endless_plain_text_error_is_cut_at_the_cap(hostile: HostileServer) -> None:
    client = hostile.client("endless-text")
    outcome, cost = await hostile.measure("endless-text", client.get_version(), "endless plain-text 400")
    failed(outcome, REPLY_TOO_LARGE, cost)


async def test_gzip_bomb_is_never_decompressed(hostile: HostileServer) -> None:
    client = hostile.client("gzip")
    outcome, cost = await hostile.measure("gzip", client.get_version(), "gzip bomb (128 MiB inflated)")
    failed(outcome, BAD_REPLY, cost)


async def test_a_smaller_cap_is_honoured(hostile: HostileServer) -> None:
    client = hostile.client("endless", max_reply_bytes=64 * 1024)
    outcome, cost = await hostile.measure("endless", client.check_ready(), "endless body, 64 KiB cap")
    failed(outcome, REPLY_TOO_LARGE, cost)


async def test_digit_flood_in_get_version_is_refused_at_once(hostile: HostileServer) -> None:
    client = hostile.client("digits")
    outcome, cost = await hostile.measure("digits", client.get_version(), "getVersion: 1 MB of digits")
    failed(outcome, BAD_REPLY, cost, seconds=1.0)


async def test_endless_full_pages_without_total_stop_at_the_row_cap(hostile: HostileServer) -> None:
    client = hostile.client("pages", max_listing_rows=5000, page_size=500)
    outcome, cost = await hostile.measure(
        "pages", client.get_clock_tracks([VM], existing=[VM]), "endless full pages, no total"
    )
    # getVersion, login, the VM's own config, then at most 5000 / 500 + 1 pages of global configs.
    failed(outcome, REPLY_TOO_LARGE, cost, requests=3 + 11)


async def test_more_rows_than_asked_is_a_bad_reply(hostile: HostileServer) -> None:
    client = hostile.client("overfull")
    await client.login()
    outcome, cost = await hostile.measure(
        "overfull", client.get_vm_inventories([VM]), "page with more rows than limit"
    )
    failed(outcome, BAD_REPLY, cost)


async def test_deeply_nested_json_is_a_bad_reply_not_a_recursion_error(hostile: HostileServer) -> None:
    client = hostile.client("nested")
    outcome, cost = await hostile.measure("nested", client.get_version(), "nested JSON (100k levels)")
    failed(outcome, BAD_REPLY, cost)


async def test_giant_error_text_is_cut_and_never_logged_whole(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = hostile.client("error-text")
    await client.login()
    outcome, cost = await hostile.measure(
        "error-text", client.get_vm_inventories([VM]), "giant error text (2 x 3 MB)"
    )
    err = failed(outcome, "SYS.1006", cost)
    assert len(err.description) <= 256
    assert len(err.details) <= 512
    assert all(len(record.getMessage()) < 2048 for record in caplog.records)


async def test_giant_inventory_strings_are_cut_to_status_limits(hostile: HostileServer) -> None:
    client = hostile.client("inventory")
    await client.login()
    outcome, cost = await hostile.measure(
        "inventory", client.get_vm_inventories([VM, "b" * 32]), "giant inventory strings"
    )
    assert isinstance(outcome, dict), outcome
    assert cost.rss_growth_mib < MAX_GROWTH_MIB
    assert cost.seconds < QUICK
    inventory = outcome[VM]
    assert len(inventory.name) == NAME_MAX
    assert len(inventory.state) == len(inventory.platform) == len(inventory.last_op_date) == FIELD_MAX
    assert (inventory.cpu_num, inventory.memory_size) == (INT32_MAX, 0)


async def test_api_timeout_of_1e15_is_clamped(hostile: HostileServer) -> None:
    client = hostile.client("timeout", max_job_timeout=1.0, request_timeout=1.0, poll_max_delay=0.05)
    call = asyncio.wait_for(client.set_clock_track(VM, "guest"), timeout=30)
    outcome, cost = await hostile.measure("timeout", call, "apiTimeout 1e15, job never ends")
    # Polled until the clamped timeout (1 s) plus one request timeout and one poll interval of grace.
    failed(outcome, JOB_TIMEOUT, cost, requests=200, seconds=4.0)


async def test_redirect_is_never_followed(hostile: HostileServer) -> None:
    client = hostile.client("redirect")
    calls: list[tuple[str, Any]] = [
        ("redirect: getVersion (PUT)", client.get_version()),
        ("redirect: readiness (GET)", client.check_ready()),
        ("redirect: login (PUT)", client.login()),
    ]
    for label, call in calls:
        outcome, cost = await hostile.measure("redirect", call, label)
        failed(outcome, REDIRECT, cost)
    assert (await hostile.requests()).get("bystander", 0) == 0


async def test_echoed_accesskey_signatures_are_masked(hostile: HostileServer) -> None:
    client = hostile.client("echo", AccessKeyCredentials("AKID0123", "the-secret-key"))
    outcome, cost = await hostile.measure(
        "echo", client.get_vm_inventories([VM]), "Authorization echoed back"
    )
    err = failed(outcome, "ID.1002", cost)
    assert "AKID0123:***" in err.description
    assert "AKID0123:***" in err.details
    assert "=" not in err.details  # the signature's base64 padding went with it


async def test_near_cap_replies_on_three_connections_stay_within_the_reply_budget(
    hostile: HostileServer, other_server: str
) -> None:
    """64 writes in flight per connection (as the controller sizes them for maxConcurrentRequests 50) on
    three connections, each answered with just under 8 MiB: 1.5 GiB of replies that, decoded at once, would
    take ~3x that. They wait for the process's reply budget instead, and every write still succeeds; another
    tenant's small replies meanwhile do not wait behind them (strictly first come, first served, they time
    out)."""
    clients = [
        hostile.client("big-writes", max_concurrent_requests=50, request_timeout=300) for _ in range(3)
    ]
    for client in clients:
        await client.login()
    bystander = hostile.client("calm", base=other_server)
    slowest: list[float] = []

    async def bystander_calls(attack: asyncio.Future[list[object]]) -> None:
        while not attack.done():
            started = time.perf_counter()
            await bystander.get_version()
            slowest.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)

    async def writes() -> list[object]:  # started by measure, not before (gather would start them at once)
        attack = asyncio.gather(
            *(client.set_clock_track(f"{n:032x}", "guest") for client in clients for n in range(64))
        )
        await asyncio.gather(attack, bystander_calls(attack))
        return attack.result()

    outcome, cost = await hostile.measure("big-writes", writes(), "3 x 64 near-cap replies in flight")
    assert isinstance(outcome, list), outcome
    assert len(outcome) == 3 * 64
    assert cost.requests == 3 * 64
    assert cost.rss_growth_mib < min(HEADROOM_MIB, process_budget().limit / 2**20 + MAX_GROWTH_MIB), cost
    assert len(slowest) > 10
    assert max(slowest) < QUICK, sorted(slowest)[-5:]


async def test_reading_a_near_cap_body_allocates_no_more_than_the_budget_holds_for_it(
    hostile: HostileServer,
) -> None:
    """What the transport allocates reading a body (text, so nothing is decoded) stays within what
    replycost.reading reserves for it, besides aiohttp's own read buffer (2 x 64 KiB per connection)."""
    client = hostile.client("near-cap-text")
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with pytest.raises(ZStackError) as failed:
            await client.check_ready()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert failed.value.code == GARBAGE  # a 200 that is not JSON, read whole
    body = 8 * 1024 * 1024 - 64
    assert peak <= replycost.reading(body) + 256 * 1024, (peak, replycost.reading(body))

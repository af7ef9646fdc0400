"""What decoding a reply at the size cap costs the event loop (design §6.2: no parse blocks it noticeably).

The C json decoder holds the GIL from start to end (a thread would not free the loop either), so the
transport admits only bodies that are cheap to decode (jsonguard) and decodes large ones a slice at a time
(jsonstream). Each body here is the worst of its kind that the client either admits or must refuse, at the
default 8 MiB cap. Measured through `Reply.read`, the transport's own path, while a ticker task records the
longest the loop went without a turn; the stall and the total time land in the table of costs (the
"time" column shows the stall, the outcome the total). The stall is the loop thread's CPU time between two
turns (`time.thread_time`): that is what the code controls, while wall time between turns also counts the
moments other processes of a busy machine held the CPU (a cold `make test` compiles Go beside the tests).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from vmclock.zstack.jsonguard import MAX_VALUES, ReplyRejected
from vmclock.zstack.options import ClientOptions
from vmclock.zstack.replies import Reply

from .conftest import MEASURED, Cost

CAP = ClientOptions().max_reply_bytes
MAX_STALL_SECONDS = 0.1  # CPU seconds of the loop thread between two turns


def fill(head: bytes, unit: bytes, tail: bytes, *, size: int = CAP, count: int | None = None) -> bytes:
    """head + unit repeated (as often as fits in `size`, or `count` times), comma-separated, + tail."""
    times = count if count is not None else (size - len(head) - len(tail)) // (len(unit) + 1)
    return head + b",".join([unit] * times) + tail


def vm_row(n: int) -> bytes:
    row = {
        "uuid": f"{n:032x}", "name": f"vm-{n:06d}-" + "n" * 200, "state": "Running", "platform": "Windows",
        "hypervisorType": "KVM", "zoneUuid": "z" * 32, "clusterUuid": "c" * 32, "hostUuid": "h" * 32,
        "lastHostUuid": "h" * 32, "cpuNum": 4, "memorySize": 8589934592,
        "lastOpDate": "Jan 6, 2017 3:51:16 AM",
    }  # fmt: skip
    return json.dumps(row).encode()


BODIES: dict[str, Callable[[], bytes]] = {
    # Admitted: as many values as allowed, as cheaply written as possible (the most objects per byte).
    "parse: 100k {} (most admitted)": lambda: fill(b"[", b"{}", b"]", count=MAX_VALUES // 2 - 1),
    "parse: 200k 0 (most admitted)": lambda: fill(b"[", b"0", b"]", count=MAX_VALUES - 1),
    "parse: 8 MiB of VM rows, long names": lambda: fill(b'{"inventories":[', vm_row(1), b"]}"),
    "parse: one 8 MiB string": lambda: b'{"details":"' + b"x" * (CAP - 20) + b'"}',
    "parse: 8 MiB of \\u escapes": lambda: b'{"d":"' + b"\\u00e9" * ((CAP - 10) // 6) + b'"}',
    # Refused: the cost is the check's alone.
    "refuse: 8 MiB of [] (4M values)": lambda: fill(b"[", b"[]", b"]"),
    "refuse: 8 MiB of 0 (4M values)": lambda: fill(b"[", b"0", b"]"),
    "refuse: 8 MiB of [ (depth)": lambda: b"[" * CAP,
    "refuse: 8 MiB of 4000-digit numbers": lambda: fill(b"[", b"9" * 4000, b"]"),
}


async def longest_stall(work: Callable[[], object]) -> tuple[float, float, str]:
    """(longest gap between loop turns, total seconds, outcome) while `work()` is awaited."""
    done = False
    longest = 0.0

    async def ticker() -> None:
        nonlocal longest
        last = time.thread_time()
        while not done:
            await asyncio.sleep(0)
            now = time.thread_time()
            longest, last = max(longest, now - last), now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    try:
        await work()  # type: ignore[misc]
        outcome = "ok"
    except ReplyRejected:
        outcome = "refused"
    total = time.perf_counter() - started
    done = True
    await ticking
    return longest, total, outcome


@pytest.mark.parametrize("label", list(BODIES))
async def test_decoding_at_the_cap_never_stalls_the_loop(label: str) -> None:
    body = BODIES[label]()
    assert len(body) <= CAP
    runs = [await longest_stall(lambda: Reply.read(200, body)) for _ in range(3)]
    stall, total, outcome = min(runs)  # the machine is shared: the best of three
    assert outcome == ("refused" if label.startswith("refuse") else "ok")
    MEASURED.append(Cost(label, f"{outcome}, {total * 1000:.0f}ms in all", stall, 0.0, 0))
    assert stall < MAX_STALL_SECONDS

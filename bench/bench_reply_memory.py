"""Benchmark: what decoding one reply allocates, against what the reply budget reserves for it (replycost).

For the bodies that cost the most per byte of each kind, at the default 8 MiB cap (or the most values
jsonguard admits), tracemalloc measures the peak the decoder adds to the body it was given; the budget must
reserve at least body + peak (`decoding`), and `most` bounds any body of that size before a byte is read.
The constants in replycost (READ_FACTOR, BYTES_PER_VALUE, the widths) come from these numbers.

    .venv/bin/python bench/bench_reply_memory.py

The last line of stdout is the results as one JSON document.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from vmclock.zstack import jsonstream, replycost
from vmclock.zstack.jsonguard import MAX_VALUES
from vmclock.zstack.options import ClientOptions

CAP = ClientOptions().max_reply_bytes - 64
MIB = 1024 * 1024


def bodies() -> dict[str, bytes]:
    text = CAP - 32
    return {
        "ascii string": b'{"name":"' + b"x" * text + b'"}',
        "one emoji in ascii": '{"name":"\U0001f600'.encode() + b"x" * text + b'"}',
        "CJK text": b'{"name":"' + "中".encode() * (text // 3) + b'"}',
        "escaped emoji in ascii": b'{"name":"\\ud83d\\ude00' + b"x" * text + b'"}',
        "escaped quotes": b'{"name":"' + b'\\"' * (text // 2) + b'"}',
        "distinct keys": b"{" + b",".join(b'"k%07d":null' % n for n in range(MAX_VALUES - 10)) + b"}",
        "empty objects": b"[" + b",".join([b"{}"] * (MAX_VALUES // 2 - 1)) + b"]",
        "short strings": b"[" + b",".join(b'"%d"' % n for n in range(MAX_VALUES - 1)) + b"]",
        "floats": b"[" + b",".join([b"1.5"] * (MAX_VALUES - 1)) + b"]",
    }


async def measure(raw: bytes) -> dict[str, float]:
    counted: list[int] = []

    async def before_decoding(values: int) -> None:
        counted.append(values)

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    await jsonstream.decode(raw, before_decoding)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    used = len(raw) + peak
    reserved = replycost.decoding(raw, counted[0])
    return {
        "body_mib": len(raw) / MIB,
        "values": counted[0],
        "used_mib": used / MIB,
        "reserved_mib": reserved / MIB,
        "reserved_per_used": reserved / used,
        "most_mib": replycost.most(len(raw)) / MIB,
    }


async def main() -> None:
    results = {name: await measure(raw) for name, raw in bodies().items()}
    print(f"{'body':<24} {'size':>8} {'values':>8} {'used':>10} {'reserved':>10} {'ratio':>6} {'most':>10}")
    for name, r in results.items():
        print(
            f"{name:<24} {r['body_mib']:>6.2f}Mi {r['values']:>8} {r['used_mib']:>8.2f}Mi "
            f"{r['reserved_mib']:>8.2f}Mi {r['reserved_per_used']:>6.2f} {r['most_mib']:>8.2f}Mi"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())

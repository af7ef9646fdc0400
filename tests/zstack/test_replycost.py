"""What the budget reserves for decoding a reply covers what decoding it really allocates (tracemalloc), for
the bodies that cost the most per byte of each kind: wide text, escapes that widen strings, dense values."""

from __future__ import annotations

import tracemalloc

import pytest

from vmclock.zstack import jsonstream, replycost
from vmclock.zstack.jsonguard import MAX_VALUES

SIZE = 1024 * 1024


def keys(count: int) -> bytes:
    return b"{" + b",".join(b'"k%07d":null' % n for n in range(count)) + b"}"


BODIES = {
    "ascii string": b'{"name":"' + b"x" * SIZE + b'"}',
    "one emoji in ascii": '{"name":"\U0001f600'.encode() + b"x" * SIZE + b'"}',
    "CJK text": b'{"name":"' + "中".encode() * (SIZE // 3) + b'"}',
    "escaped emoji in ascii": b'{"name":"\\ud83d\\ude00' + b"x" * SIZE + b'"}',
    "escaped CJK in ascii": b'{"name":"\\u4e2d' + b"x" * SIZE + b'"}',
    "distinct keys": keys(MAX_VALUES - 10),
    "empty objects": b"[" + b",".join([b"{}"] * (MAX_VALUES // 2 - 1)) + b"]",
    "short strings": b"[" + b",".join(b'"%d"' % n for n in range(MAX_VALUES - 1)) + b"]",
    "floats": b"[" + b",".join([b"1.5"] * (MAX_VALUES - 1)) + b"]",
}


@pytest.mark.parametrize("raw", BODIES.values(), ids=BODIES.keys())
async def test_reserved_decoding_covers_what_decoding_allocates(raw: bytes) -> None:
    counted: list[int] = []

    async def before_decoding(values: int) -> None:
        counted.append(values)

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        decoded = await jsonstream.decode(raw, before_decoding)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert decoded
    reserved = replycost.decoding(raw, counted[0])
    assert len(raw) + peak <= reserved <= replycost.most(len(raw))
    # Not a blanket reservation either: BYTES_PER_VALUE is what the costliest values take (dict keys), so
    # dense arrays of cheap ones are over-reserved most, by ~4.3x.
    assert reserved < 5 * (len(raw) + peak)

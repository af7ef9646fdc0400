"""Decode a large reply a piece at a time, letting the event loop run in between.

The C json decoder holds the GIL from the first byte to the last, so neither a thread nor a bigger budget
helps: a page of 10,000 VM rows (~4.5 MB) blocks whatever else the loop serves (watches, probes, other
tenants) for the whole decode, well over the ~50 ms that counts as noticeable. ZStack's bulky replies are
arrays at the top level of the body (`inventories`), so those arrays are decoded element by element with
the C decoder's `raw_decode` and the loop gets a turn every SLICE_SECONDS; everything else is decoded whole
(a single element is bounded by jsonguard's value budget: tens of milliseconds at the very most). The
admission check before it yields the same way.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from vmclock.zstack.jsonguard import SLICE_SECONDS, admit, reject_constant

_DECODER = json.JSONDecoder(parse_constant=reject_constant)
_WHITESPACE = re.compile(r"[ \t\n\r]*")

BeforeDecoding = Callable[[int], Awaitable[None]]


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self._since = time.monotonic()

    def peek(self) -> str:
        match = _WHITESPACE.match(self.text, self.at)
        self.at = match.end() if match else self.at
        return self.text[self.at : self.at + 1]

    def take(self, expected: str) -> str:
        found = self.peek()
        if found not in expected:
            raise ValueError(f"expected one of {expected!r} at character {self.at}")
        self.at += 1
        return found

    def value(self) -> Any:
        self.peek()
        value, self.at = _DECODER.raw_decode(self.text, self.at)
        return value

    async def pause(self) -> None:
        if time.monotonic() - self._since > SLICE_SECONDS:
            await asyncio.sleep(0)
            self._since = time.monotonic()

    async def array(self) -> list[Any]:
        """Element by element when the elements are containers (rows); an array of scalars is decoded whole,
        which the C decoder does far faster (200k of them, the whole value budget, in about 25 ms)."""
        start = self.at
        self.take("[")
        if self.peek() not in ("{", "["):
            self.at = start
            return self.value()  # type: ignore[no-any-return]
        items: list[Any] = []
        while True:
            items.append(self.value())
            await self.pause()
            if self.take(",]") == "]":
                return items

    async def member_value(self) -> Any:
        return await self.array() if self.peek() == "[" else self.value()

    async def object(self) -> dict[str, Any]:
        self.take("{")
        members: dict[str, Any] = {}
        if self.peek() == "}":
            self.at += 1
            return members
        while True:
            if self.peek() != '"':
                raise ValueError(f"object key at character {self.at} is not a string")
            key = self.value()
            self.take(":")
            members[key] = await self.member_value()
            if self.take(",}") == "}":
                return members


async def decode(raw: bytes, before_decoding: BeforeDecoding | None = None) -> Any:
    """A reply body admitted by jsonguard.admit, then decoded, yielding to the loop as it goes; ValueError
    if it is not valid JSON (NaN and Infinity included), ReplyRejected if it is over a bound.

    `before_decoding` is awaited with the number of values admitted before any of them is built: the
    transport holds the memory decoding will take (budget) from then on."""
    values = await admit(raw)
    if before_decoding is not None:
        await before_decoding(values)
    reader = _Reader(raw.decode("utf-8"))
    value = await (reader.object() if reader.peek() == "{" else reader.member_value())
    if reader.peek():
        raise ValueError(f"extra data at character {reader.at}")
    return value

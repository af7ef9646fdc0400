"""Admit a reply's JSON for decoding only after proving, in linear C-speed passes, that it is cheap to decode.

`json.loads` recurses once per nesting level (deep input raises RecursionError) and spends CPU, while
holding the GIL, on every value it builds: an 8 MiB body of `[],[],...` took over a second. ZStack's
replies are shallow (about six levels: inventories, rows, vmNics, usedIps, plus an error's cause chain) and
a page of 1000 full VM inventories has about 60 thousand values. So before decoding, the structure is
measured without building anything:

1. escaped backslashes and quotes are removed, so every remaining `"` opens or closes a string;
2. slice by slice, the text between quotes (every string) is dropped, leaving what is outside strings;
3. there, a number longer than a Java long is refused (decimal to int is quadratic in Python);
4. values are counted as commas plus containers (every value but the last of a container is followed by
   a comma; a container followed by one counts twice, a harmless overcount), refusing as soon as the
   count passes the budget;
5. nesting is measured by deleting innermost `[]` pairs once per allowed level: whatever survives
   `max_depth` passes is nested deeper than that.

The check runs as steps (`_steps`), so that `admit` can give the event loop a turn between slices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

MAX_DEPTH = 20  # ZStack nests about 6 levels; error cause chains add one each and rarely exceed a few
MAX_VALUES = 200_000  # ~13 per fields=-projected VM row: a 10,000-row page (~130k) still fits
# Java's long has 19 digits; Python turns a decimal string into an int in quadratic time, and a reply of
# 4000-digit numbers (json allows 4300) would cost a third of a second.
MAX_DIGITS = 20
SLICE_SECONDS = 0.005  # how long the loop may wait for its next turn while a large reply is checked

_SLICE = 64 * 1024
_STRUCTURE = b"[]{},"
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_DIGITS = bytes(ord("0") if ord("0") <= b <= ord("9") else ord(".") for b in range(256))
_LONG_NUMBER = b"0" * (MAX_DIGITS + 1)


class ReplyRejected(Exception):
    """The reply is over a bound: refused before decoding. Not a ValueError, so "not JSON" stays distinct."""


def looks_like_json(raw: bytes) -> bool:
    """ZStack's JSON replies are objects (arrays at most); anything else is plain text or HTML."""
    return raw.lstrip()[:1] in (b"{", b"[")


async def admit(raw: bytes) -> int:
    """The number of values `raw` holds at most (what decoding it will cost: replycost); ReplyRejected if
    that is more than MAX_VALUES, a number is longer than MAX_DIGITS, or it nests deeper than MAX_DEPTH.
    The event loop runs every SLICE_SECONDS meanwhile."""
    since = time.monotonic()
    counted = 0
    for so_far in _steps(raw, MAX_DEPTH, MAX_VALUES):
        counted = so_far
        if time.monotonic() - since > SLICE_SECONDS:
            await asyncio.sleep(0)
            since = time.monotonic()
    return counted


def _steps(raw: bytes, max_depth: int, max_values: int) -> Iterator[int]:
    """Yields the values counted so far after each slice."""
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    counted = 1
    yield counted
    brackets: list[bytes] = []
    digits_before = b""
    inside = 0  # 1 when the slice starts inside a string
    for at in range(0, len(unescaped), _SLICE):
        pieces = unescaped[at : at + _SLICE].split(b'"')
        outside = b"".join(pieces[inside::2])
        inside = (inside + len(pieces) - 1) % 2
        digits = outside.translate(_DIGITS)
        if _LONG_NUMBER in digits_before + digits:
            raise ReplyRejected(f"reply JSON has a number longer than {MAX_DIGITS} digits")
        digits_before = digits[-MAX_DIGITS:]
        structure = outside.translate(_BRACKETS, _NOT_STRUCTURE)
        nesting = structure.replace(b",", b"")
        counted += len(structure) - len(nesting) + nesting.count(b"[")  # commas + containers
        if counted > max_values:
            raise ReplyRejected(f"reply JSON has more than {max_values} values")
        brackets.append(nesting)
        yield counted
    _check_depth(b"".join(brackets), max_depth)


def _check_depth(nesting: bytes, max_depth: int) -> None:
    run = b"[" * (max_depth + 1)  # a quick verdict for the usual attack, a long run of openings
    for _ in range(max_depth):
        if not nesting or run in nesting:
            break
        shorter = nesting.replace(b"[]", b"")
        if len(shorter) == len(nesting):
            return  # unbalanced, so not JSON at all: json.loads says so
        nesting = shorter
    if nesting:
        raise ReplyRejected(f"reply JSON is nested deeper than {max_depth} levels")


def reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which no Java/Gson server sends; a NaN deadline never expires.
    raise ValueError(f"JSON constant {name} is not allowed")

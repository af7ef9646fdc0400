"""Decode a reply's JSON only after proving, in a few linear C-speed passes, that it is cheap to decode.

`json.loads` recurses once per nesting level (deep input raises RecursionError) and spends CPU, while
holding the GIL, on every value it builds: a 4 MiB body of `[],[],...` took over a second, and parsing in
a thread does not help because the C decoder never lets go of the GIL. ZStack's replies are shallow (about
six levels: inventories, rows, vmNics, usedIps, plus an error's cause chain) and a page of 1000 full VM
inventories has about 60 thousand values. So before decoding, the structure is measured without
building anything:

1. escaped backslashes and quotes are removed, so every remaining `"` opens or closes a string;
2. the text between quotes (every string) is dropped, leaving only the structure;
3. numbers longer than a Java long are refused (decimal to int is quadratic in Python);
4. values are counted (every value but the last of a container is followed by a comma);
5. nesting is measured by deleting innermost `[]` pairs once per allowed level: whatever survives
   `max_depth` passes is nested deeper than that.

A reply over either bound is refused whole; anything that passes decodes in tens of milliseconds at most.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 20  # ZStack nests about 6 levels; error cause chains add one each and rarely exceed a few
MAX_VALUES = 200_000  # ~13 values per fields=-projected VM row: a 10,000-row page still fits

_STRUCTURE = b"[]{},"
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_SLICE = 64 * 1024
# Java's long has 19 digits; Python turns a decimal string into an int in quadratic time, and a reply of
# 4000-digit numbers (json allows 4300) would cost a third of a second.
MAX_DIGITS = 20
_DIGITS = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(".") for b in range(256))
_LONG_NUMBER = b"0" * (MAX_DIGITS + 1)


class ReplyRejected(Exception):
    """The reply is over a bound: refused before decoding. Not a ValueError, so "not JSON" stays distinct."""


def looks_like_json(raw: bytes) -> bool:
    """ZStack's JSON replies are objects (arrays at most); anything else is plain text or HTML."""
    return raw.lstrip()[:1] in (b"{", b"[")


def check_structure(raw: bytes, *, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> None:
    """Raise ReplyRejected if `raw` has more than `max_values` values or nests deeper than `max_depth`."""
    structure, digits = _outside_strings(raw.replace(b"\\\\", b"").replace(b'\\"', b""))
    if _LONG_NUMBER in digits:
        raise ReplyRejected(f"reply JSON has a number longer than {MAX_DIGITS} digits")
    nesting = structure.replace(b",", b"")
    if len(structure) - len(nesting) + len(nesting) // 2 + 1 > max_values:  # commas + containers
        raise ReplyRejected(f"reply JSON has more than {max_values} values")
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


def _outside_strings(unescaped: bytes) -> tuple[bytes, bytes]:
    """What lies outside strings: its brackets (all as `[]`) and commas, and its digits (as `0`, others `.`).

    Done a slice at a time to bound the temporaries.
    Splitting on quotes leaves the string contents at every other piece; a slice that ends inside a string
    makes the next one start inside it. Slicing keeps the pieces of one split to a few MiB whatever the
    body holds (a body of `"",` repeated would otherwise make a million small objects at once).
    """
    structure: list[bytes] = []
    digits: list[bytes] = []
    inside = 0
    for at in range(0, len(unescaped), _SLICE):
        pieces = unescaped[at : at + _SLICE].split(b'"')
        outside = b"".join(pieces[inside::2])
        structure.append(outside.translate(_BRACKETS, _NOT_STRUCTURE))
        digits.append(outside.translate(_DIGITS))
        inside = (inside + len(pieces) - 1) % 2
    return b"".join(structure), b"".join(digits)


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which no Java/Gson server sends; a NaN deadline never expires.
    raise ValueError(f"JSON constant {name} is not allowed")


def decode(raw: bytes) -> Any:
    """The decoded JSON of a reply that passed `check_structure`; ValueError if it is not valid JSON."""
    check_structure(raw)
    return json.loads(raw, parse_constant=_reject_constant)

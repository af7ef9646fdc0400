"""How much memory one reply costs from its first body byte until its decoded value exists (design §6.6).

A reply is held three ways at its peak: the raw bytes, the whole body as a `str` (the C decoder needs one),
and the decoded objects. The `str` takes 1, 2 or 4 bytes per character depending on the widest character
in it, so 8 MiB of ASCII plus one emoji is a 32 MiB `str`; each JSON string value is a `str` of its own
width (an escape such as \\ud83d widens it even in an ASCII body); and every value costs object overhead
whatever its length (`{"k1":null,...}` costs ~130 bytes per value). Measured with tracemalloc by
bench/bench_reply_memory.py; the constants below carry a margin over what it prints.

The budget reserves `reading` while the body streams and `decoding` before the decoder starts; `most` is
the largest of both for a body of a given size, known before any byte has arrived.
"""

from __future__ import annotations

import re

from vmclock.zstack.jsonguard import MAX_VALUES

# The body as a growing bytearray (over-allocated by up to 1/8) plus the bytes copy made of it at the end
# (measured 2.07 for a near-cap body, tests/hostile); also covers jsonguard's pass, which holds the bytes
# and one unescaped copy of them.
READ_FACTOR = 2.25
BYTES_PER_VALUE = 160  # measured at most ~131 (dict of distinct keys, dict resize included)
WIDEST = 4  # bytes per character of a str holding a character beyond U+FFFF
SLACK = 64 * 1024  # the decoder's own small objects, whatever the size of the body

_WIDE_UTF8 = re.compile(rb"[\xc4-\xef]")  # lead byte of a character from U+0100 to U+FFFF
_ASTRAL_UTF8 = re.compile(rb"[\xf0-\xf4]")  # lead byte of a character beyond U+FFFF
_WIDE_ESCAPE = re.compile(rb"\\u(?!00)[0-9a-fA-F]{4}")  # a character from U+0100 on
_ASTRAL_ESCAPE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")  # half of a pair beyond U+FFFF


def reading(size: int) -> int:
    """Bytes held while `size` bytes of body have been read (and once more copied at the end)."""
    return int(size * READ_FACTOR) + 1


def decoding(raw: bytes, values: int) -> int:
    """Bytes held at the end of decoding `raw`, which jsonguard counted `values` values in."""
    text = _utf8_width(raw)
    strings = len(raw) * max(text, _escaped_width(raw))
    if b"\\" in raw:
        strings = strings * 5 // 4  # a string with escapes is built in a buffer over-allocated by 1/4
    return len(raw) * (1 + text) + strings + values * BYTES_PER_VALUE + SLACK


def most(size: int) -> int:
    """The most a body of at most `size` bytes can cost: the widest text, escapes everywhere and as many
    values as jsonguard can count in it (one per comma or opening bracket)."""
    values = min(MAX_VALUES, size + 1)
    return max(reading(size), size * (1 + WIDEST + WIDEST * 5 // 4) + values * BYTES_PER_VALUE + SLACK)


def _utf8_width(raw: bytes) -> int:
    """Bytes per body byte of its text: the decoder sizes its buffer by the body's length, in the width
    of the widest character."""
    if raw.isascii():
        return 1
    if _ASTRAL_UTF8.search(raw):
        return WIDEST
    return 2 if _WIDE_UTF8.search(raw) else 1


def _escaped_width(raw: bytes) -> int:
    if _ASTRAL_ESCAPE.search(raw):
        return WIDEST
    return 2 if _WIDE_ESCAPE.search(raw) else 1

"""Build ZStack `q=` query conditions that ZStack parses the way we meant, and fit them in 8 KiB URLs.

ZStack splits a condition on the *first contained* operator in a fixed priority order, trims the name and
keeps the value as is (zstack-api.md §6). A value that contains a higher-priority operator, a comma inside
an `?=` item or an empty value would silently become a different query, so such values are rejected here
with a ValueError naming the field, before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

# RestServer's order: the first operator contained anywhere in the condition wins.
OPERATOR_PRIORITY = ("!=", ">=", "<=", "!?=", "!~=", "~=", "?=", "=", ">", "<", "is null", "not null")
LIST_OPERATORS = frozenset({"?=", "!?="})
BINARY_OPERATORS = frozenset(OPERATOR_PRIORITY[:10])
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PLACEHOLDER = "x"  # a one-character list item, used to measure the fixed part of a request line


def parse_like_zstack(condition: str) -> tuple[str, str, str] | None:
    """(name, operator, value) as RestServer would read `condition`, or None when it finds no operator."""
    for op in OPERATOR_PRIORITY:
        at = condition.find(op)
        if at >= 0:
            return condition[:at].strip(), op, condition[at + len(op) :]
    return None


@dataclass(frozen=True)
class Condition:
    """One `q=` condition, checked on construction to round-trip through ZStack's parser unchanged."""

    field: str
    op: str
    value: str

    def __post_init__(self) -> None:
        if not _FIELD_RE.match(self.field):
            raise ValueError(f"query field {self.field!r} is not a plain (dotted) field name")
        if self.op not in BINARY_OPERATORS:
            raise ValueError(f"query field {self.field!r}: unsupported operator {self.op!r}")
        if self.op in LIST_OPERATORS:
            items = self.value.split(",")
            if any(item == "" for item in items):
                raise ValueError(
                    f"query field {self.field!r}: {self.op} list items must be non-empty and contain no comma"
                )
        elif self.value == "":
            raise ValueError(f"query field {self.field!r}: empty value")
        parsed = parse_like_zstack(self.render())
        if parsed != (self.field, self.op, self.value):
            raise ValueError(
                f"query field {self.field!r}: value {self.value!r} contains an operator that ZStack would "
                f"parse before {self.op!r}"
            )

    def render(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def eq(field: str, value: str) -> Condition:
    return Condition(field, "=", value)


def any_of(field: str, values: Iterable[str]) -> Condition:
    """`field?=a,b,c`; each item is validated like a whole value (no comma, no higher operator)."""
    items = list(values)
    if not items:
        raise ValueError(f"query field {field!r}: ?= needs at least one value")
    for item in items:
        if item == "" or "," in item:
            raise ValueError(
                f"query field {field!r}: ?= item {item!r} must be non-empty and contain no comma"
            )
    return Condition(field, "?=", ",".join(items))


def _encode(text: str) -> str:
    # Commas stay literal (RFC 3986 sub-delims), which keeps the cost of a list item exactly its own length.
    return quote(text, safe=",")


# Java int: the largest `start` ZStack accepts, so the widest pagination suffix a batch must leave room for.
_WORST_PAGE_START = 2**31 - 1


@dataclass(frozen=True)
class Page:
    start: int
    limit: int

    @classmethod
    def widest(cls, limit: int) -> Page:
        """The page whose parameters take the most room in a URL."""
        return cls(start=_WORST_PAGE_START, limit=limit)


@dataclass(frozen=True)
class Shape:
    """How rows come back: sorted ascending by a field (stable pages), only some fields (smaller replies)."""

    sort: str | None = None
    fields: tuple[str, ...] = ()


def encode_query(
    conditions: Sequence[Condition], *, page: Page | None = None, shape: Shape | None = None
) -> str:
    """The exact query string sent: conditions, pagination with a count, sort order, fields."""
    params = [("q", c.render()) for c in conditions]
    if page is not None:
        params += [("limit", str(page.limit)), ("start", str(page.start)), ("replyWithCount", "true")]
    shape = shape or Shape()
    if shape.sort is not None:
        params.append(("sort", f"+{shape.sort}"))  # `+` must travel as %2B or it decodes to a space
    if shape.fields:
        params.append(("fields", ",".join(shape.fields)))
    return "&".join(f"{name}={_encode(value)}" for name, value in params)


def batch_any_of(
    field: str, values: Sequence[str], measure: Callable[[Condition], int], max_line: int
) -> list[list[str]]:
    """Split `values` (deduplicated, order kept) so that every `field?=<batch>` request fits in `max_line`.

    `measure(condition)` is the longest request line of the listing with that condition added; it is
    measured once with a one-item list, and each further item costs exactly its encoded length plus a comma.
    """
    unique = list(dict.fromkeys(values))
    for value in unique:
        any_of(field, [value])  # validate every item up front: a bad one fails the call, not one batch
    if not unique:
        return []
    budget = max_line - (measure(any_of(field, [_PLACEHOLDER])) - len(_PLACEHOLDER))
    return pack(unique, budget)


def pack(values: Sequence[str], budget: int) -> list[list[str]]:
    """Split `values` into the fewest consecutive batches whose encoded `a,b,c` fits in `budget` bytes."""
    batches: list[list[str]] = []
    current: list[str] = []
    used = 0
    for value in values:
        cost = len(_encode(value))
        if cost > budget:
            raise ValueError(f"query value {value!r} alone does not fit in the request line")
        extra = cost if not current else cost + 1  # the comma
        if current and used + extra > budget:
            batches.append(current)
            current, used, extra = [], 0, cost
        current.append(value)
        used += extra
    if current:
        batches.append(current)
    return batches

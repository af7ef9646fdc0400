r"""ZStack's query API: parsing the URL the way RestServer.handleQueryApi does, then filtering like the DB.

Parsing keeps RestServer's quirks because clients must live with them (zstack-api.md §6): the operator is
the *first contained* one in a fixed priority order, the name is trimmed but the value is not, only the
first value of `limit`/`start`/`sort`/`fields` counts, and only `q` (or an empty name, since the code tests
`"q".startsWith(name)`) carries conditions. String comparisons ignore case, as MySQL's default collation
does for ZStack's tables.

Values travel as text: QueryFacadeImpl wraps each in single quotes into a ZQL string (a lone `'` breaks the
ZQL parser, `''` is a quote), ZQL inlines it into JPQL, and MySQL reads it as a string literal, where a
backslash escapes the next character (before `%` and `_` it stays, for LIKE, whose escape is a backslash
too: `name~=win\_%` finds `win_01`, not `win-01`).
Tag conditions (`__userTag__`, `__systemTag__`) follow TagZQLExtension: `uuid IN (resources with a matching
tag)`, and for `!=`, `!?=`, `!~=` `uuid NOT IN (resources with a tag matching the positive operator)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vmclock.simulator.errors import ApiError, RestError, argerr

# Longer operators first: "=" is contained in "!=", so it must come after it (RestServer.QUERY_OP_MAPPING).
OPERATORS = ("!=", ">=", "<=", "!?=", "!~=", "~=", "?=", "=", ">", "<", "is null", "not null")
_NULL_OPERATORS = ("is null", "not null")
DEFAULT_LIMIT = 1000
_JAVA_INT = re.compile(r"[+-]?[0-9]+")
_ZQL_STRING_BODY = re.compile(r"(?:''|[^'])*")
_MYSQL_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
# MySQL string-literal escapes; `\%` and `\_` keep their backslash for LIKE; any other `\x` is `x`.
_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}
_TAG_NEGATIONS = {"!=": "=", "!?=": "?=", "!~=": "~="}
Row = dict[str, Any]


@dataclass(frozen=True)
class Condition:
    name: str
    op: str
    value: str | None = None


@dataclass
class QuerySpec:
    conditions: list[Condition] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT
    start: int = 0
    count: bool = False
    reply_with_count: bool = False
    sort_by: str | None = None
    sort_desc: bool = False
    fields: list[str] | None = None


def _java_int(text: str, name: str) -> int:
    """Integer.valueOf: ASCII digits with an optional sign, within 32 bits."""
    if _JAVA_INT.fullmatch(text) and -(2**31) <= int(text) < 2**31:
        return int(text)
    raise RestError(400, f"Invalid query parameter. '{name}' must be an integer")


def _java_bool(text: str) -> bool:
    """Boolean.valueOf: anything but a case-insensitive "true" is false."""
    return text.lower() == "true"


def parse_condition(cond: str) -> Condition:
    op = next((candidate for candidate in OPERATORS if candidate in cond), None)
    if op is None:
        raise RestError(
            400,
            f"Invalid query parameter. The '{cond}' in the parameter[q] doesn't contain any query operator."
            f" Valid query operators are [{', '.join(OPERATORS)}]",
        )
    # StringUtils.splitByWholeSeparator(cond, op, 2) drops empty pieces, so "name=" has one part.
    parts = [p for p in cond.split(op, 1) if p]
    if op in _NULL_OPERATORS:
        return Condition(parts[0].strip() if parts else "", op)
    if len(parts) != 2:
        raise RestError(
            400,
            f"Invalid query parameter. The '{cond}' in parameter[q] is not a key-value pair split by {op}",
        )
    return Condition(parts[0].strip(), op, parts[1])


def parse_query(params: Mapping[str, list[str]]) -> QuerySpec:
    """`params` as a servlet's getParameterMap: every name with all its values, in order."""
    spec = QuerySpec()
    for raw_name, values in params.items():
        name = raw_name.strip()
        first = values[0].strip()
        if name == "limit":
            spec.limit = _java_int(first, "limit")
        elif name == "start":
            spec.start = _java_int(first, "start")
        elif name == "count":
            spec.count = _java_bool(first)
        elif name == "replyWithCount":
            spec.reply_with_count = _java_bool(first)
        elif name == "sort":
            spec.sort_desc = first.startswith("-")
            spec.sort_by = first.lstrip("+-")
        elif "q".startswith(name):
            spec.conditions.extend(parse_condition(cond) for cond in values)
        elif name == "fields":
            spec.fields = [f.strip() for f in first.split(",")]
    return spec


RowSource = Callable[[Collection[str] | None], Iterable[Row]]


def every_row(rows: Iterable[Row]) -> RowSource:
    """A table without an index: every query reads all of `rows`."""
    return lambda _keys: rows


@dataclass(frozen=True)
class Table:
    """One queryable inventory type: its rows, native fields, and the tags of a row (`__userTag__` ...).

    `rows(keys)` yields the rows in table order; given `keys` (casefolded values of the `key` field) it may
    leave out rows whose key is not among them, as a database's index on that column does. A `uuid?=` list
    of ten VMs then costs ten rows, not a whole fleet of inventories per query: a management node's
    database does not scan for it either, and a simulator that did would, on a shared machine, charge its
    own CPU to whatever a benchmark measures beside it. Every condition is still tested on every row read.
    """

    java_class: str
    rows: RowSource
    fields: frozenset[str]
    tags: Mapping[str, Callable[[Row], list[str]]] = field(default_factory=dict)
    key: str | None = None

    def check_field(self, name: str) -> None:
        if name not in self.tags and name.split(".", 1)[0] not in self.fields:
            raise argerr(
                f"condition name[{name}] is invalid, no such field on inventory class[{self.java_class}]"
            )

    def values(self, row: Row, name: str) -> list[Any]:
        """All values a dotted name reaches; lists fan out like a SQL join, an empty join yields NULL."""
        current: list[Any] = [row]
        for part in name.split("."):
            reached: list[Any] = []
            for obj in current:
                value = obj.get(part) if isinstance(obj, dict) else None
                reached.extend(value if isinstance(value, list) else [value])
            current = reached
        return current or [None]


def _sort_key(value: Any) -> tuple[bool, Any]:
    """NULLs first, strings by collation (case-insensitive)."""
    return (value is not None, value.casefold() if isinstance(value, str) else value)


def _compare(value: Any, raw: str) -> int:
    if isinstance(value, bool):
        left: Any = str(value).lower()
        right: Any = raw.strip().lower()
    elif isinstance(value, int | float):
        try:
            left, right = value, float(raw)
        except ValueError:
            raise argerr(f"the value[{raw}] cannot be converted to a number") from None
    else:
        left, right = str(value).casefold(), raw.casefold()
    return int(left > right) - int(left < right)


def _sql_string(raw: str) -> str:
    """The string MySQL compares with once the value went through ZQL, JPQL and a SQL string literal."""
    if not _ZQL_STRING_BODY.fullmatch(raw):
        raise ApiError(
            "SYS.1000",
            f"org.antlr.v4.runtime.misc.ParseCancellationException: a single quote in the value[{raw}]"
            " ends the ZQL string early",
        )
    text = raw.replace("''", "'")
    if (len(text) - len(text.rstrip("\\"))) % 2:
        raise ApiError("SYS.1000", f"a trailing backslash in the value[{raw}] escapes the SQL string's quote")
    return _MYSQL_ESCAPE.sub(lambda m: _MYSQL_ESCAPES.get(m[1], m[1]), text)


def _like(pattern: str) -> re.Pattern[str]:
    """MySQL LIKE: `%` any run, `_` one character, a backslash makes the next character literal."""
    parts: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            parts.append(re.escape(next(chars, "\\")))
        else:
            parts.append("." if ch == "_" else ".*" if ch == "%" else re.escape(ch))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


_ORDER_TESTS: dict[str, Callable[[int], bool]] = {
    "=": lambda order: order == 0,
    "!=": lambda order: order != 0,
    ">": lambda order: order > 0,
    "<": lambda order: order < 0,
    ">=": lambda order: order >= 0,
    "<=": lambda order: order <= 0,
}


def _predicate(cond: Condition) -> Callable[[Any], bool]:
    """The condition as a test on one value, prepared once per query (a fleet may hold thousands of VMs).

    Like SQL, every comparison with NULL is false; only `is null` matches it."""
    if cond.op == "is null":
        return lambda value: value is None
    if cond.op == "not null":
        return lambda value: value is not None
    raw = cond.value or ""
    if cond.op in ("?=", "!?="):
        members = [_sql_string(member) for member in raw.split(",")]
        folded = {m.casefold() for m in members}
        wanted = cond.op == "?="

        def inside(value: Any) -> bool:
            if isinstance(value, str):
                return value.casefold() in folded
            return any(_compare(value, member) == 0 for member in members)

        return lambda value: value is not None and inside(value) == wanted
    text = _sql_string(raw)
    if cond.op in ("~=", "!~="):
        pattern, wanted = _like(text), cond.op == "~="
        return lambda value: value is not None and (pattern.fullmatch(str(value)) is not None) == wanted
    test = _ORDER_TESTS[cond.op]
    return lambda value: value is not None and test(_compare(value, text))


def _test_field(test: Callable[[Any], bool], value: Any) -> bool:
    """`Table.values` for a top-level field, without its generality (selector pages scan whole fleets)."""
    if isinstance(value, list):
        return any(map(test, value)) if value else test(None)
    return test(value)


def _row_test(table: Table, cond: Condition) -> Callable[[Row], bool]:
    """The condition as a test on one row: a field condition matches when any value it reaches does."""
    tags_of = table.tags.get(cond.name)
    if tags_of is None:
        test, name = _predicate(cond), cond.name
        if "." in name:
            return lambda row: any(map(test, table.values(row, name)))
        return lambda row: _test_field(test, row.get(name))
    positive = _TAG_NEGATIONS.get(cond.op)
    if positive is None:
        tag_test = _predicate(cond)
        return lambda row: any(map(tag_test, tags_of(row)))
    negated_test = _predicate(Condition(cond.name, positive, cond.value))
    return lambda row: not any(map(negated_test, tags_of(row)))


def _key_values(key: str | None, conditions: Iterable[Condition]) -> frozenset[str] | None:
    """The casefolded values a `key=` or `key?=` condition allows (None: no such condition), a superset of
    what its own test accepts, so reading only those rows changes no answer."""
    for cond in conditions:
        if key is None or cond.name != key or cond.op not in ("=", "?="):
            continue
        members = (cond.value or "").split(",") if cond.op == "?=" else [cond.value or ""]
        return frozenset(_sql_string(member).casefold() for member in members)
    return None


def run_query(table: Table, spec: QuerySpec) -> dict[str, Any]:
    """The APIQueryReply body without `schema`: `inventories` and/or `total`."""
    for cond in spec.conditions:
        table.check_field(cond.name)
    tests = [_row_test(table, cond) for cond in spec.conditions]
    keys = _key_values(table.key, spec.conditions)
    rows = [row for row in table.rows(keys) if all(test(row) for test in tests)]
    if spec.count:
        return {"total": len(rows)}
    if spec.sort_by:
        if spec.sort_by not in table.fields:
            raise argerr(f"sortBy[{spec.sort_by}] is not a field of inventory class[{table.java_class}]")
        key = spec.sort_by
        rows.sort(key=lambda row: _sort_key(row.get(key)), reverse=spec.sort_desc)
    start = max(spec.start, 0)
    page = rows[start : start + max(spec.limit, 0)]
    if spec.fields:
        wanted = [f for f in spec.fields if f in table.fields]
        page = [{f: row[f] for f in wanted if f in row} for row in page]
    reply: dict[str, Any] = {"inventories": page}
    if spec.reply_with_count:
        reply["total"] = len(rows)
    return reply

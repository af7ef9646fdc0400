"""Run ZStack queries to completion: `?=` lists split to fit the request line, each batch paginated.

Pagination stops at a short page or once `replyWithCount`'s total is reached, whichever comes first, so an
exact multiple of the page size costs no extra empty request when the total is known.

Every listing is bounded (design §6.2), because a page that is always full and never says its total would
otherwise be asked for again forever (15.7k requests in 15 s against a hostile endpoint):
- a page may not hold more rows than its `limit` asked for (BAD_REPLY);
- a uuid list of n values on a field that identifies a row can match at most n rows, so n rows end the
  listing and a total above n is a BAD_REPLY;
- any other listing ends with REPLY_TOO_LARGE past `max_listing_rows`;
- rows of a listing with `fields=` keep only those fields, texts cut, so the rows held are small.

A long `?=` list costs one request per ~230 UUIDs (the 8 KiB request line), while the whole listing costs one
per page of 1,000 rows. From `WHOLE_LISTING_FROM` batches on, a `count=true` request tells which is fewer,
so the union of many small policies' VMs read together (engine/external.py's SharedObserver) costs about
what one big selector policy's listings cost, and a few VMs in a huge installation still cost batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vmclock.zstack.calls import Api
from vmclock.zstack.errors import BAD_REPLY, GARBAGE, REPLY_TOO_LARGE, ZStackError
from vmclock.zstack.options import MAX_REQUEST_LINE
from vmclock.zstack.query import Condition, Page, Shape, any_of, batch_any_of, encode_query

WHOLE_LISTING_FROM = 8  # batches (~1,800 UUIDs): below it, batches are read without asking for a count
ROW_TEXT_MAX = 256  # the longest text status keeps of any row field (a VM name: 255)


@dataclass(frozen=True)
class Listing:
    """One queryable collection: the ZStack API name (for errors and metrics), its path, the row shape.

    `unique`: a field whose value identifies at most one row of this listing (uuid), so a `?=` list of n
    values on it cannot match more than n rows.
    """

    api: str
    path: str
    shape: Shape = field(default_factory=Shape)
    unique: str | None = None


async def query_all(
    api: Api,
    listing: Listing,
    conditions: Sequence[Condition],
    *,
    page_size: int,
    max_rows: int | None = None,
    steady: bool = False,
) -> list[dict[str, Any]]:
    """Every row matching `conditions`, page by page.

    `max_rows`: how many rows can match at most, known to the caller; reaching it ends the listing. Without
    it, more than the client's `max_listing_rows` rows is a REPLY_TOO_LARGE error.
    `steady`: raise ListingChanged when a page's total differs from the first page's (see ListingChanged).
    """
    exact = max_rows is not None
    cap = max_rows if max_rows is not None else api.options.max_listing_rows
    rows: list[dict[str, Any]] = []
    first_total: int | None = None
    while len(rows) < cap or not exact:
        # An open listing asks for one row past its cap, to tell "exactly the cap" from "more".
        limit = min(page_size, cap - len(rows) + (0 if exact else 1))
        query = encode_query(conditions, page=Page(start=len(rows), limit=limit), shape=listing.shape)
        body = await api.sync(listing.api, "GET", listing.path, query=query)
        page = _page(body, limit, listing.api)
        rows.extend(_project(row, listing.shape.fields) for row in page)
        total = body.get("total")
        total = total if isinstance(total, int) and not isinstance(total, bool) else None
        if len(rows) > cap or (total is not None and total > cap):
            raise _over(listing.api, cap, exact)
        first_total = total if first_total is None else first_total
        if steady and total != first_total:
            raise ListingChanged(listing.api)
        if len(page) < limit or (total is not None and len(rows) >= total):
            break
    return rows


class ListingChanged(Exception):
    """Rows came or went between two pages of one listing. Pages are cut by offset, so a row removed before
    the offset shifts the next one out of every page (an existing VM read as absent, or a VM's own track
    row missed and the global default taken for it): the listing must be read again another way."""


def _page(body: dict[str, Any], limit: int, api: str) -> list[dict[str, Any]]:
    page = body.get("inventories")
    if not isinstance(page, list) or not all(isinstance(row, dict) for row in page):
        raise ZStackError.client(GARBAGE, "query reply without an inventories list", operation=api)
    if len(page) > limit:
        what = f"query page of {len(page)} rows where at most {limit} were asked for"
        raise ZStackError.client(BAD_REPLY, what, operation=api)
    return page


def _over(api: str, cap: int, exact: bool) -> ZStackError:
    if exact:
        return ZStackError.client(BAD_REPLY, f"query matched more than the {cap} rows it can", operation=api)
    return ZStackError.client(REPLY_TOO_LARGE, f"query matched more than {cap} rows", operation=api)


def _project(row: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Only the asked-for fields of a row (all of them without `fields=`), texts cut to ROW_TEXT_MAX.

    Containers are dropped: `fields=` names native columns, which ZStack sends as scalars.
    """
    if not fields:
        return row
    kept: dict[str, Any] = {}
    for name in fields:
        value = row.get(name)
        if isinstance(value, str):
            kept[name] = value[:ROW_TEXT_MAX]
        elif not isinstance(value, dict | list) and value is not None:
            kept[name] = value
    return kept


async def query_any_of(
    api: Api,
    listing: Listing,
    conditions: Sequence[Condition],
    key: str,
    values: Sequence[str],
    *,
    page_size: int,
) -> list[dict[str, Any]]:
    """Rows matching `conditions` and `key?=` any of `values`, batched so no request line exceeds 8 KiB."""

    def measure(extra: Condition) -> int:
        query = encode_query([*conditions, extra], page=Page.widest(page_size), shape=listing.shape)
        return api.endpoint.request_line_length("GET", listing.path, query)

    batches = batch_any_of(key, values, measure, MAX_REQUEST_LINE)
    if len(batches) >= WHOLE_LISTING_FROM and (not listing.shape.fields or key in listing.shape.fields):
        whole = await _whole_listing_if_fewer(api, listing, conditions, len(batches), page_size=page_size)
        if whole is not None:
            wanted = set(values)
            return [row for row in whole if row.get(key) in wanted]
    rows: list[dict[str, Any]] = []
    for batch in batches:
        batch_conditions = [*conditions, any_of(key, batch)]
        max_rows = len(batch) if key == listing.unique else None
        rows.extend(await query_all(api, listing, batch_conditions, page_size=page_size, max_rows=max_rows))
    return rows


async def _whole_listing_if_fewer(
    api: Api, listing: Listing, conditions: Sequence[Condition], batches: int, *, page_size: int
) -> list[dict[str, Any]] | None:
    """Every row matching `conditions` when its pages are fewer requests than `batches`, else None. The
    count is only an estimate (rows come and go): a listing grown past `max_listing_rows` meanwhile, or one
    whose total moved between its pages, is left to the batches too (each batch is one page: nothing can
    shift out of it)."""
    body = await api.sync(listing.api, "GET", listing.path, query=_counting(conditions))
    total = body.get("total")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        return None  # not what ZStack answers: the batches are bounded, a guessed listing might not be
    if total > api.options.max_listing_rows or -(-total // page_size) >= batches:
        return None
    try:
        return await query_all(api, listing, conditions, page_size=page_size, steady=True)
    except ListingChanged:
        return None
    except ZStackError as exc:
        if exc.code != REPLY_TOO_LARGE:
            raise
        return None


def _counting(conditions: Sequence[Condition]) -> str:
    return "&".join(filter(None, [encode_query(conditions), "count=true"]))

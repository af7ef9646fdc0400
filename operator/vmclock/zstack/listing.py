"""Run ZStack queries to completion: `?=` lists split to fit the request line, each batch paginated.

Pagination stops at a short page or once `replyWithCount`'s total is reached, whichever comes first, so an
exact multiple of the page size costs no extra empty request when the total is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vmclock.zstack.calls import Api
from vmclock.zstack.errors import GARBAGE, ZStackError
from vmclock.zstack.options import MAX_REQUEST_LINE
from vmclock.zstack.query import Condition, Page, Shape, any_of, batch_any_of, encode_query


@dataclass(frozen=True)
class Listing:
    """One queryable collection: the ZStack API name (for errors and metrics), its path, the row shape."""

    api: str
    path: str
    shape: Shape = field(default_factory=Shape)


async def query_all(
    api: Api, listing: Listing, conditions: Sequence[Condition], *, page_size: int
) -> list[dict[str, Any]]:
    """Every row matching `conditions`, page by page."""
    rows: list[dict[str, Any]] = []
    start = 0
    while True:
        query = encode_query(conditions, page=Page(start=start, limit=page_size), shape=listing.shape)
        body = await api.sync(listing.api, "GET", listing.path, query=query)
        page = body.get("inventories")
        if not isinstance(page, list) or not all(isinstance(row, dict) for row in page):
            raise ZStackError.client(
                GARBAGE, "query reply without an inventories list", operation=listing.api
            )
        rows.extend(page)
        start += len(page)
        total = body.get("total")
        if len(page) < page_size or (isinstance(total, int) and start >= total):
            return rows


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

    rows: list[dict[str, Any]] = []
    for batch in batch_any_of(key, values, measure, MAX_REQUEST_LINE):
        batch_conditions = [*conditions, any_of(key, batch)]
        rows.extend(await query_all(api, listing, batch_conditions, page_size=page_size))
    return rows

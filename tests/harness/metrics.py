"""Reading the operator's Prometheus endpoint the way a scraper would: over HTTP, parsed as exposition text.

Tests compare what the operator reports with what the API server holds, so a gauge left behind by a deleted
object (or missing for a live one) shows up as a difference rather than as a number nobody checks.
"""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


def scrape(url: str, metric: str, *, timeout: float = 10.0) -> dict[Labels, float]:
    """The samples of one metric family at ``url``: sorted label pairs -> value."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == metric
        for sample in family.samples
    }

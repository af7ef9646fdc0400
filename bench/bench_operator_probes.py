"""What bench_operator.py reads from outside the operator: /proc, its Prometheus metrics and its JSON log.

The benchmark judges the operator as a black box, so every number comes from the kernel, the metrics port,
the log file or the simulator, never from the operator's own Python objects.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SAMPLE = re.compile(r"^(?P<name>\w+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")
_REQUESTS, _SECONDS = "vmclock_zstack_requests_total", "vmclock_zstack_request_seconds_sum"
_FAMILIES = (_REQUESTS, _SECONDS)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class ProcessSample:
    """Resident memory in KiB (``peak``: the kernel's high-water mark, VmHWM) and the thread count."""

    peak_rss_kib: int
    rss_kib: int
    threads: int


def sample(pid: int) -> ProcessSample:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmHWM", "VmRSS", "Threads"}:
            fields[key] = int(value.split()[0])
    return ProcessSample(peak_rss_kib=fields["VmHWM"], rss_kib=fields["VmRSS"], threads=fields["Threads"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (to attribute a scenario's cost)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True)
class ZStackCalls:
    """The operator's own count of ZStack call attempts and their summed latency, by operation."""

    count: dict[str, float]
    seconds: dict[str, float]

    def __sub__(self, earlier: ZStackCalls) -> ZStackCalls:
        return ZStackCalls(_minus(self.count, earlier.count), _minus(self.seconds, earlier.seconds))

    def mean_ms(self) -> dict[str, float]:
        return {op: round(1000 * self.seconds.get(op, 0.0) / n, 1) for op, n in sorted(self.count.items())}


def _minus(later: dict[str, float], earlier: dict[str, float]) -> dict[str, float]:
    """What grew in between (counters only grow, so unchanged keys drop out)."""
    return {
        key: value - earlier.get(key, 0.0) for key, value in later.items() if value > earlier.get(key, 0.0)
    }


def zstack_calls(metrics_url: str) -> ZStackCalls:
    """``vmclock_zstack_requests_total`` (summed over result codes) and ``..._request_seconds_sum``."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, dict[str, float]] = {family: {} for family in _FAMILIES}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] in totals:
            operation = dict(_LABEL.findall(match["labels"])).get("operation", "?")
            family = totals[match["name"]]
            family[operation] = family.get(operation, 0.0) + float(match["value"])
    return ZStackCalls(totals[_REQUESTS], totals[_SECONDS])


@dataclass(frozen=True)
class Reconcile:
    """One "VmClockPolicy NS/NAME generation G: N writes, {...}" line of the operator's JSON log."""

    name: str
    writes: int


class ReconcileLog:
    """Finished reconciles of a namespace's policies in the operator's log.

    The operator logs exactly one such line at the end of every reconcile (handler or resync), which makes
    the log the one place where "how many reconciles happened in this window" is observable from outside.
    """

    def __init__(self, path: Path, namespace: str) -> None:
        self._path = path
        self._line = re.compile(
            rf"^VmClockPolicy {re.escape(namespace)}/([^\s/]+) generation \d+: (\d+) writes"
        )

    def offset(self) -> int:
        return self._path.stat().st_size

    def read(self, offset: int) -> tuple[list[Reconcile], int]:
        """The reconciles logged from `offset` on, and the offset after the last complete line read (a line
        the operator is still writing is left for the next read)."""
        with self._path.open("rb") as log:
            log.seek(offset)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        found = []
        for raw in complete.splitlines():
            try:
                message = str(json.loads(raw).get("message", ""))
            except (ValueError, AttributeError):
                continue
            match = self._line.match(message)
            if match:
                found.append(Reconcile(match[1], int(match[2])))
        return found, offset + len(complete)


_WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})


def api_writes(metrics_text: str) -> Counter[str]:
    """Write requests the kube-apiserver served, from its ``apiserver_request_total``, keyed
    "VERB resource[/subresource]" (e.g. "PATCH vmclockpolicies/status"), summed over response codes.

    Counted by the server, so a status PATCH that changed nothing still counts: this is what the operator
    sent, not what changed.
    """
    writes: Counter[str] = Counter()
    for line in metrics_text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != "apiserver_request_total":
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("verb") in _WRITE_VERBS:
            resource = "/".join(filter(None, (labels.get("resource"), labels.get("subresource"))))
            writes[f"{labels['verb']} {resource}"] += int(float(match["value"]))
    return writes


def changed_paths(before: Any, after: Any, path: str = "") -> set[str]:
    """Where two JSON documents differ, as paths like "vms[].lastChecked" (list items compared in order;
    a list that changed length counts as a change of the list itself)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = before.keys() | after.keys()
        return set().union(
            *(changed_paths(before.get(k), after.get(k), f"{path}.{k}" if path else k) for k in keys)
        )
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return set().union(*(changed_paths(b, a, f"{path}[]") for b, a in zip(before, after, strict=True)))
    return set() if before == after else {path}

"""Pending restarts: which VMs of a policy wait for a restart before their track takes effect, and since when.

ZStack reads the track only when it rebuilds a VM's domain (its next start or a ZStack reboot), and only for
Windows platforms. So a running Windows VM this policy changed "waits for a restart" until it is seen not
Running or its `lastOpDate` moves on (the clearing rule lives in report.py, `_pending_restart`). A selector
policy may cover 10,000 VMs while its status lists 500, so what each waiting VM needs to be cleared later
(when it started waiting, and the `lastOpDate` seen then) is kept beside the previous-track record, for
every VM, not in status. Like the previous tracks, a wait is recorded before the write that starts it
(report.py, `expected_restarts`).

The text form is one line per waiting VM, `<uuid> <n> <mark>`, `n` naming a time listed once in a
`@<n> <since>` header line (VMs changed in one round share it) and `mark` a digest of the `lastOpDate` seen
then (8 hex digits; only "has it changed?" is ever asked of it). That is 45 bytes per VM: 10,000 waiting VMs
take about 450 KB, and it lives in its own ConfigMap, beside the previous tracks' (~420 KB at 10,000 VMs),
so each stays well inside a ConfigMap's 1 MiB. Parsing is lenient, as for the record: a malformed line is
skipped, never fatal.

Another part of the operator that needs "which VMs wait for a restart, since when" (e.g. a rolling restart)
asks `waiting_for_restart(record)`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmclock.engine.records import TrackRecord

_LINE = re.compile(r"^([0-9a-f]{32}) (\d+) ([0-9a-f]{8}|-)$")
_HEADER = re.compile(r"^@(\d+) (\S+)$")
UNKNOWN_MARK = "-"


def op_mark(last_op_date: str | None) -> str:
    """A short, stable stand-in for a VM's `lastOpDate`, to tell whether it moved on; `-` when not known."""
    if not last_op_date:
        return UNKNOWN_MARK
    return f"{zlib.crc32(last_op_date.encode()):08x}"


@dataclass(frozen=True)
class PendingRestart:
    """A VM that waits for a restart: `since` (RFC 3339) when the write that left it waiting was made,
    `mark` the `op_mark` of the `lastOpDate` ZStack reported for it then."""

    since: str
    mark: str = UNKNOWN_MARK


def encode_restarts(pending: Mapping[str, PendingRestart]) -> str:
    numbers: dict[str, int] = {}
    for since in sorted({p.since for p in pending.values()}):
        numbers[since] = len(numbers)
    header = "".join(f"@{n} {since}\n" for since, n in numbers.items())
    lines = (f"{uuid} {numbers[p.since]} {p.mark}\n" for uuid, p in sorted(pending.items()))
    return header + "".join(lines)


def decode_restarts(text: str) -> dict[str, PendingRestart]:
    found: dict[str, PendingRestart] = {}
    times: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if header := _HEADER.match(line):
            times[header.group(1)] = header.group(2)
        elif (match := _LINE.match(line)) and match.group(2) in times:
            found[match.group(1)] = PendingRestart(times[match.group(2)], match.group(3))
    return found


async def waiting_for_restart(record: TrackRecord) -> dict[str, PendingRestart]:
    """Every VM of the policy that waits for a restart, as of its last reconcile: the API for anything that
    acts on pending restarts (it reads the same store the reconcile keeps)."""
    await record.load()
    return record.pending_restarts()

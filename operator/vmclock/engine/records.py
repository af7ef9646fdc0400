"""The previous-track record of a selector policy: what `Restore` puts back, kept outside status.

A UUID policy keeps each VM's `previousTrack` in its status entry. A selector policy may cover 10,000 VMs,
while its status lists only a bounded few (see `selecting.py`), so the record lives elsewhere: the engine
asks a `TrackRecord` port for it (the operator's is a ConfigMap owned by the policy) and stays free of
Kubernetes. The record is written before the writes it covers (design.md §5.4: intent before action), read
at every reconcile, and used whole when the policy is deleted.

Every kind of policy keeps its record there (design.md §5.12): a UUID policy's status lists all its VMs, but a
policy switched from a selector to `vmUuids` (or back) must still put back what the other form changed.

The record also says which VMs wait for a restart and since when (pending.py): every kind of policy keeps
that for all its VMs, as status lists only some of a selector policy's.

Each VM's entry also says through which destination (management node and account) the change was made, so a
restore after the connection was pointed elsewhere never takes "not found there" for "restored".

The text form is one line per VM, `<uuid> <track> <n>` (~41 bytes), `n` naming a destination listed once in a
`@<n> <destination>` header line: 10,000 VMs fit in 420 KB, well inside a ConfigMap's 1 MiB. Parsing is
lenient: a malformed line is skipped, never fatal, as with status; a line without `n` (an older operator's)
has no known destination.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol, cast
from urllib.parse import quote, unquote

from vmclock.engine.pending import PendingRestart
from vmclock.zstack.models import TRACKS, Track

_LINE = re.compile(r"^([0-9a-f]{32}) (\w+)(?: (\d+))?$")
_HEADER = re.compile(r"^@(\d+) (\S+)$")

Origins = Mapping[str, str]  # VM -> destination that changed it ("" or absent: not known)


class TrackRecord(Protocol):
    async def load(self) -> dict[str, Track]:
        """The recorded previous track per VM; empty when there is no record yet."""
        ...

    def origins(self) -> dict[str, str]:
        """The destination that changed each VM, as of the last `load` or `store`."""
        ...

    async def store(self, tracks: Mapping[str, Track], origins: Origins) -> None:
        """Replace the record; raising stops the reconcile before anything more is written."""
        ...

    def pending_restarts(self) -> dict[str, PendingRestart]:
        """The VMs waiting for a restart (pending.py), as of the last `load` or `store_pending_restarts`."""
        ...

    async def store_pending_restarts(self, pending: Mapping[str, PendingRestart]) -> None:
        """Replace the VMs waiting for a restart; kept beside the previous tracks, written apart from them."""
        ...

    async def confirm(self) -> None:
        """Make sure what `load` answered holds, before writes or a status computed from it go out: a
        record may answer a never-reconciled policy's first `load` without reading (kopfapp/records.py).
        Raising stops the reconcile."""
        ...


class MemoryRecord:
    """A record held in memory: what a standalone reconcile (and the engine's tests) use."""

    def __init__(self, tracks: Mapping[str, Track] | None = None, origins: Origins | None = None) -> None:
        self.tracks: dict[str, Track] = dict(tracks or {})
        self.by: dict[str, str] = dict(origins or {})
        self.pending: dict[str, PendingRestart] = {}
        self.stores = 0
        self.pending_stores = 0

    async def load(self) -> dict[str, Track]:
        return dict(self.tracks)

    def origins(self) -> dict[str, str]:
        return dict(self.by)

    async def store(self, tracks: Mapping[str, Track], origins: Origins) -> None:
        self.tracks = dict(tracks)
        self.by = {u: o for u, o in origins.items() if u in tracks}
        self.stores += 1

    def pending_restarts(self) -> dict[str, PendingRestart]:
        return dict(self.pending)

    async def store_pending_restarts(self, pending: Mapping[str, PendingRestart]) -> None:
        self.pending = dict(pending)
        self.pending_stores += 1

    async def confirm(self) -> None:
        return None  # it answers from what it holds


def encode_record(tracks: Mapping[str, Track], origins: Origins | None = None) -> str:
    origins = origins or {}
    numbers: dict[str, int] = {}
    for destination in sorted({o for u, o in origins.items() if o and u in tracks}):
        numbers[destination] = len(numbers)
    header = "".join(f"@{n} {quote(d, safe=':/')}\n" for d, n in numbers.items())
    lines = (
        f"{uuid} {tracks[uuid]}" + (f" {numbers[origin]}\n" if (origin := origins.get(uuid)) else "\n")
        for uuid in sorted(tracks)
    )
    return header + "".join(lines)


def decode_record(text: str) -> dict[str, Track]:
    return decode_record_with_origins(text)[0]


def decode_record_with_origins(text: str) -> tuple[dict[str, Track], dict[str, str]]:
    found: dict[str, Track] = {}
    origins: dict[str, str] = {}
    destinations: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if header := _HEADER.match(line):
            destinations[header.group(1)] = unquote(header.group(2))
        elif (match := _LINE.match(line)) and match.group(2) in TRACKS:
            found[match.group(1)] = cast(Track, match.group(2))
            if match.group(3) is not None and match.group(3) in destinations:
                origins[match.group(1)] = destinations[match.group(3)]
    return found, origins

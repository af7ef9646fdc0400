"""The previous-track record of a selector policy: what `Restore` puts back, kept outside status.

A UUID policy keeps each VM's `previousTrack` in its status entry. A selector policy may cover 10,000 VMs,
while its status lists only a bounded few (see `selecting.py`), so the record lives elsewhere: the engine
asks a `TrackRecord` port for it (the operator's is a ConfigMap owned by the policy) and stays free of
Kubernetes. The record is written before the writes it covers (design.md §5.4: intent before action), read
at every reconcile, and used whole when the policy is deleted.

The text form is one line per VM, `<uuid> <track>` (~39 bytes): 10,000 VMs fit in 400 KB, well inside a
ConfigMap's 1 MiB. Parsing is lenient: a malformed line is skipped, never fatal, as with status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol, cast

from vmclock.zstack.models import TRACKS, Track

_LINE = re.compile(r"^([0-9a-f]{32}) (\w+)$")


class TrackRecord(Protocol):
    async def load(self) -> dict[str, Track]:
        """The recorded previous track per VM; empty when there is no record yet."""
        ...

    async def store(self, tracks: Mapping[str, Track]) -> None:
        """Replace the record; raising stops the reconcile before anything more is written."""
        ...


class MemoryRecord:
    """A record held in memory: what a standalone reconcile (and the engine's tests) use."""

    def __init__(self, tracks: Mapping[str, Track] | None = None) -> None:
        self.tracks: dict[str, Track] = dict(tracks or {})
        self.stores = 0

    async def load(self) -> dict[str, Track]:
        return dict(self.tracks)

    async def store(self, tracks: Mapping[str, Track]) -> None:
        self.tracks = dict(tracks)
        self.stores += 1


def encode_record(tracks: Mapping[str, Track]) -> str:
    return "".join(f"{uuid} {tracks[uuid]}\n" for uuid in sorted(tracks))


def decode_record(text: str) -> dict[str, Track]:
    found: dict[str, Track] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match and match.group(2) in TRACKS:
            found[match.group(1)] = cast(Track, match.group(2))
    return found

"""Write status only when it changed, as a merge patch of the top-level keys that differ.

Merge-patch replaces lists wholesale, which is what we want for `conditions` and `vms` (the engine computes
them complete). Keys that disappeared are sent as null so the API server removes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class StatusPatcher(Protocol):
    async def patch_status(
        self, plural: str, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> bool: ...


def status_patch(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {k: v for k, v in wanted.items() if stored.get(k) != v}
    patch.update({k: None for k in stored if k not in wanted})
    return patch


async def write_status(
    api: StatusPatcher,
    plural: str,
    ref: tuple[str, str],
    stored: Mapping[str, Any],
    wanted: Mapping[str, Any],
) -> bool:
    """True when a PATCH was sent (and the object still exists)."""
    patch = status_patch(stored, wanted)
    if not patch:
        return False
    return await api.patch_status(plural, ref[0], ref[1], patch)

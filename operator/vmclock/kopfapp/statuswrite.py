"""Write status only when it changed, as a merge patch of the top-level keys that differ.

Merge-patch replaces lists wholesale, which is what we want for `conditions` and `vms` (the engine computes
them complete). Keys that disappeared are sent as null so the API server removes them. A `uid` pins the
write to one incarnation of the object (see KubeApi.patch_status).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from vmclock.refs import Ref


class StatusPatcher(Protocol):
    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status_patch: Mapping[str, Any],
        *,
        uid: str | None = None,
        status: Mapping[str, Any] | None = None,
    ) -> bool: ...


def status_patch(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {k: v for k, v in wanted.items() if stored.get(k) != v}
    patch.update({k: None for k in stored if k not in wanted})
    return patch


async def write_status(
    api: StatusPatcher,
    plural: str,
    ref: Ref,
    stored: Mapping[str, Any],
    wanted: Mapping[str, Any],
    *,
    uid: str | None = None,
) -> bool:
    """True when a PATCH was sent (and the object still exists)."""
    patch = status_patch(stored, wanted)
    if not patch:
        return False
    return await api.patch_status(plural, ref.namespace, ref.name, patch, uid=uid, status=wanted)

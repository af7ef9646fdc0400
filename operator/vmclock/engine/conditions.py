"""metav1.Condition bookkeeping for `Ready` and `Synced`.

`lastTransitionTime` changes only when a condition's status flips (API conventions), so an unchanged
reconcile produces an identical condition list and no status write. Every condition carries the generation
it describes, so clients (kubectl wait, Argo CD) can tell a stale verdict from a fresh one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

READY = "Ready"
SYNCED = "Synced"
MAX_MESSAGE = 1024

ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


def one_line(text: str, limit: int) -> str:
    """Messages end up in kubectl tables and Events: no newlines, bounded length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def merge_conditions(
    stored: Sequence[Mapping[str, Any]] | None,
    wanted: Sequence[Condition],
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The stored list with `wanted` conditions replaced; conditions of other types are kept as they are."""
    by_type = {c.get("type"): c for c in stored or () if isinstance(c, Mapping)}
    merged: list[dict[str, Any]] = []
    for condition in wanted:
        old = by_type.get(condition.type) or {}
        unchanged = old.get("status") == condition.status and isinstance(old.get("lastTransitionTime"), str)
        merged.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": one_line(condition.message, MAX_MESSAGE),
                "lastTransitionTime": old["lastTransitionTime"] if unchanged else now,
                "observedGeneration": generation,
            }
        )
    wanted_types = {c.type for c in wanted}
    merged.extend(dict(c) for t, c in by_type.items() if t not in wanted_types)
    return merged


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if isinstance(c, Mapping) and c.get("type") == kind), None)

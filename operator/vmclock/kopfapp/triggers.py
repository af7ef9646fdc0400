"""Which watch events of a policy ask for a reconcile: predicates on watch events, as controller-runtime
has them, in place of kopf's diff base (issue 14).

kopf tells a change from a no-op by diffing each object against a copy of it kept in an annotation, and
writes that copy back after its handlers ran: one more PATCH per new or changed policy, one more watch
event to process, and a 1,000-UUID spec stored twice in the object. None of it is needed here: the handler
only enqueues, and the worker reads the object afresh and reconciles whatever it finds. An event only has
to answer "may this need a reconcile?", and three values per incarnation (uid) answer it: the generation
(the API server raises it on every spec change) and the two trigger annotations (metadata: no
generation). Our own status writes change none of them, so they never come back as work.

A uid this process has not seen always asks: at a start that is kopf's initial listing (what kopf's
resume handler was), later a creation. Memory is per process, so a trigger annotation set while the
operator was away is not told apart from a listing; it need not be, as the start-up round reads ZStack
after the start and so after the request.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vmclock.engine.spec import PAUSED_ANNOTATION, RECONCILE_REQUESTED_ANNOTATION
from vmclock.kopfapp.claims import settled

DELETED = "DELETED"


class Trigger(enum.Enum):
    LISTED = "listed"  # first sight in kopf's listing (type None): at a start, or a re-list after a gap
    NEW = "new"  # first sight in a watch event: created while the operator runs
    GENERATION = "generation"  # its spec changed
    ANNOTATION = "annotation"  # paused or reconcile-requested-at was set, changed or removed


@dataclass(frozen=True)
class Seen:
    generation: int
    paused: str | None
    requested: str | None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Seen:
        meta = body.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            int(meta.get("generation") or 0),
            annotations.get(PAUSED_ANNOTATION),
            annotations.get(RECONCILE_REQUESTED_ANNOTATION),
        )


def uid_of(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("uid") or "")


class Triggers:
    """What this process last enqueued each policy incarnation for, by uid (a namesake re-created under
    a new uid is a first sight). Deletion is not a trigger here: the DELETED event has a handler of its
    own, which also forgets the uid."""

    def __init__(self) -> None:
        self._seen: dict[str, Seen] = {}

    def check(self, event_type: str | None, body: Mapping[str, Any]) -> Trigger | None:
        """Why this event asks for a reconcile, or None; remembers nothing (kopf's `when=` filter, run on
        every event: a status write's event stops here, before kopf runs and logs a handler)."""
        if event_type == DELETED:
            return None
        before = self._seen.get(uid_of(body))
        if before is None:
            return Trigger.LISTED if event_type is None else Trigger.NEW
        now = Seen.of(body)
        if now.generation > before.generation:
            return Trigger.GENERATION
        if (now.paused, now.requested) != (before.paused, before.requested):
            return Trigger.ANNOTATION
        return None

    def note(self, event_type: str | None, body: Mapping[str, Any]) -> Trigger | None:
        """`check`, then remember the event's values: the handler calls it as it enqueues."""
        trigger = self.check(event_type, body)
        if event_type != DELETED:
            self._seen[uid_of(body)] = Seen.of(body)
        return trigger

    def forget(self, uid: str) -> None:
        self._seen.pop(uid, None)


def settled_at_start(trigger: Trigger | None, body: Mapping[str, Any]) -> bool:
    """kopf listed a settled policy this process had not seen (claims.settled: nothing of its spec changed
    while the operator was away), so it asks about the world since the operator started, and joins its
    connection's start-up round. Any other trigger asks about the world from now on."""
    return trigger is Trigger.LISTED and settled(body)

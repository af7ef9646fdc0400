"""kopf's diff base (its copy of an object's essence, in an annotation) only for the kinds that use it.

ZStackConnections keep kopf's create/update/resume handlers, and so kopf's annotation. VmClockPolicies
have none of those (triggers.py picks the events that enqueue), so for them the base is empty, always:
kopf sees no change in a policy, builds no essence of it on every watch event, and writes nothing after
a creation or change (no PATCH, no second copy of a 1,000-UUID spec). A deletion is still a deletion:
kopf looks at deletionTimestamp and its finalizer before any diff, so the restore handler runs.

An upgrade leaves the annotation older versions wrote on each policy; nothing reads it any more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import kopf

from vmclock.engine.spec import GROUP


def _empty() -> kopf.BodyEssence:
    return cast(kopf.BodyEssence, {})


class DiffBaseOfKinds(kopf.DiffBaseStorage):
    """`inner` for every object but those of the `without` kinds (of our API group)."""

    def __init__(self, inner: kopf.DiffBaseStorage, *, without: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        self._without = frozenset(without)

    def _skips(self, body: kopf.Body) -> bool:
        return body.get("kind") in self._without and str(body.get("apiVersion", "")).startswith(f"{GROUP}/")

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return _empty() if self._skips(body) else self._inner.build(body=body, extra_fields=extra_fields)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return _empty() if self._skips(body) else self._inner.fetch(body=body)

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if not self._skips(body):
            self._inner.store(body=body, patch=patch, essence=essence)

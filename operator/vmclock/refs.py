"""The identity of a namespaced object, `(namespace, name)`, as one type for every layer.

A NamedTuple so it stays a plain hashable tuple (kopf index keys, dict keys, log arguments) while reading as
`ref.namespace` / `ref.name` instead of `key[0]` / `key[1]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class Ref(NamedTuple):
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Ref:
        """The ref of an object body (a kopf Body or a plain dict from the API server)."""
        meta = body.get("metadata") or {}
        return cls(str(meta.get("namespace", "")), str(meta.get("name", "")))

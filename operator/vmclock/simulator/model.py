"""How an API is described: its route, parameters, sync/async nature and handler.

This mirrors what ZStack derives from annotations on each API message class (`@RestRequest`, `@APIParam`,
`@SuppressCredentialCheck`, `APISyncCallMessage`), so the REST layer and the pipeline can treat every API
the same way, in the order ZStack does.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from vmclock.simulator.queries import QuerySpec

ParamKind = Literal["str", "bool", "int"]


@dataclass(frozen=True)
class Param:
    """An `@APIParam` field, validated in declaration order: mandatory, validValues, resource existence."""

    name: str
    kind: ParamKind = "str"
    mandatory: bool = False
    valid_values: tuple[str, ...] = ()
    resource_type: str | None = None  # "VmInstanceVO" or "ResourceVO": the uuid must exist


@dataclass(frozen=True)
class Reply:
    """A successful API result; `classes` names the Java class of top-level objects for `schema`."""

    body: dict[str, Any]
    classes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One validated call as a handler sees it."""

    params: dict[str, Any]
    query: QuerySpec | None = None


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class ApiSpec:
    """One API message class.

    `action` is the body key of `isAction` APIs; on URLs several APIs share, RestServer picks the API by it.
    `interceptor` runs after the session check (RBAC/ownership position), before the handler.
    """

    name: str
    message_class: str
    method: str
    path: str
    handler: Handler
    action: str | None = None
    params: tuple[Param, ...] = ()
    is_async: bool = False
    is_query: bool = False
    needs_auth: bool = True
    interceptor: Callable[[Call], None] | None = None

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return path_pattern(self.path)

    @property
    def shape(self) -> str:
        return path_shape(self.path)


_VARIABLE = re.compile(r"\{([^}]*)\}")


def path_shape(template: str) -> str:
    """The path with variables blanked; APIs of the same shape share a URL (RestServer.normalizePath)."""
    return _VARIABLE.sub("{}", template)


def path_pattern(template: str) -> re.Pattern[str]:
    """`/v1/vm-instances/{uuid}/actions` -> a regex with one named group per named variable."""
    parts = _VARIABLE.split(template)  # literal, name, literal, name, ..., literal
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" if part else "[^/]+"
        for i, part in enumerate(parts)
    )
    return re.compile(regex)

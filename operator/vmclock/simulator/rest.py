"""RestServer: the HTTP layer in front of the API pipeline (zstack-api.md §1, §2, §6, §8).

Order per request, as in ZStack's RestServer.handle: job polls first (no auth), then URL -> API (404 "no
api mapping"), the action key of shared URLs (400), the Authorization header (400/403), the parameters
(query string or body; type checks 400), X-Job-UUID and X-API-Timeout; only then is a message sent, either
answered synchronously (200, or 503 with an ErrorCode) or stored as a job and answered 202.

In front of all that sit what a proxy or Tomcat would do: injected latency, dropped connections, HTML 502s
and the 8 KiB request-line limit (a request line of more than 8192 bytes, CRLF excluded, gets 414).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid as uuidlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from aiohttp import web

from vmclock.simulator.auth import Credential, read_credential
from vmclock.simulator.config import SimulatorConfig
from vmclock.simulator.errors import ApiError, RestError
from vmclock.simulator.faults import POLL_JOB, Faults
from vmclock.simulator.jobs import JobStore
from vmclock.simulator.mediator import Mediator
from vmclock.simulator.model import ApiSpec, Param, Reply, path_pattern, path_shape
from vmclock.simulator.queries import Condition, QuerySpec, parse_query
from vmclock.simulator.stats import Stats
from vmclock.simulator.wire import build_schema, json_response, text_response

MAX_REQUEST_LINE = 8192
JOB_PATH = re.compile(r"/v1/api-jobs/(?P<uuid>[^/]+)")
_JAVA_LONG = re.compile(r"[+-]?[0-9]{1,18}")
PROXY_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Route:
    """A URL shape and the APIs registered on it; `shared` URLs pick the API by the body's action key."""

    shape: str
    apis: tuple[ApiSpec, ...]
    shared: bool

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return path_pattern(self.shape)


def _routes(catalog: list[ApiSpec], shared_paths: list[str]) -> list[Route]:
    shared = {path_shape(path) for path in shared_paths}
    by_shape: dict[str, list[ApiSpec]] = {shape: [] for shape in shared}
    for api in catalog:
        by_shape.setdefault(api.shape, []).append(api)
    routes = [
        Route(shape, tuple(apis), shared=shape in shared or len(apis) > 1) for shape, apis in by_shape.items()
    ]
    # Literal paths win over templates (RestServer looks the path up verbatim before matching patterns).
    return sorted(routes, key=lambda route: "{}" in route.shape)


def _java_string(value: Any) -> str:
    """How the value prints in Java after Gson parsed the body (numbers are Doubles)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(float(value))
    if isinstance(value, str):
        return value
    raise RestError(
        500, f"Expected a string but was {'BEGIN_ARRAY' if isinstance(value, list) else 'BEGIN_OBJECT'}"
    )


def _typed(param: Param, value: Any) -> Any:
    """TypeVerifier: booleans must read "true"/"false", integers must be integral; both are 400 otherwise."""
    if value is None:
        return None
    source = _java_string(value)
    if param.kind == "bool":
        if source.lower() not in ("true", "false"):
            raise RestError(
                400,
                f"Invalid value for boolean field [{param.name}], [{source}] is not a valid boolean string"
                "[true, false].",
            )
        return source.lower() == "true"
    if param.kind == "int":
        try:
            number = float(source)
        except ValueError:
            number = float("nan")
        if not number.is_integer():
            raise RestError(400, f"[{param.name}] field is excepted an int or long, but was [{source}].")
        return int(number)
    return source


def _request_line_bytes(request: web.Request) -> int:
    version = request.version
    return len(f"{request.method} {request.raw_path} HTTP/{version.major}.{version.minor}".encode())


class RestServer:
    def __init__(
        self,
        *,
        config: SimulatorConfig,
        stats: Stats,
        faults: Faults,
        jobs: JobStore,
        mediator: Mediator,
        catalog: list[ApiSpec],
        shared_paths: list[str],
    ) -> None:
        self._config = config
        self._features = config.features
        self._stats = stats
        self._faults = faults
        self._jobs = jobs
        self._mediator = mediator
        self._routes = _routes(catalog, shared_paths)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self._stats.enter()
        try:
            if self._faults.latency > 0:
                await asyncio.sleep(self._faults.latency)
            if self._faults.roll(self._faults.drop_rate):
                return self.drop(request)
            if self._faults.roll(self._faults.html502_rate):
                return web.Response(status=502, text=PROXY_502, content_type="text/html")
            if _request_line_bytes(request) > MAX_REQUEST_LINE:
                return text_response(414, "Request-URI Too Long")
            return await self._dispatch(request, request.path.removeprefix(self._config.context_path))
        except RestError as error:
            return text_response(error.status, error.text)
        finally:
            self._stats.leave()

    @staticmethod
    def drop(request: web.Request) -> web.StreamResponse:
        """Close the connection without a response; the returned object is never written."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response()

    async def _dispatch(self, request: web.Request, path: str) -> web.StreamResponse:
        job_path = JOB_PATH.fullmatch(path)
        if job_path is not None:
            return self._poll(request, job_path["uuid"])
        route = next((r for r in self._routes if r.pattern.fullmatch(path)), None)
        if route is None:
            raise RestError(404, f"no api mapping to {path}")
        body = await self._body(request) if request.method in ("PUT", "POST") else {}
        api = self._pick(route, request.method, body, path)
        self._stats.calls[api.name] += 1
        credential = None
        if api.needs_auth:
            credential = read_credential(request.headers, request.method, path, self._config.access_keys)
        match = api.pattern.fullmatch(path)
        assert match is not None  # the route matched this shape
        if api.is_query:
            spec = self._query_spec(request, match.groupdict())
            return await self._sync(request, api, {}, credential, spec)
        params = self._params(request, api, body)
        params.update(match.groupdict())
        job_uuid = self._job_uuid(request)
        timeout = self._api_timeout(request)
        if not api.is_async:
            return await self._sync(request, api, params, credential)
        job = self._jobs.create(job_uuid or uuidlib.uuid4().hex)
        self._mediator.submit(job, api, params, credential, timeout)
        if self._faults.roll(self._faults.lost_accept_rate):
            return self.drop(request)
        base = self._config.advertised_url or f"{request.scheme}://{request.host}"
        location = f"{base}{self._config.context_path}/v1/api-jobs/{job.uuid}"
        return json_response(202, {"location": location, "apiTimeout": int(timeout * 1000)})

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise RestError(500, f"com.google.gson.JsonSyntaxException: {error}") from None
        if not isinstance(body, dict):
            raise RestError(500, "java.lang.IllegalStateException: Expected BEGIN_OBJECT")
        return body

    @staticmethod
    def _pick(route: Route, method: str, body: dict[str, Any], path: str) -> ApiSpec:
        candidates = [api for api in route.apis if api.method == method]
        if method == "PUT" and route.shared:
            api = next((a for a in candidates if a.action in body), None)
            if api is None:
                raise RestError(400, f"the body doesn't contain action mapping to the URL[{path}]")
            return api
        if not candidates:
            raise RestError(405, f"The method[{method}] is not allowed for the path[{path}]")
        return candidates[0]

    @staticmethod
    def _params(request: web.Request, api: ApiSpec, body: dict[str, Any]) -> dict[str, Any]:
        """Message fields: the query string for GET/DELETE, the action's map otherwise; unknown ignored."""
        if request.method in ("GET", "DELETE"):
            params: dict[str, Any] = {}
            for param in api.params:
                values = request.query.getall(param.name, [])
                if len(values) > 1:
                    raise RestError(
                        400,
                        f"Invalid query parameter[{param.name}], only one value is allowed for the parameter"
                        " but multiple values found",
                    )
                if values:
                    params[param.name] = _typed(param, values[0])
            return params
        action = body.get(api.action or "")
        if action is None:
            return {}
        if not isinstance(action, dict):
            raise RestError(500, "java.lang.IllegalStateException: Expected BEGIN_OBJECT")
        return {p.name: _typed(p, action[p.name]) for p in api.params if p.name in action}

    def _job_uuid(self, request: web.Request) -> str | None:
        job_uuid = request.headers.get("X-Job-UUID")
        if job_uuid is None:
            return None
        if len(job_uuid) != 32:
            raise RestError(400, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped")
        if request.method != "GET" and self._features.rejects_duplicate_job_uuid and self._jobs.get(job_uuid):
            raise RestError(400, f"Duplicate job uuid[{job_uuid}]")
        return job_uuid

    def _api_timeout(self, request: web.Request) -> float:
        raw = request.headers.get("X-API-Timeout")
        if raw is None:
            return self._config.api_timeout
        if not raw.strip():
            raise RestError(400, "Invalid header[X-API-Timeout], it cannot be empty")
        if not _JAVA_LONG.fullmatch(raw.strip()):
            raise RestError(500, f'For input string: "{raw}"')
        return float(int(raw))

    @staticmethod
    def _query_spec(request: web.Request, path_vars: dict[str, str]) -> QuerySpec:
        if "uuid" in path_vars:  # GET /v1/<resources>/{uuid}: one condition, other parameters ignored
            return QuerySpec(conditions=[Condition("uuid", "=", path_vars["uuid"])])
        grouped: dict[str, list[str]] = {}
        for name, value in request.query.items():
            grouped.setdefault(name, []).append(value)
        return parse_query(grouped)

    async def _sync(
        self,
        request: web.Request,
        api: ApiSpec,
        params: dict[str, Any],
        credential: Credential | None,
        query: QuerySpec | None = None,
    ) -> web.StreamResponse:
        try:
            reply = await self._mediator.call(api, params, credential, query)
        except ApiError as error:
            return json_response(503, {"error": error.to_json()})
        return self._success(request, reply, with_schema=api.is_query)

    @staticmethod
    def _success(request: web.Request, reply: Reply, *, with_schema: bool = False) -> web.StreamResponse:
        """200 with the mapped reply; `schema` for query replies and whenever X-JSON-Schema is sent."""
        body = dict(reply.body)
        if with_schema or "X-JSON-Schema" in request.headers:
            body["schema"] = build_schema(reply.body, reply.classes)
        return json_response(200, body)

    def _poll(self, request: web.Request, job_uuid: str) -> web.StreamResponse:
        """RestServer.handleJobQuery: runs before any authentication."""
        self._stats.calls[POLL_JOB] += 1
        if request.method != "GET":
            return text_response(405, "only GET method is allowed for querying job status")
        job = self._jobs.get(job_uuid)
        if job is None:
            return text_response(404, "the job has been expired")
        if job.outcome is None:
            return json_response(202, {})
        if isinstance(job.outcome, ApiError):
            return json_response(503, {"error": job.outcome.to_json()})
        return self._success(request, job.outcome)

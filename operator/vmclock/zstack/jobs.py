"""ZStack async jobs: submit with our own X-Job-UUID, then poll adaptively until the job ends.

Protocol (zstack-api.md §2): the submit answers 202 `{"location", "apiTimeout"}`; polling the location gives
202 while running, 200 with the result, 503 with the job's ErrorCode, 404 when the job is unknown.

Why our own X-Job-UUID: if the 202 is lost to a transport error the job may still have been stored and run.
Polling `/v1/api-jobs/<our id>` tells: any job state means it reached the store (keep polling, do not submit
twice); 404 means it never did, so a resubmit with a new id is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vmclock.zstack.errors import (
    GARBAGE,
    JOB_EXPIRED,
    JOB_TIMEOUT,
    TIMEOUT,
    TRANSPORT,
    MaySend,
    ZStackError,
)
from vmclock.zstack.options import ClientOptions
from vmclock.zstack.replies import Reply, error_from_reply, garbage, success_body
from vmclock.zstack.transport import Transport

log = logging.getLogger(__name__)

JOBS_PATH = "/v1/api-jobs/"
DEFAULT_API_TIMEOUT_MS = 1_800_000  # ZStack's default for async APIs without @DefaultTimeout (30 min)
MIN_API_TIMEOUT = 5.0  # seconds: a server-given apiTimeout below this is raised to it (never below max)
_JOB_ID_RE = re.compile(r"^[0-9A-Za-z-]{1,64}$")  # ZStack's are 32 hex characters
_POLL_TRANSIENT = frozenset({TRANSPORT, TIMEOUT, GARBAGE})  # the job lives on; only this poll failed
_GROWTH = 1.5
_LEARNED_HEAD = 0.75  # first poll at 3/4 of the typical duration: early enough not to overshoot it
_EWMA_WEIGHT = 0.2

Headers = Callable[[str, str], dict[str, str]]  # (method, api path) -> auth headers


@dataclass
class PollPacer:
    """When to poll next: soon at first, then x1.5 up to a cap; learns each API's typical job duration.

    Jobs of one API on one management node take similar times. Once a few have finished, the first poll
    waits for most of that typical time (capped) instead of spending five early polls to get there. Until
    one has finished (after a start, when a restart's writes all go out together) one job, the scout,
    polls at the early pace and the others wait for what it learns (`turn`): 30 writes cost about one
    scout's polls plus one each, not five each.
    """

    first_delay: float
    max_delay: float
    _typical: dict[str, float] = field(default_factory=dict)
    _scouts: dict[str, asyncio.Event] = field(default_factory=dict)

    def delays(self, api: str, waited: float = 0.0) -> Iterator[float]:
        """Waits before each poll of one job of `api` that has run for `waited` seconds already: the rest of
        the learned head (if any), then the backoff."""
        typical = self._typical.get(api)
        if typical is not None:
            head = min(self.max_delay, typical * _LEARNED_HEAD) - waited
            if head > self.first_delay:
                yield head
        yield from self.backoff()

    def backoff(self) -> Iterator[float]:
        """first_delay, growing x1.5 up to max_delay, forever."""
        step = self.first_delay
        while True:
            yield step
            step = min(self.max_delay, step * _GROWTH)

    def record(self, api: str, seconds: float) -> None:
        previous = self._typical.get(api)
        self._typical[api] = seconds if previous is None else previous + _EWMA_WEIGHT * (seconds - previous)

    @contextlib.asynccontextmanager
    async def turn(self, api: str) -> AsyncIterator[None]:
        """Around waiting for one job of `api` (and recording its duration): without a typical duration yet,
        the first such job is the scout and the others wait until it ended (at most `max_delay`, so a
        scout that happens to be slow or failing never holds them longer than one capped poll would)."""
        scout = self._scouts.get(api)
        if api in self._typical or scout is not None:
            if scout is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.max_delay):
                        await scout.wait()
            yield
            return
        ended = self._scouts[api] = asyncio.Event()
        try:
            yield
        finally:
            del self._scouts[api]
            ended.set()


class JobRunner:
    """One submit-and-wait attempt of an async API. Retrying failed attempts is the caller's business."""

    def __init__(self, transport: Transport, options: ClientOptions) -> None:
        self._transport = transport
        self._options = options
        self._pacer = PollPacer(options.poll_first_delay, options.poll_max_delay)
        # Waits after a failed poll: a failing poll means the node or the path to it is unwell, so back off
        # like any retry instead of at the (fast) polling pace.
        self._poll_retry = options.retry_backoff()

    async def run(
        self,
        api: str,
        method: str,
        api_path: str,
        body: Mapping[str, Any],
        headers: Headers,
        *,
        may_send: MaySend | None = None,
    ) -> dict[str, Any]:
        """Submit under a fresh X-Job-UUID and return the job's 200 body, or raise its error (NotSent when
        `may_send` withdrew the submit)."""
        job_id = uuid.uuid4().hex
        started = time.monotonic()
        request_headers = {**headers(method, api_path), "X-Job-UUID": job_id}
        try:
            reply = await self._transport.send(
                method, api_path, body=body, headers=request_headers, operation=api, may_send=may_send
            )
        except ZStackError as err:
            if err.code not in (TRANSPORT, TIMEOUT):
                raise
            return await self._recover(api, job_id, err, headers, started)
        if reply.status != 202:
            return success_body(reply, api, self._transport.redact)  # 200: finished synchronously
        job_path, deadline = self._job_path(reply.body, job_id), self._deadline(reply.body, since=started)
        # The 202's body is dropped before waiting: its memory left the reply budget when it was decoded.
        del reply
        async with self._pacer.turn(api):
            result = await self._wait(api, job_path, deadline, headers, since=started)
            self._pacer.record(api, time.monotonic() - started)
        return result

    async def _recover(
        self, api: str, job_id: str, lost: ZStackError, headers: Headers, started: float
    ) -> dict[str, Any]:
        """The submit's answer was lost: find out from the job store whether the job exists."""
        job_path = JOBS_PATH + job_id
        log.info("%s: submit answer lost (%s); looking for job %s", api, lost.code, job_id)
        reply = await self._poll_until_answered(api, job_path, headers, deadline=None)
        if reply.status == 404:
            # Not stored, so not run: raising the original transport error lets the caller resubmit. (A submit
            # that timed out could still be on its way into the store; the resubmit then repeats the same
            # setting, which changes nothing for SetVmClockTrack.)
            log.info("%s: job %s was never stored; safe to resubmit", api, job_id)
            raise lost
        # The job exists. Its duration is not recorded: it includes the lost submit's timeout.
        return await self._wait(
            api, job_path, self._deadline(None, since=started), headers, reply, since=started
        )

    async def _wait(
        self,
        api: str,
        job_path: str,
        deadline: float,
        headers: Headers,
        reply: Reply | None = None,
        *,
        since: float,
    ) -> dict[str, Any]:
        """Poll until the job leaves 202; `reply` is a poll answer already in hand (after a lost submit);
        `since`: when the job was submitted."""
        delays = self._pacer.delays(api, waited=time.monotonic() - since)
        while reply is None or reply.status == 202:
            reply = None  # not held while waiting, as in run()
            pause = next(delays)
            if time.monotonic() + pause > deadline:
                raise _job_timeout(api)
            await asyncio.sleep(pause)
            reply = await self._poll_until_answered(api, job_path, headers, deadline=deadline)
        if reply.status == 404:
            description = "the job is unknown to ZStack (purged, or the node lost it)"
            raise ZStackError.client(JOB_EXPIRED, description, http_status=404, operation=api)
        return success_body(reply, api, self._transport.redact)

    async def _poll_until_answered(
        self, api: str, job_path: str, headers: Headers, *, deadline: float | None
    ) -> Reply:
        """GET the job, retrying transport failures and garbage: they say nothing about the job itself.

        With a `deadline` the job is known to exist, so polling goes on until then and never ends in a
        retryable error (that would make the caller submit a second copy of a job that is still running).
        Without one (probing for a job whose submit answer was lost) the usual bounded attempts apply.
        """
        failures = 0
        while True:
            try:
                reply = await self._transport.send(
                    "GET", job_path, headers=headers("GET", job_path), operation=api
                )
            except ZStackError as err:
                failure = err
            else:
                if _is_job_state(reply):
                    return reply
                failure = _poll_failure(reply, api, self._transport.redact)
                if failure.code not in _POLL_TRANSIENT:
                    raise failure
            pause = self._poll_retry.delay(failures)
            failures += 1
            if deadline is None and failures >= self._options.retry_attempts:
                raise failure
            if deadline is not None and time.monotonic() + pause > deadline:
                raise _job_timeout(api) from None
            log.info("%s: polling %s failed (%s), polling again", api, job_path, failure.code)
            await asyncio.sleep(pause)

    @staticmethod
    def _job_path(body: Any, job_id: str) -> str:
        """Rewrite `location` to our endpoint: keep only what follows /v1/api-jobs/ (the MN may name an
        internal address or another context path). Without a usable location, our own id finds the job."""
        location = body.get("location") if isinstance(body, dict) else None
        if isinstance(location, str) and JOBS_PATH in location:
            tail = location.split(JOBS_PATH, 1)[1].split("?", 1)[0].strip("/")
            if _JOB_ID_RE.match(tail):
                return JOBS_PATH + tail
        log.warning("job accepted without a usable location; polling by our X-Job-UUID %s", job_id)
        return JOBS_PATH + job_id

    def _deadline(self, body: Any, *, since: float) -> float:
        """apiTimeout (ms) bounds the wait; ZStack fails the job itself by then, this is only a safety net.

        The server's value is clamped to [MIN_API_TIMEOUT, max_job_timeout]: an endpoint answering 1e15 must
        not make the operator poll (and hold the policy) forever, nor one answering 1 give up at once.
        """
        timeout_ms = body.get("apiTimeout") if isinstance(body, dict) else None
        # `not > 0` also refuses NaN (all its comparisons are false), should one ever get past jsonguard.
        if not isinstance(timeout_ms, int | float) or isinstance(timeout_ms, bool) or not timeout_ms > 0:
            timeout_ms = DEFAULT_API_TIMEOUT_MS
        ceiling = self._options.max_job_timeout
        timeout = min(ceiling, max(min(MIN_API_TIMEOUT, ceiling), timeout_ms / 1000.0))
        grace = self._options.request_timeout + self._options.poll_max_delay
        return since + timeout + grace


def _job_timeout(api: str) -> ZStackError:
    return ZStackError.client(JOB_TIMEOUT, "job did not finish within its apiTimeout", operation=api)


def _is_job_state(reply: Reply) -> bool:
    """Running (202), gone (404), done (200 with a JSON object) or failed (an ErrorCode body)."""
    if reply.status == 200:
        return isinstance(reply.body, dict)
    return reply.status in (202, 404) or reply.error_body is not None


def _poll_failure(reply: Reply, api: str, redact: Callable[[str], str]) -> ZStackError:
    if reply.status == 200:
        return garbage(api, "job poll answered 200 without a JSON object", reply, redact)
    return error_from_reply(reply, api, redact)

"""ZStack's API pipeline once RestServer has built a message (zstack-api.md §3 "check order", §8).

Order: management node ready -> (injected fault) -> SYSTEM interceptors (parameters in declaration order:
mandatory, validValues, resource existence) -> FRONT (session check, which renews the session) -> the API's
own interceptor -> handler. That order is observable: an unknown VM with a bad session yields SYS.1003, not
ID.1001. Async APIs run the same pipeline inside a job whose result the client polls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from vmclock.simulator.auth import Credential
from vmclock.simulator.errors import ApiError, mandatory, not_in_valid_values, resource_not_found
from vmclock.simulator.faults import Faults
from vmclock.simulator.jobs import Job, JobStore
from vmclock.simulator.model import ApiSpec, Call, Reply
from vmclock.simulator.queries import QuerySpec
from vmclock.simulator.state import SimState

log = logging.getLogger(__name__)

MANAGEMENT_NODE_UUID = "8c1d7a3f7f6a4f1e9b0f6f2c3d4e5a6b"


class Mediator:
    def __init__(self, state: SimState, faults: Faults, jobs: JobStore) -> None:
        self._state = state
        self._faults = faults
        self._jobs = jobs
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(
        self,
        api: ApiSpec,
        params: dict[str, Any],
        credential: Credential | None,
        query: QuerySpec | None = None,
    ) -> Reply:
        """Run one API to completion; failures raise ApiError."""
        if not self._faults.ready:
            raise ApiError("SYS.1010", f"management node[uuid:{MANAGEMENT_NODE_UUID}] is not ready yet")
        injected = self._faults.injected_error(api.name)
        if injected is not None:
            raise ApiError(injected, f"fault injected by the simulator into {api.name}")
        call = Call(self._validate(api, params), query)
        if api.needs_auth and credential is not None:
            self._check_session(credential)
        if api.interceptor is not None:
            api.interceptor(call)
        return await api.handler(call)

    def _validate(self, api: ApiSpec, params: dict[str, Any]) -> dict[str, Any]:
        valid: dict[str, Any] = {}
        for param in api.params:
            value = params.get(param.name)
            if isinstance(value, str):
                value = value.strip()
            if value is None:
                if param.mandatory:
                    raise mandatory(param.name, api.message_class)
                continue
            if param.valid_values and str(value) not in param.valid_values:
                raise not_in_valid_values(param.name, api.message_class, param.valid_values, value)
            if param.resource_type is not None and value not in self._state.vms:
                raise resource_not_found(param.name, str(value), param.resource_type)
            valid[param.name] = value
        return valid

    def _check_session(self, credential: Credential) -> None:
        """The FRONT session check; a valid session is renewed (sliding expiry). AccessKey calls were
        verified by the REST layer and carry no session."""
        if (
            credential.session_uuid is not None
            and self._state.sessions.renew(credential.session_uuid) is None
        ):
            raise ApiError("ID.1001", "Session expired")

    def submit(
        self, job: Job, api: ApiSpec, params: dict[str, Any], credential: Credential | None, timeout: float
    ) -> None:
        """Run an async API in the background; its outcome lands in the job record."""
        task = asyncio.create_task(
            self._run(job, api, params, credential, deadline=timeout), name=f"job-{job.uuid}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        job: Job,
        api: ApiSpec,
        params: dict[str, Any],
        credential: Credential | None,
        *,
        deadline: float,
    ) -> None:
        """`deadline`: the API timeout in seconds (X-API-Timeout or the 30 min default); past it, SYS.1001."""
        outcome: Reply | ApiError
        try:
            async with asyncio.timeout(deadline):
                outcome = await self.call(api, params, credential)
        except ApiError as error:
            outcome = error
        except TimeoutError:
            outcome = ApiError("SYS.1001", f"API[{api.message_class}] timeout after {int(deadline * 1000)}ms")
        except Exception as error:  # a simulator bug must still finish the job, as ZStack's MessageSafe does
            log.exception("job %s (%s) crashed", job.uuid, api.name)
            outcome = ApiError("SYS.1000", f"{type(error).__name__}: {error}")
        self._jobs.complete(job, outcome)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

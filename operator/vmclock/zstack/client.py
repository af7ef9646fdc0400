"""ZStackClient: the async facade the operator uses for one management node.

It wires the layers (transport, auth, retries, jobs, queries) and knows which ZStack APIs answer which
question; the protocol rules live in those layers. Usage and guarantees: see the package docstring.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from types import TracebackType
from typing import Self

from vmclock.zstack.auth import LOGIN_API, AccessKeyAuth, Authorizer, SessionAuth
from vmclock.zstack.calls import Api
from vmclock.zstack.clocktrack import read_tracks, read_tracks_in_bulk, write_track
from vmclock.zstack.credentials import AccessKeyCredentials, Credentials
from vmclock.zstack.errors import BAD_REPLY, MaySend, ZStackError
from vmclock.zstack.inventory import QUERY_VM, VMS, existing_vms, vm_inventories
from vmclock.zstack.jobs import JobRunner
from vmclock.zstack.models import Track, VmInventory, ZStackVersion
from vmclock.zstack.observe import OnCall
from vmclock.zstack.options import ClientOptions, Endpoint
from vmclock.zstack.query import Page, encode_query
from vmclock.zstack.reboot import reboot_vm
from vmclock.zstack.redact import Redactor
from vmclock.zstack.retry import RetryPolicy
from vmclock.zstack.selection import Selector, selected_vms
from vmclock.zstack.transport import Transport

GET_VERSION_API = "GetVersion"
READY_API = "IsReadyToGo"


class ZStackClient:
    """Async client for one ZStack management node; use as `async with ZStackClient(...) as client:`."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        options: ClientOptions | None = None,
        *,
        on_call: OnCall | None = None,
    ) -> None:
        self.options = options or ClientOptions()
        self.endpoint = Endpoint.parse(endpoint, self.options.context_path)
        self.version: ZStackVersion | None = None
        self._retry = RetryPolicy(attempts=self.options.retry_attempts, backoff=self.options.retry_backoff())
        self._transport = Transport(self.endpoint, self.options, Redactor())
        self._auth: Authorizer
        if isinstance(credentials, AccessKeyCredentials):
            self._auth = AccessKeyAuth(credentials, self._transport, clock=time.time)
        else:
            self._auth = SessionAuth(credentials, self._transport, on_call)
        jobs = JobRunner(self._transport, self.options)
        self._api = Api(self._transport, self._auth, self._retry, jobs, on_call)
        self._closed = False
        account = (
            credentials.access_key_id
            if isinstance(credentials, AccessKeyCredentials)
            else credentials.account_name
        )
        # Which management node and account a change is made through: recorded beside each previous track,
        # so a restore knows whether "not found" was asked of the node that made the change. Names only.
        self.destination = f"{self.endpoint.origin}{self.endpoint.context_path}#{account}"

    def __repr__(self) -> str:
        return f"ZStackClient({self.endpoint.url('')!r}, {self._auth!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def check_ready(self) -> None:
        """`GET /v1/management-nodes/ready`; raises ZStackError SYS.1010 when the node is not ready.

        A single attempt: this is a probe whose caller asks again later, so retrying would only delay
        the answer.
        """
        await self._api.sync(READY_API, "GET", "/v1/management-nodes/ready", authorized=False, retry=False)

    async def get_version(self) -> ZStackVersion:
        """getVersion (no auth needed); cached as `client.version`, which picks the clock-track storage."""
        body = await self._api.sync(
            GET_VERSION_API, "PUT", "/v1/management-nodes/actions", body={"getVersion": {}}, authorized=False
        )
        version = body.get("version")
        try:
            self.version = ZStackVersion.parse(version if isinstance(version, str) else "")
        except ValueError:
            # Not echoed: nothing has proven yet that this endpoint is ZStack (design §6.2).
            what = "getVersion reply without an x.y.z version"
            raise ZStackError.client(BAD_REPLY, what, operation=GET_VERSION_API) from None
        return self.version

    async def login(self) -> None:
        """Make sure the credentials work: log in (account), or make one signed call (AccessKey).

        Raises ZStackError ID.1000 for a wrong account or password. Calls log in lazily anyway.
        """
        if self._auth.renewable:
            await self._retry.run(self._auth.grant, operation=LOGIN_API)
        else:
            await self._api.sync(
                QUERY_VM, "GET", VMS.path, query=encode_query([], page=Page(start=0, limit=1))
            )

    async def logout(self) -> None:
        """End the account session now (the next call logs in again); nothing to do for AccessKey."""
        await self._auth.logout()

    async def close(self) -> None:
        """Log out and close the HTTP session; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._auth.logout()
        finally:
            await self._transport.close()

    async def get_vm_inventories(self, uuids: Sequence[str]) -> dict[str, VmInventory]:
        """Inventories of the VMs among `uuids` that exist; unknown uuids are simply absent."""
        return await vm_inventories(self._api, uuids, page_size=self.options.page_size)

    async def select_vms(self, selector: Selector) -> dict[str, VmInventory]:
        """Inventories of the VMs `selector` picks now: paged queries with `fields=` limited to what status
        shows. Raises ValueError for a selector value ZStack's query parser would misread."""
        return await selected_vms(self._api, selector, page_size=self.options.page_size)

    async def get_clock_tracks(
        self, uuids: Sequence[str], *, existing: Collection[str] | None = None
    ) -> dict[str, Track]:
        """The effective track of each VM among `uuids` that exists (storage chosen by ZStack version).

        `existing`: uuids already known to exist (e.g. the keys of `get_vm_inventories`), which saves the
        existence query.
        """
        version = self.version or await self.get_version()
        if existing is None:
            known = await existing_vms(self._api, uuids, page_size=self.options.page_size)
        else:
            known = set(existing) & set(uuids)
        return await read_tracks(self._api, version.storage_mode, known, page_size=self.options.page_size)

    async def get_clock_tracks_in_bulk(self, existing: Collection[str]) -> dict[str, Track]:
        """The effective track of each VM in `existing` (known to exist), read as whole listings: every
        `vm.clock.track` row (system tag `clockTrack::guest` before 4.3.12) plus the global default. For
        thousands of VMs this is far fewer requests than `get_clock_tracks`' UUID batches."""
        version = self.version or await self.get_version()
        return await read_tracks_in_bulk(
            self._api, version.storage_mode, existing, page_size=self.options.page_size
        )

    async def set_clock_track(
        self,
        uuid: str,
        track: Track,
        *,
        sync_after_vm_resume: bool | None = None,
        interval_in_seconds: int | None = None,
        may_send: MaySend | None = None,
    ) -> VmInventory:
        """SetVmClockTrack (async job, polled adaptively); returns the VM inventory ZStack sends back.

        Raises ValueError for a malformed uuid or track, ZStackError for what ZStack (or the wire) said,
        NotSent when `may_send` (asked right before each submit leaves) withdrew it.
        """
        return await write_track(
            self._api,
            uuid,
            track,
            sync_after_vm_resume=sync_after_vm_resume,
            interval_in_seconds=interval_in_seconds,
            may_send=may_send,
        )

    async def reboot_vm(self, uuid: str, *, may_send: MaySend | None = None) -> VmInventory:
        """RebootVmInstance (async job, sent once, never retried); returns the VM inventory after the reboot.

        Raises ValueError for a malformed uuid, ZStackError for what ZStack said (VM.1003 for a VM that is
        not Running or did not come back), NotSent when `may_send` withdrew it."""
        return await reboot_vm(self._api, uuid, may_send=may_send)

"""Async ZStack REST client (aiohttp) for the clock-track operator.

One `ZStackClient` per management node holds one reused aiohttp session. Inside it:
- authentication by account session (SHA-512 hex password, re-login once on ID.1001) or AccessKey signing;
- async jobs submitted under our own X-Job-UUID and polled adaptively, surviving a lost 202;
- retryable failures (transport, garbage 5xx, SYS.1001/1010/1012) retried with full-jitter backoff;
- at most `max_concurrent_requests` requests on the wire;
- queries whose conditions ZStack cannot misread, batched under 8 KiB request lines and paginated;
- every reply bounded, so a hostile endpoint costs one bounded exchange (design §6.2): bodies streamed under
  a byte cap, JSON admitted only when shallow and small enough to decode in slices without stalling the
  loop, rows and pages capped, texts cut to status's limits, apiTimeout clamped, versions read from a short
  head, redirects and compressed bodies refused.
Every failure surfaces as `ZStackError`; secrets (AccessKey signatures included) never appear in its text
or in logs.
"""

from vmclock.zstack.client import ZStackClient
from vmclock.zstack.credentials import AccessKeyCredentials, AccountCredentials, Credentials
from vmclock.zstack.errors import ErrorCode, ZStackError
from vmclock.zstack.models import StorageMode, Track, VmInventory, ZStackVersion
from vmclock.zstack.observe import OnCall
from vmclock.zstack.options import ClientOptions

__all__ = [
    "AccessKeyCredentials",
    "AccountCredentials",
    "ClientOptions",
    "Credentials",
    "ErrorCode",
    "OnCall",
    "StorageMode",
    "Track",
    "VmInventory",
    "ZStackClient",
    "ZStackError",
    "ZStackVersion",
]

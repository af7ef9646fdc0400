"""The REST layer's reading of the `Authorization` header (zstack-api.md §3).

RestServer only checks the header's shape for sessions (`OAuth <anything>`): whether the session is valid
is decided much later, by the API pipeline, which is why a bad session id shows up as ID.1001 in a 503 or
in a job result rather than here. AccessKey requests are verified here, in full: the Date header, the
±15 minute window (on local date-time digits, since `rest.checkTimeZone` is false) and the HMAC-SHA1
signature. ZStack's verifying backend is premium; its public copy (AccessKeyManager.doAuth) answers 403 with
plain text, in two texts SDKs tell apart by substring: one for an unknown or disabled key id, one for a
wrong signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from vmclock.simulator.errors import RestError
from vmclock.simulator.wire import MONTHS

MAX_SKEW = timedelta(minutes=15)  # RestConstants.REQUEST_DURATION_MINUTES
_MONTHS = {m: i + 1 for i, m in enumerate(MONTHS)}
_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{1,2}) ("
    + "|".join(_MONTHS)
    + r") (\d{4}) (\d{2}):(\d{2}):(\d{2}) \S+"
)


@dataclass(frozen=True)
class Credential:
    """Who a request claims to be: a session id the pipeline checks later, or None once an AccessKey
    signature proved the caller (the simulator's access keys belong to the admin account)."""

    session_uuid: str | None = None


def sign(secret: str, method: str, date: str, uri: str) -> str:
    """The SDKs' signature: base64(HMAC-SHA1(secret, METHOD\\nDate\\n/v1/path))."""
    digest = hmac.new(secret.encode(), f"{method}\n{date}\n{uri}".encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _local_date_time(header: str) -> datetime | None:
    """'EEE, dd MMM yyyy HH:mm:ss z' with the zone ignored, as checkTimeZone=false does."""
    match = _DATE.fullmatch(header.strip())
    if match is None:
        return None
    day, month, year, hour, minute, second = match.groups()
    try:
        return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None


def _verify_access_key(
    value: str, headers: Mapping[str, str], method: str, uri: str, access_keys: Mapping[str, str]
) -> Credential:
    date = headers.get("Date")
    if date is None:
        raise RestError(400, "'Date' must be incuded in request header")
    sent = _local_date_time(date)
    if sent is None:
        raise RestError(400, "'Date' format error, correct format is 'EEE, dd MMM yyyy HH:mm:ss z'")
    if abs(datetime.now() - sent) > MAX_SKEW:
        raise RestError(403, "requestTimeTooSkewed")
    key_id, sep, signature = value.partition(":")
    if not sep or not key_id.strip() or not signature.strip():
        raise RestError(400, "accessKey format is 'ZStack AccessKeyId:Signature'")
    key_id = key_id.strip()
    secret = access_keys.get(key_id)
    if secret is None:
        raise RestError(403, f"access key id: {key_id} does not existed or disabled")
    if not hmac.compare_digest(sign(secret, method, date, uri), signature.strip()):
        raise RestError(403, "wrong accessKey signature")
    return Credential()


def read_credential(
    headers: Mapping[str, str], method: str, uri: str, access_keys: Mapping[str, str]
) -> Credential:
    """`uri` is the decoded path from /v1 on, without the query string (what AccessKey signs)."""
    auth = headers.get("Authorization")
    if auth is None:
        raise RestError(400, "missing header 'Authorization'")
    auth = auth.strip()
    if auth.startswith("OAuth"):
        return Credential(session_uuid=auth.replace("OAuth", "", 1).strip())
    if auth.startswith("ZStack"):
        return _verify_access_key(auth.removeprefix("ZStack").strip(), headers, method, uri, access_keys)
    raise RestError(400, "Authorization type must be 'OAuth'")

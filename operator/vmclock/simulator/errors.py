"""The two ways ZStack says no (zstack-api.md §4).

`RestError` is the REST layer refusing a request before any API runs: a plain-text body with a 4xx/5xx
status. `ApiError` is an API that ran and failed: HTTP 503 with `{"error": ErrorCode}`, either directly
(sync APIs) or as the result of a job (async APIs). Keeping them apart keeps every handler honest about
where in ZStack's pipeline a failure happens.
"""

from __future__ import annotations

from typing import Any

# Fixed descriptions per code, as in ZStack's conf/errorCodes/*.xml (clients must match on `code` only).
DESCRIPTIONS = {
    "SYS.1000": "An internal error happened in system",
    "SYS.1001": "A timeout happened",
    "SYS.1003": "Unable to find the resource",
    "SYS.1006": "An operation failed",
    "SYS.1007": "One or more API argument is invalid",
    "SYS.1010": "The management node is not ready",
    "SYS.1012": "The management node is unavailable",
    "ID.1000": "Unable to authenticate a user",
    "ID.1001": "The session is invalid, either wrong session id or the session has been expired",
    "ID.1002": "Permission denied",
    "VM.1003": "Unable to reboot a vm",
    "VM.1010": "VM is not in state that allows required operation",
    "HOST.1005": "Failed to start a vm on the hypervisor",
}


class RestError(Exception):
    """Rejected by RestServer itself: plain text, never JSON."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class ApiError(Exception):
    """An ErrorCode; becomes 503 `{"error": ...}` wherever it surfaces."""

    def __init__(self, code: str, details: str, cause: ApiError | None = None) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details
        self.cause = cause

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "description": DESCRIPTIONS.get(self.code, "An error happened"),
            "details": self.details,
        }
        if self.cause is not None:
            out["cause"] = self.cause.to_json()
        return out


def argerr(details: str) -> ApiError:
    """ZStack's `argerr`: SYS.1007, used for every parameter validation failure."""
    return ApiError("SYS.1007", details)


def mandatory(field: str, message_class: str) -> ApiError:
    return argerr(f"field[{field}] of message[{message_class}] is mandatory, can not be null")


def not_in_valid_values(field: str, message_class: str, valid: tuple[str, ...], found: object) -> ApiError:
    values = ", ".join(valid)
    return argerr(
        f"valid value for field[{field}] of message[{message_class}] are [{values}], but {found} found"
    )


def resource_not_found(field: str, uuid: str, resource_type: str) -> ApiError:
    return ApiError(
        "SYS.1003", f"invalid field[{field}], resource[uuid:{uuid}, type:{resource_type}] not found"
    )

"""Every error the server answers on purpose, and its HTTP status.

One hierarchy, mapped to HTTP in one middleware (server_stub/http.py), one JSON shape:

    {"error": "<message for a person>", "code": "<stable code>", "details": {...}}

Anything else raised inside a handler is a server bug: a 500 with code ``internal`` (logged
with its traceback), never a 4xx that a client would take as its own final mistake.
"""
from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal the caller can act on."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


class Invalid(ApiError):
    """Bad input from an admin or a client."""

    status = 400
    code = "invalid"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The request contradicts the current state (a finished task canceled, a name taken)."""

    status = 409
    code = "conflict"


class HostBusy(Conflict):
    """A task for a host that has an active one already (the one-task-per-host index)."""


class TooLarge(ApiError):
    status = 413
    code = "too_large"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class StorageBusy(Exception):
    """Not an error: no node of the task's storage group has a free slot, so the client waits and asks again."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position

"""One error base with a stable code and an HTTP status; features subclass it."""

from __future__ import annotations

from typing import Any, ClassVar


class AllegianceError(Exception):
    """Base of every error the product raises on purpose.

    ``code`` is stable (clients switch on it), ``status`` is the HTTP status the API answers with,
    ``field`` names the offending input field when there is one.
    """

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class ValidationFailed(AllegianceError):
    code = "validation_error"
    status = 422


class NotFound(AllegianceError):
    code = "not_found"
    status = 404


class Conflict(AllegianceError):
    code = "conflict"
    status = 409


class Forbidden(AllegianceError):
    code = "forbidden"
    status = 403


class Unauthorized(AllegianceError):
    code = "unauthorized"
    status = 401


class IdempotencyKeyReused(AllegianceError):
    """The same Idempotency-Key was sent with a different request body."""

    code = "idempotency_key_reused"
    status = 422


class IdempotencyInFlight(AllegianceError):
    """A request with this Idempotency-Key is still being processed."""

    code = "idempotency_in_flight"
    status = 409


class RateLimited(AllegianceError):
    code = "rate_limited"
    status = 429

"""Domain errors. Every error the API returns is one of these or is mapped onto one."""

from collections.abc import Sequence
from typing import TypedDict


class ErrorDetail(TypedDict):
    field: str | None
    message: str


class ApplicationError(Exception):
    """Base of every domain error: a stable lowercase `code` and the HTTP status it maps to."""

    code: str = "bad_request"
    status: int = 400
    default_message: str = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Sequence[ErrorDetail] = (),
        field: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        self.details: list[ErrorDetail] = list(details)
        if field is not None and not self.details:
            self.details = [{"field": field, "message": self.message}]
        super().__init__(self.message)


class ValidationFailed(ApplicationError):
    code = "validation_error"
    status = 400
    default_message = "The request has invalid fields."


class Unauthorized(ApplicationError):
    code = "unauthorized"
    status = 401
    default_message = "Authentication credentials were missing or invalid."


class PermissionDenied(ApplicationError):
    code = "forbidden"
    status = 403
    default_message = "You do not have permission to do this."


class NotFound(ApplicationError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class Conflict(ApplicationError):
    code = "conflict"
    status = 409
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(ApplicationError):
    code = "payload_too_large"
    status = 413
    default_message = "The request body is too large."


class ServiceUnavailable(ApplicationError):
    code = "service_unavailable"
    status = 503
    default_message = "A service the platform needs is unavailable."

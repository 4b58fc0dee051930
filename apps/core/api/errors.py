"""One exception handler: every error becomes `{error: {code, message, details}, meta}`."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from apps.core.api.envelope import Enveloped, request_meta
from apps.core.api.renderers import EnvelopeJSONRenderer
from apps.core.exceptions import ApplicationError, ErrorDetail

logger = logging.getLogger(__name__)

_DRF_CODES: list[tuple[type[drf.APIException], str]] = [
    (drf.ValidationError, "validation_error"),
    (drf.ParseError, "bad_request"),
    (drf.NotAuthenticated, "unauthorized"),
    (drf.AuthenticationFailed, "unauthorized"),
    (drf.PermissionDenied, "forbidden"),
    (drf.NotFound, "not_found"),
    (drf.MethodNotAllowed, "method_not_allowed"),
    (drf.NotAcceptable, "not_acceptable"),
    (drf.UnsupportedMediaType, "unsupported_media_type"),
    (drf.Throttled, "rate_limited"),
]


def error_body(code: str, message: str, details: Sequence[ErrorDetail] = ()) -> Enveloped:
    return Enveloped({"error": {"code": code, "message": message, "details": list(details)}})


def error_response(
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    details: Sequence[ErrorDetail] = (),
) -> JsonResponse:
    """An error envelope for code paths outside DRF (middleware, Django's handlers)."""
    body = dict(error_body(code, message, details))
    body["meta"] = request_meta(request)
    return JsonResponse(body, status=status)


def flatten_validation(detail: Any, prefix: str = "") -> list[ErrorDetail]:
    """DRF's nested error structure -> [{field: 'a.b[0].c', message}]."""
    out: list[ErrorDetail] = []
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if isinstance(key, int):  # ListField / DictField item errors: {0: [...]}
                path = f"{prefix}[{key}]"
            else:
                name = "" if key == "non_field_errors" else str(key)
                path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.extend(flatten_validation(value, path))
    elif isinstance(detail, list | tuple):
        if all(not isinstance(item, Mapping | list | tuple) for item in detail):
            out.extend({"field": prefix or None, "message": str(item)} for item in detail)
        else:
            for index, item in enumerate(detail):
                out.extend(flatten_validation(item, f"{prefix}[{index}]"))
    else:
        out.append({"field": prefix or None, "message": str(detail)})
    return out


def _drf_code(exc: drf.APIException) -> str:
    for cls, code in _DRF_CODES:
        if isinstance(exc, cls):
            return code
    return "bad_request" if exc.status_code < 500 else "internal_error"


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER. Never lets a stack trace out. An error is always JSON,
    even on an endpoint whose success is another media type (an SSE stream): the client
    asked for events, but what it gets is the error envelope, labelled as what it is."""
    request = context.get("request")
    renderer = getattr(request, "accepted_renderer", None)
    if request is not None and not isinstance(renderer, JSONRenderer):
        request.accepted_renderer = EnvelopeJSONRenderer()
        request.accepted_media_type = "application/json"
    return _error_response(exc)


def _error_response(exc: Exception) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is too large."), status=413
        )
    elif isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(
            detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )

    if isinstance(exc, drf.APIException):
        code = _drf_code(exc)
        if isinstance(exc, drf.ValidationError):
            details = flatten_validation(exc.detail)
            message = "Invalid input: " + "; ".join(
                f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in details
            )
        else:
            details = []
            message = str(exc.detail)
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf.Throttled) and wait is not None:
            headers["Retry-After"] = str(max(int(wait + 0.999), 1))
            message = f"Rate limit exceeded. Retry in {headers['Retry-After']} s."
        if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return Response(error_body(code, message, details), status=exc.status_code, headers=headers)

    logger.exception("Unhandled error in API view", exc_info=exc)
    return Response(error_body("internal_error", "An internal error occurred."), status=500)

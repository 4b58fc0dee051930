"""Django's error handlers: the JSON envelope under /api/, Django's pages elsewhere."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from apps.core.api.errors import error_response
from apps.core.middleware import is_api_path


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(request, 404, "not_found", "No such endpoint.")
    return defaults.page_not_found(request, exception)  # type: ignore[arg-type]


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(request, 500, "internal_error", "An internal error occurred.")
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(request, 400, "bad_request", "Bad request.")
    return defaults.bad_request(request, exception)  # type: ignore[arg-type]


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(request, 403, "forbidden", "You do not have permission to do this.")
    return defaults.permission_denied(request, exception)  # type: ignore[arg-type]

"""Middleware of the API contract: request ids, body limits, rate-limit headers, and
static files.

Each one works in both sync and async mode so that streaming responses served by the ASGI
server never hop to a thread just to pass through here.
"""

import re
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware

from apps.core.api.downloads import read_on_request_thread
from apps.core.api.errors import error_response
from apps.core.api.ratelimit import RateState, anonymous_rate_state
from apps.core.logging import request_id_var

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

GetResponse = Callable[[HttpRequest], Any]


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


class _Middleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        early = self.before(request)
        if self._async:
            return self._acall(request, early)
        response = early if early is not None else self.get_response(request)
        return self.after(request, response)

    async def _acall(
        self, request: HttpRequest, early: HttpResponseBase | None
    ) -> HttpResponseBase:
        if early is not None:
            response = early
        else:
            response = await self.get_response(request)
        return self.after(request, response)

    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return response


class RequestIdMiddleware(_Middleware):
    """Accept a well-formed X-Request-ID or make one; echo it and put it in every log line."""

    def before(self, request: HttpRequest) -> None:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else f"req_{uuid.uuid4().hex}"
        request.request_id = request_id  # type: ignore[attr-defined]
        request_id_var.set(request_id)
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response


class ApiBodyLimitMiddleware(_Middleware):
    """Refuse an API body over the limit with 413 before anything reads it."""

    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        if not is_api_path(request.path):
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(request, 400, "bad_request", "Invalid Content-Length header.")
        is_upload = request.content_type == "multipart/form-data"
        limit = settings.API_MAX_UPLOAD_BYTES if is_upload else settings.API_MAX_BODY_BYTES
        if length > limit:
            return error_response(
                request,
                413,
                "payload_too_large",
                f"The request body is {length} bytes; the limit is {limit} bytes.",
            )
        return None


class RateLimitHeadersMiddleware(_Middleware):
    """Put X-RateLimit-* on every API response.

    The throttle (apps.core.api.throttling) counts DRF requests per credential and leaves its
    state on the request; responses that never reached a DRF view (unknown routes, early
    413s) are counted against the anonymous per-address budget here.
    """

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if not is_api_path(request.path) or request.path.startswith("/api/health"):
            return response
        state: RateState | None = getattr(request, "rate_state", None)
        if state is None:
            state = anonymous_rate_state(request)
        response["X-RateLimit-Limit"] = str(state.limit)
        response["X-RateLimit-Remaining"] = str(state.remaining)
        response["X-RateLimit-Reset"] = str(state.reset)
        return response


class ApiHtmlErrorMiddleware(_Middleware):
    """Under /api/, an error page rendered by Django itself (with DEBUG on: the technical
    404 and 500 pages; a CSRF failure) becomes the JSON error envelope, so API clients
    never receive HTML, in any profile."""

    CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if (
            response.status_code < 400
            or not is_api_path(request.path)
            or not response.get("Content-Type", "").startswith("text/html")
        ):
            return response
        status = response.status_code
        if status >= 500:
            return error_response(request, status, "internal_error", "An internal error occurred.")
        code = self.CODES.get(status, "error")
        message = "No such endpoint." if status == 404 else "The request was refused."
        return error_response(request, status, code, message)


class StaticFilesMiddleware(WhiteNoiseMiddleware):  # type: ignore[misc]
    """WhiteNoise, usable in an async middleware chain.

    WhiteNoise's own middleware is sync-only, so under ASGI Django ran every request
    through a thread and back just to pass it (twice across the sync/async boundary per
    request). Serving a static file touches no database and reads the file lazily, so it
    is done inline in either mode; every other request goes straight on.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse, *args: Any, **kwargs: Any) -> None:
        super().__init__(get_response, *args, **kwargs)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            return self.get_response(request)
        response = self.serve(static_file, request)
        if not self._async:
            return response
        if response.streaming and not response.is_async:
            # The file's chunks read on the request's thread: a synchronous iterator would
            # make Django warn and read the whole file into memory first.
            response.streaming_content = read_on_request_thread(iter(response.streaming_content))
        return _resolved(response)


async def _resolved(response: HttpResponseBase) -> HttpResponseBase:
    return response

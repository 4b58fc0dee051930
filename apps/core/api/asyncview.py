"""API views that Django serves as async views (the stream endpoints).

`AsyncApiView.as_view()` is a coroutine function: Django's ASGI handler awaits it on the
event loop. DRF's whole handling of the request (authentication, the actor, scopes, rate
limits, idempotency, the handler, errors) is the same code as for every other view, run
on the request's thread (Django's per-request thread, whose database connection Django
closes at the end of the request) and returned from as soon as the handler returns. A
streaming response's body (an async iterator) and a `DeferredResponse` are then consumed
on the event loop: no code of the platform runs on a thread while a stream is open.

What remains (Django's, recorded in docs/performance.md): Django's ASGI handler keeps the
request's thread-sensitive executor until the response ends (it sends `request_started`
to sync receivers through it), so an open stream keeps one idle thread parked.
"""

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from apps.core.api.base import ApiView


class DeferredResponse(HttpResponse):
    """What a handler of an `AsyncApiView` returns when the response can only be made
    after waiting (e.g. for a run to end): `complete()` makes it on the event loop once
    the handler has returned, so the wait holds no thread. Headers set on this
    placeholder (request id, rate limits, Vary) are carried over."""

    def __init__(self, complete: Callable[[], Awaitable[HttpResponseBase]]) -> None:
        super().__init__(status=200)
        self.complete = complete


class StreamContentNegotiation(DefaultContentNegotiation):
    """Stream endpoints accept `Accept: text/event-stream` (or anything); what DRF renders
    there (errors, non-streamed answers) is always JSON and labelled so."""

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class AsyncApiView(ApiView):
    content_negotiation_class = StreamContentNegotiation

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)
        handle = sync_to_async(view)  # the request's thread (and its database connection)

        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            response: HttpResponseBase = await handle(request, *args, **kwargs)
            if isinstance(response, DeferredResponse):
                final = await response.complete()
                for name, value in response.items():
                    if name.lower() not in ("content-type", "content-length"):
                        final.headers.setdefault(name, value)
                return final
            return response

        functools.update_wrapper(async_view, view, assigned=("__module__", "__name__"))
        async_view.cls = view.cls  # type: ignore[attr-defined]
        async_view.initkwargs = view.initkwargs  # type: ignore[attr-defined]
        # DRF checks CSRF itself (SessionAuthentication), as for its own views.
        async_view.csrf_exempt = True  # type: ignore[attr-defined]
        return async_view

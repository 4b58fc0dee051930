"""API views that Django serves as async views (the stream endpoints).

`AsyncApiView.as_view()` is a coroutine function marked `threadless`: the ASGI
application serves it with `core.asgi.ThreadlessHandler`, which gives the request no
thread of its own. DRF's whole handling of the request (authentication, the actor, scopes,
rate limits, idempotency, the handler, errors) is the same code as for every other view,
run on the event loop's shared thread pool (with Django's per-request connection
housekeeping around it) and returned from as soon as the handler returns. A streaming
response's body (an async iterator), a `DeferredResponse` and an `AsgiHandoff` are then
consumed on the event loop: nothing holds a thread while a stream is open.

Served by Django's ordinary handlers instead (Django's test client, WSGI), the view runs
on the request's own thread as any view does.
"""

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from apps.core.api.base import ApiView

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Headers of a handoff's placeholder response that the application's own response keeps
# (the request id, rate limits, Vary): everything but what describes the body.
_BODY_HEADERS = frozenset({b"content-type", b"content-length", b"transfer-encoding"})


class DeferredResponse(HttpResponse):
    """What a handler of an `AsyncApiView` returns when the response can only be made
    after waiting (e.g. for a run to end): `complete()` makes it on the event loop once
    the handler has returned, so the wait holds no thread. Headers set on this
    placeholder (request id, rate limits, Vary) are carried over."""

    def __init__(self, complete: Callable[[], Awaitable[HttpResponseBase]]) -> None:
        super().__init__(status=200)
        self.complete = complete


class AsgiHandoff(HttpResponse):
    """What a threadless view returns to let an ASGI application answer the request on its
    connection (with the request's scope and the body Django has already read). Headers
    set on this placeholder (request id, rate limits) are added to that answer."""

    def __init__(self, app: AsgiApp, *, scope: Scope, body: bytes) -> None:
        super().__init__(status=200)
        self.app, self.scope, self.body = app, scope, body

    async def serve(self, send: Send) -> None:
        delivered = False

        async def receive() -> Mapping[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            # Django's handler listens for the client's disconnect and cancels this
            # application when it comes; until then there is nothing more to read.
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        extra = [
            (name.encode("latin1"), value.encode("latin1"))
            for name, value in self.items()
            if name.lower().encode("latin1") not in _BODY_HEADERS
        ]

        async def send_with_headers(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {bytes(n).lower() for n, _ in message.get("headers", [])}
                added = [(n, v) for n, v in extra if n.lower() not in present]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(self.scope, receive, send_with_headers)


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
        on_request_thread = sync_to_async(view)
        on_pool = sync_to_async(_with_connection_housekeeping(view), thread_sensitive=False)

        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            handle = on_pool if getattr(request, "threadless", False) else on_request_thread
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
        async_view.threadless = True  # type: ignore[attr-defined]
        return async_view


def _with_connection_housekeeping(view: Callable[..., Any]) -> Callable[..., Any]:
    """What Django does around a request for its thread's database connections
    (`request_started` / `request_finished`), done on the pool thread the view runs on:
    a connection past its age or broken is closed, a healthy one kept for the next."""

    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return view(*args, **kwargs)
        finally:
            close_old_connections()

    return run


def asgi_scope_of(request: HttpRequest) -> Scope:
    """An ASGI HTTP scope for a request Django received without one (WSGI, the test
    client): its method, path, query string and headers."""
    meta = request.META
    headers = [
        (key[5:].replace("_", "-").lower().encode("latin1"), str(value).encode("latin1"))
        for key, value in meta.items()
        if key.startswith("HTTP_")
    ]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if meta.get(key):
            headers.append((key.replace("_", "-").lower().encode(), str(meta[key]).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": meta.get("QUERY_STRING", "").encode(),
        "root_path": "",
        "headers": headers,
        "server": None,
        "client": None,
    }


def serve_buffered(app: AsgiApp, *, scope: Scope, body: bytes) -> HttpResponse:
    """Run an ASGI application to the end of its response and return it whole: how a
    handoff is answered when there is no connection to hand over (WSGI, the test client;
    a stream then arrives at once, when it has ended)."""
    messages: list[Mapping[str, Any]] = []

    async def run() -> None:
        delivered = False

        async def receive() -> Mapping[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect: the app ends its response itself
            raise AssertionError("unreachable")

        async def send(message: Mapping[str, Any]) -> None:
            messages.append(message)

        await app(scope, receive, send)

    async_to_sync(run)()
    start = next(m for m in messages if m["type"] == "http.response.start")
    response = HttpResponse(
        b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body"),
        status=start["status"],
    )
    for name, value in start.get("headers", []):
        if bytes(name).lower() not in (b"content-length",):
            response[bytes(name).decode("latin1")] = bytes(value).decode("latin1")
    return response

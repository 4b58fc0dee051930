"""Serving the views whose response stays open (streams) without holding a thread.

Django's ASGI handler runs every request inside asgiref's `ThreadSensitiveContext`: the
request's first synchronous call (a `request_started` receiver, the view) creates a
thread that lives until the response has been sent. For an SSE stream that stays open for
minutes, that is one parked OS thread per open stream.

`ThreadlessHandler` is Django's handler without that context. Its views are
`AsyncApiView`s (core/api/asyncview.py): their synchronous part (DRF: authentication,
scopes, rate limits, the handler) runs on the event loop's shared pool of threads and
returns; the response body (an async iterator) then runs on the event loop alone. Its
middleware is the same chain as every other request's (every middleware is
async-capable). `route_threadless` sends a request there when its URL resolves to a view
marked `threadless`; everything else goes to Django's ordinary handler.

A threadless view can also hand the connection itself to an ASGI application
(`core.api.asyncview.AsgiHandoff`): the `/mcp` endpoint authenticates through DRF, then
the official MCP SDK's ASGI application answers on the same connection.
"""

import functools
from typing import Any

from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.http import HttpResponseBase
from django.urls import Resolver404, get_resolver, resolve

from apps.core.api.asyncview import AsgiApp, AsgiHandoff, Receive, Scope, Send


class ThreadlessRequest(ASGIRequest):
    """A request served by `ThreadlessHandler`: its view may not use a request thread."""

    threadless = True


class ThreadlessHandler(ASGIHandler):
    request_class = ThreadlessRequest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"ThreadlessHandler serves HTTP only, not {scope['type']}")
        # No ThreadSensitiveContext: see the module's docstring.
        await self.handle(scope, receive, send)

    async def send_response(self, response: HttpResponseBase, send: Send) -> None:
        if isinstance(response, AsgiHandoff):
            await response.serve(send)
            return
        await super().send_response(response, send)


@functools.cache
def _threadless_last_segments() -> frozenset[str]:
    """The last path segment of every route to a threadless view: a request whose path
    ends otherwise is not resolved twice (once here, once by Django)."""
    segments: set[str] = set()

    def walk(patterns: list[Any]) -> None:
        for entry in patterns:
            if hasattr(entry, "url_patterns"):
                walk(entry.url_patterns)
            elif getattr(entry.callback, "threadless", False):
                last = str(entry.pattern).rstrip("/$").rpartition("/")[2]
                if last.startswith("<") or not last.replace("-", "").replace("_", "").isalnum():
                    raise ValueError(f"A threadless route must end with a literal: {entry}")
                segments.add(last)

    walk(get_resolver().url_patterns)
    return frozenset(segments)


def _is_threadless(path: str) -> bool:
    last = path.rstrip("/").rpartition("/")[2]
    if last not in _threadless_last_segments():
        return False
    try:
        return bool(getattr(resolve(path).func, "threadless", False))
    except Resolver404:
        return False


def route_threadless(default: AsgiApp, threadless: AsgiApp) -> AsgiApp:
    """HTTP requests to threadless views go to `threadless`, the rest to `default`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        target = threadless if _is_threadless(path) else default
        await target(scope, receive, send)

    return app

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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.db import connections
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


class PooledThreadHandler(ASGIHandler):
    """Django's handler with the request threads reused, as a WSGI server reuses its own.

    Django's handler gives every request a new `ThreadSensitiveContext`, so a new OS
    thread, and with it a new database connection: on SQLite, opening one (the file, the
    PRAGMAs, the SQL functions) was 37% of a plain view's wall time while answers
    streamed in the same process (docs/performance.md, "Request path"). Here a request
    runs its synchronous code on one of `size` single-thread executors kept for the
    process (asgiref's `ThreadSensitiveContext(executor=...)`), taken for the whole
    request and given back once its response is sent: one request at a time per thread,
    as before, and the thread's connection stays open for the next request
    (`CONN_MAX_AGE`; PostgreSQL's pool gives it back either way). When every pooled
    thread is busy (long downloads, say), the request gets a thread of its own, as with
    Django's handler, whose connections are closed at its end: nothing waits."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self._idle: list[ThreadPoolExecutor] = []
        self._created = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        executor = self._take()
        if executor is None:
            async with ThreadSensitiveContext():
                try:
                    await self.handle(scope, receive, send)
                finally:
                    await sync_to_async(connections.close_all)()
            return
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self._idle.append(executor)

    def _take(self) -> ThreadPoolExecutor | None:
        if self._idle:
            return self._idle.pop()
        if self._created < self.size:
            self._created += 1
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        return None


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

"""Requests' synchronous code runs on threads kept for the process (apps/core/asgi.py,
`PooledThreadHandler`): one request at a time per thread, its database connection kept
on SQLite, and a request that finds every pooled thread busy gets one of its own."""

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from apps.core.asgi import PooledThreadHandler
from tests.core import urls_threads

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.core.urls_threads"),
]


async def get(handler: PooledThreadHandler, path: str, status: int = 200) -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
    }
    received = False
    never = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # no disconnect while the request runs
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(dict(message))

    await handler(scope, receive, send)
    assert sent[0]["status"] == status, sent
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return json.loads(body) if status == 200 else {}


def test_sequential_requests_reuse_one_thread_and_its_connection():
    handler = PooledThreadHandler(size=2)

    async def three() -> list[dict[str, Any]]:
        return [await get(handler, "/ident") for _ in range(3)]

    first, second, third = asyncio.run(three())
    assert first["thread"] == second["thread"] == third["thread"]
    assert first["thread"] != threading.get_ident()
    if not settings.DATABASE_IS_POSTGRES:  # PostgreSQL's pool takes it back per request
        assert first["connection"] == second["connection"] == third["connection"]
    assert handler._created == 1 and len(handler._idle) == 1


def test_a_request_finding_every_pooled_thread_busy_gets_its_own():
    handler = PooledThreadHandler(size=1)
    urls_threads.release.clear()

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        blocked = asyncio.create_task(get(handler, "/wait"))
        while handler._created == 0 or handler._idle:
            await asyncio.sleep(0.01)  # the pooled thread is taken
        other = await asyncio.wait_for(get(handler, "/ident"), 10)  # not queued behind it
        urls_threads.release.set()
        return await blocked, other

    try:
        blocked, other = asyncio.run(both())
    finally:
        urls_threads.release.set()
    assert blocked["thread"] != other["thread"]
    assert handler._created == 1 and len(handler._idle) == 1  # only the pooled one back
    # The request on a thread of its own closed its connection when it ended.
    assert urls_threads.wrappers[other["thread"]].connection is None


@override_settings(DEBUG=False)
def test_a_request_that_fails_gives_its_thread_back():
    handler = PooledThreadHandler(size=1)

    async def run() -> dict[str, Any]:
        await get(handler, "/missing", status=404)
        return await get(handler, "/ident")

    after = asyncio.run(run())
    assert handler._created == 1 and len(handler._idle) == 1
    if not settings.DATABASE_IS_POSTGRES:
        assert urls_threads.wrappers[after["thread"]].connection is not None  # kept

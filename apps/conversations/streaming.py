"""Resumable streams of a conversation's events, shared by SSE and WebSocket.

Order of operations, so a client gets every event after its cursor exactly once, in
order, from any process: (1) subscribe to the conversation's live events, (2) replay the
durable log after the cursor, (3) relay live events, dropping the ones already sent and,
when a live event's `prev` is beyond the last one sent, first reading the missing ones
from the log (waiting briefly for the publisher's next batch write). Idle streams poll
the log now and then (live delivery is at most once) and send heartbeats.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import AsyncToSync, SyncToAsync, sync_to_async
from django.db import connections

from apps.conversations.eventlog import (
    FLUSH_INTERVAL,
    POKE,
    Subscription,
    hub,
    last_logged_cursor_sync,
    read_log,
)
from apps.conversations.exceptions import InvalidCursor
from apps.conversations.models import Run
from apps.core.events import Event, EventType

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
EARLY_POLLS = (0.25, 0.5, 1.0, 2.0)  # after subscribing, in case a publish raced us
GAP_WAIT_SECONDS = max(2.0, FLUSH_INTERVAL * 10)

HEARTBEAT = object()  # yielded when the stream has been idle HEARTBEAT_SECONDS


def parse_cursor(header: str | None, param: str | None) -> int | None:
    """The resume cursor: `Last-Event-ID` wins over `?cursor=`; -1 replays everything.
    None when neither is given. Raises InvalidCursor."""
    raw = header if header not in (None, "") else param
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidCursor() from exc
    if value < -1:
        raise InvalidCursor()
    return value


async def events_after(
    *,
    conversation_id: uuid.UUID,
    after: int | None,
    run_id: uuid.UUID | None = None,
    stop_at_end: bool = False,
    on_subscribed: Callable[[], None] | None = None,
    subscription: Subscription | None = None,
) -> AsyncIterator[Event | object]:
    """Events of the conversation (of one run if `run_id`) with cursor > `after`; `after`
    None means "from now" for a conversation and "from the start" for a run. Yields
    HEARTBEAT when idle. Stops after the run's `end` when `stop_at_end`. Uses
    `subscription` when the caller subscribed already (`run_events`)."""
    sub = subscription or await hub.subscribe(conversation_id)
    try:
        if on_subscribed is not None:
            on_subscribed()
        if after is None:
            after = (
                -1
                if run_id is not None
                else await sync_to_async(last_logged_cursor_sync, thread_sensitive=False)(
                    conversation_id
                )
            )
        seen = after  # the last conversation cursor accounted for (sent or not ours)

        def ours(event: Event) -> bool:
            return run_id is None or event.run_id == run_id

        for event in await read_log(conversation_id, after=seen):
            seen = event.cursor
            if ours(event):
                yield event
                if stop_at_end and event.type == EventType.END:
                    return
        polls = list(EARLY_POLLS)
        idle = 0.0
        loop = asyncio.get_running_loop()
        while True:
            timeout = polls[0] if polls else HEARTBEAT_SECONDS
            started = loop.time()
            try:
                if sub.queue.empty():
                    async with asyncio.timeout(timeout):  # per token: no task, unlike wait_for
                        message = await sub.queue.get()
                else:
                    message = sub.queue.get_nowait()
            except TimeoutError:
                message = None
                if polls:
                    polls.pop(0)
                    idle += timeout
                else:
                    idle = HEARTBEAT_SECONDS
            else:
                idle += loop.time() - started
            # A poll when idle, or when another process wrote to the log (embedded profile).
            if message is None or message is POKE:
                for event in await read_log(conversation_id, after=seen):
                    seen = event.cursor
                    idle = 0.0
                    if ours(event):
                        yield event
                        if stop_at_end and event.type == EventType.END:
                            return
                if idle >= HEARTBEAT_SECONDS:
                    idle = 0.0
                    yield HEARTBEAT
                continue
            raw = message["event"]
            event = raw if isinstance(raw, Event) else Event.from_dict(raw)
            if event.cursor <= seen:
                continue
            if message["prev"] > seen:
                async for missing in _fill_gap(conversation_id, seen, message["prev"]):
                    seen = missing.cursor
                    if ours(missing):
                        yield missing
                        if stop_at_end and missing.type == EventType.END:
                            return
            seen = event.cursor
            if ours(event):
                yield event
                if stop_at_end and event.type == EventType.END:
                    return
    finally:
        await hub.unsubscribe(sub)


def run_events(run: Run) -> AsyncIterator[Event | object]:
    """The events of a run just sent with `message_send(stream=True)`, from its start to
    its `end`, for a streaming response; starts the run. Called from the view: under the
    ASGI loop it subscribes at once, so the run starts without waiting for the response
    to begin; otherwise the run starts once the body subscribes."""
    from apps.conversations import runner

    loop = runner.main_loop()
    if loop is None:
        return events_after(
            conversation_id=run.conversation_id,
            after=None,
            run_id=run.id,
            stop_at_end=True,
            on_subscribed=lambda: runner.stream_subscribed(run),
        )
    sub = hub.subscribe_threadsafe(run.conversation_id, loop)
    runner.stream_subscribed(run)
    return events_after(
        conversation_id=run.conversation_id,
        after=None,
        run_id=run.id,
        stop_at_end=True,
        subscription=sub,
    )


async def _fill_gap(conversation_id: uuid.UUID, seen: int, prev: int) -> AsyncIterator[Event]:
    """Events seen < cursor <= prev from the log, waiting for them to be written."""
    deadline = asyncio.get_running_loop().time() + GAP_WAIT_SECONDS
    while True:
        events = await read_log(conversation_id, after=seen, until=prev)
        for event in events:
            seen = event.cursor
            yield event
        if seen >= prev or asyncio.get_running_loop().time() > deadline:
            if seen < prev:
                logger.warning("stream gap %s..%s never reached the log", seen, prev)
            return
        await asyncio.sleep(FLUSH_INTERVAL / 4)


def sse_frame(item: Event | object) -> bytes:
    if isinstance(item, Event):
        return item.to_sse()
    return b": keep-alive\n\n"


def release_request_thread() -> None:
    """Let an open stream hold no thread. Under ASGI, Django runs a request's sync code
    (middleware, the DRF view) in a one-thread executor tied to the request, kept until
    the response ends; a stream body calls this once the view has returned, so the thread
    (after closing its database connections) goes away while the body is being streamed.
    Anything thread-sensitive later in the response (Django's `response.close()`) gets a
    fresh, short-lived thread. The body itself only uses `thread_sensitive=False` calls."""
    if getattr(AsyncToSync.executors, "current", None) is not None:
        return  # called from under async_to_sync: that thread is not ours to stop
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None or getattr(context, "_executor", None) is not None:
        return  # no per-request executor, or one its owner manages
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is not None:
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)  # the thread ends after closing the connections


async def sse_body(events: AsyncIterator[Event | object]) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n\n"
    release_request_thread()
    async for item in events:
        yield sse_frame(item)


def event_payload(item: Event) -> dict[str, Any]:
    return item.to_dict()

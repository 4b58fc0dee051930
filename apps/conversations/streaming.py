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
from apps.conversations.services import run_stream_opened
from apps.core.db import db_sync_to_async
from apps.core.events import HEARTBEAT, Envelope, EventType, Heartbeat

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
EARLY_POLLS = (0.25, 0.5, 1.0, 2.0)  # after subscribing, in case a publish raced us
GAP_WAIT_SECONDS = max(2.0, FLUSH_INTERVAL * 10)

StreamItem = Envelope | Heartbeat  # a stream yields events, and HEARTBEAT when idle


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
) -> AsyncIterator[StreamItem]:
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
                else await db_sync_to_async(last_logged_cursor_sync)(conversation_id)
            )
        seen = after  # the last conversation cursor accounted for (sent or not ours)

        def ours(event: Envelope) -> bool:
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
            event = raw if isinstance(raw, Envelope) else Envelope.from_dict(raw)
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


def run_events(run: Run) -> AsyncIterator[StreamItem]:
    """The events of a run just sent with `message_send(stream=True)`, from its start to
    its `end`; the run goes once the stream is subscribed (`run_stream_opened`)."""
    return events_after(
        conversation_id=run.conversation_id,
        after=None,
        run_id=run.id,
        stop_at_end=True,
        on_subscribed=lambda: run_stream_opened(run=run),
    )


async def _fill_gap(conversation_id: uuid.UUID, seen: int, prev: int) -> AsyncIterator[Envelope]:
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


def sse_frame(item: StreamItem) -> bytes:
    return item.to_sse()


async def sse_body(events: AsyncIterator[StreamItem]) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n\n"
    async for item in events:
        yield sse_frame(item)

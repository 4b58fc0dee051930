"""The event pipeline of a conversation: cursors, live delivery and the durable log.

- `RunPublisher` is used by the one process executing a run (runs are serial, so it is
  the only writer of a conversation's cursors meanwhile). It assigns cursors in memory,
  delivers each event at once to the streams of this process (`hub`) and, in the
  production profile, to the channel-layer group read by the other processes, and appends
  events to `RunEvent` in batches: every FLUSH_INTERVAL and at step boundaries, with
  consecutive deltas coalesced into one row. Never one database write per token.
- Cursors are reserved in blocks above `Conversation.cursor_reserved` before use, so after
  a crash the next run starts above anything a client may have seen live.
- Each live message carries `prev`, the cursor of the conversation's previous event, so a
  stream knows for sure when it missed one and reads it from the log.
- Without a shared channel layer (the embedded profile) other processes' events (a
  background run in the Celery worker) reach a process only through the log: the hub
  tails it (one query every TAIL_INTERVAL for the whole process) and pokes the streams
  of conversations that another process wrote to, which then read the log.
"""

import asyncio
import logging
import os
import socket
import uuid
import weakref
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max

from apps.conversations.models import Conversation, RunEvent
from apps.core.db import db_sync_to_async
from apps.core.events import DELTA_TYPES, Envelope, Event, event_from

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.2  # seconds between two writes of the durable log during a run
TAIL_INTERVAL = 0.5  # embedded profile: how often the hub looks for other processes' events
POKE: dict[str, Any] = {"poke": True}  # a live message meaning "read the log"
CURSOR_BLOCK = 10_000  # cursors reserved per database write
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def group_name(conversation_id: uuid.UUID | str) -> str:
    return f"conv.{conversation_id}"


def _channel_layer_is_shared() -> bool:
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    return "InMemory" not in backend


class Subscription:
    """One stream's inbox: live messages `{"event": Envelope or its dict (from another
    process), "prev": int}` of a conversation."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()


class Hub:
    """Per-process fan-out. Streams subscribe here; the hub joins the channel-layer group
    of a conversation once per process (not once per stream) and relays what other
    processes publish. Events of runs executed in this process are delivered directly."""

    def __init__(self) -> None:
        # Held weakly: a subscription made for a response whose body never ran (the
        # client left first) goes away with it; a running stream holds its own.
        self._subs: dict[str, weakref.WeakSet[Subscription]] = {}
        self._listeners: dict[str, tuple[str, asyncio.Task[None]]] = {}
        self._joining: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._tail: asyncio.Task[None] | None = None
        self.local_runs: dict[str, int] = {}  # conversations with a publisher here

    def subscriber_count(self) -> int:
        return sum(len(s) for s in tuple(self._subs.values()))

    async def subscribe(self, conversation_id: uuid.UUID | str) -> Subscription:
        sub = self._register(str(conversation_id))
        await self._listen_once(sub.conversation_id)
        self._tail_log()
        return sub

    def subscribe_threadsafe(
        self, conversation_id: uuid.UUID | str, loop: asyncio.AbstractEventLoop
    ) -> Subscription:
        """`subscribe` from a sync view's thread (the hub lives on `loop`): the
        subscription receives this process's events from now on; joining the channel
        layer for other processes' events follows on the loop."""
        sub = self._register(str(conversation_id))
        if _channel_layer_is_shared():

            def join() -> None:
                task = loop.create_task(self._listen_once(sub.conversation_id))
                self._joining.add(task)
                task.add_done_callback(self._joining.discard)

            loop.call_soon_threadsafe(join)
        else:
            loop.call_soon_threadsafe(self._tail_log)
        return sub

    def _tail_log(self) -> None:
        """Embedded profile: make sure the log is tailed while there are subscribers."""
        if _channel_layer_is_shared() or (self._tail is not None and not self._tail.done()):
            return
        self._tail = asyncio.get_running_loop().create_task(self._tail_loop())

    async def _tail_loop(self) -> None:
        last = await _read(_last_event_id_sync)
        while any(self._subs.values()):
            await asyncio.sleep(TAIL_INTERVAL)
            try:
                last, written = await _read(_written_since_sync, last)
            except Exception:  # the database is away: streams still poll the log
                logger.warning("event log tail failed", exc_info=True)
                continue
            for key in written:
                if key in self._subs and not self.local_runs.get(key):
                    self.deliver(key, POKE)

    def _register(self, key: str) -> Subscription:
        sub = Subscription(key)
        while True:  # `unsubscribe` may drop the set meanwhile (from the loop): retry
            subs = self._subs.setdefault(key, weakref.WeakSet())
            subs.add(sub)
            if self._subs.get(key) is subs:
                return sub

    async def _listen_once(self, key: str) -> None:
        if _channel_layer_is_shared() and key not in self._listeners:
            async with self._lock:
                if key not in self._listeners:
                    layer = get_channel_layer()
                    assert layer is not None
                    channel = await layer.new_channel()
                    await layer.group_add(group_name(key), channel)
                    task = asyncio.get_running_loop().create_task(self._listen(key, channel))
                    self._listeners[key] = (channel, task)

    async def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.conversation_id)
        if subs is None:
            return
        subs.discard(sub)
        if subs:
            return
        del self._subs[sub.conversation_id]
        listener = self._listeners.pop(sub.conversation_id, None)
        if listener is not None:
            channel, task = listener
            task.cancel()
            layer = get_channel_layer()
            if layer is not None:
                await layer.group_discard(group_name(sub.conversation_id), channel)

    def deliver(self, conversation_id: str, message: dict[str, Any]) -> None:
        for sub in tuple(self._subs.get(conversation_id, ())):  # a copy: views add too
            sub.queue.put_nowait(message)

    async def _listen(self, key: str, channel: str) -> None:
        layer = get_channel_layer()
        assert layer is not None
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # the layer is down: streams still poll the log
                logger.warning("channel layer receive failed", exc_info=True)
                await asyncio.sleep(1)
                continue
            if message.get("origin") == PROCESS_ID:
                continue
            for payload in message.get("items", ()):
                self.deliver(key, payload)


hub = Hub()


# --- cursors -----------------------------------------------------------------------------


def reserve_cursors_sync(
    conversation_id: uuid.UUID, count: int = CURSOR_BLOCK
) -> tuple[int, int, int]:
    """Reserve `count` cursors. Returns (first cursor, last reserved, last logged cursor)."""
    with transaction.atomic():
        conv = (
            Conversation.objects.select_for_update().only("cursor_reserved").get(id=conversation_id)
        )
        reservation = cursor_reservation_sync(conversation_id, conv.cursor_reserved, count)
        Conversation.objects.filter(id=conversation_id).update(cursor_reserved=reservation[1])
    return reservation


def cursor_reservation_sync(
    conversation_id: uuid.UUID, reserved_mark: int, count: int = CURSOR_BLOCK
) -> tuple[int, int, int]:
    """The next `count` cursors above the conversation's reservation mark and its log, as
    (first, last reserved, last logged). The caller holds the conversation's row lock and
    stores the new mark (`last reserved`) in `cursor_reserved`."""
    logged = RunEvent.objects.filter(conversation_id=conversation_id).aggregate(
        m=Max("cursor_end")
    )["m"]
    logged = logged if logged is not None else -1
    base = max(reserved_mark, logged)
    return base + 1, base + count, logged


def _extend_reservation_sync(conversation_id: uuid.UUID, count: int) -> int:
    Conversation.objects.filter(id=conversation_id).update(
        cursor_reserved=F("cursor_reserved") + count
    )
    return int(
        Conversation.objects.filter(id=conversation_id).values_list("cursor_reserved", flat=True)[0]
    )


def _release_reservation_sync(conversation_id: uuid.UUID, last_used: int, reserved: int) -> None:
    # Give back the unused tail so cursors stay dense; only if nobody moved the mark.
    Conversation.objects.filter(id=conversation_id, cursor_reserved=reserved).update(
        cursor_reserved=last_used
    )


# --- the log -----------------------------------------------------------------------------


def _rows_for(events: list[Envelope]) -> list[RunEvent]:
    """Coalesce consecutive deltas of one type and message into one row."""
    rows: list[RunEvent] = []
    for ev in events:
        last = rows[-1] if rows else None
        if (
            ev.type in DELTA_TYPES
            and last is not None
            and last.type == str(ev.type)
            and "batch" in last.data
            and last.run_id == ev.run_id
            and last.cursor_end == ev.cursor - 1
        ):
            last.data["batch"].append({"data": ev.data, "ts": ev.ts.isoformat()})
            last.cursor_end = ev.cursor
            continue
        data: dict[str, Any] = (
            {"batch": [{"data": ev.data, "ts": ev.ts.isoformat()}]}
            if ev.type in DELTA_TYPES
            else ev.data
        )
        rows.append(
            RunEvent(
                conversation_id=ev.conversation_id,  # type: ignore[misc]
                run_id=ev.run_id,
                cursor=ev.cursor,
                cursor_end=ev.cursor,
                type=str(ev.type),
                data=data,
                ts=ev.ts,
            )
        )
    return rows


def write_events_sync(events: list[Envelope]) -> None:
    if events:
        RunEvent.objects.bulk_create(_rows_for(events))


def expand_rows(rows: Iterable[RunEvent], after: int) -> list[Envelope]:
    """Log rows -> events with cursor > `after`, in order."""
    out: list[Envelope] = []
    for row in rows:
        if row.cursor_end <= after:
            continue
        if row.cursor != row.cursor_end or (
            row.type in {str(t) for t in DELTA_TYPES} and "batch" in row.data
        ):
            for i, item in enumerate(row.data.get("batch", [])):
                cursor = row.cursor + i
                if cursor > after:
                    out.append(
                        Envelope(
                            event_from(row.type, item["data"]),
                            row.conversation_id,
                            row.run_id,
                            cursor,
                            datetime.fromisoformat(item["ts"]),
                        )
                    )
        else:
            out.append(
                Envelope(
                    event_from(row.type, row.data),
                    row.conversation_id,
                    row.run_id,
                    row.cursor,
                    row.ts,
                )
            )
    return out


def read_log_sync(
    conversation_id: uuid.UUID,
    *,
    after: int,
    run_id: uuid.UUID | None = None,
    until: int | None = None,
) -> list[Envelope]:
    qs = RunEvent.objects.filter(conversation_id=conversation_id, cursor_end__gt=after)
    if run_id is not None:
        qs = qs.filter(run_id=run_id)
    if until is not None:
        qs = qs.filter(cursor__lte=until)
    events = expand_rows(qs.order_by("cursor"), after)
    if until is not None:
        events = [e for e in events if e.cursor <= until]
    return events


# Log reads and writes run outside the thread shared by the request's sync code, so many
# concurrent runs and streams do not queue behind one another in a single thread.
read_log = db_sync_to_async(read_log_sync)
_write_events = db_sync_to_async(write_events_sync)


def _last_event_id_sync() -> int:
    return RunEvent.objects.aggregate(m=Max("id"))["m"] or 0


def _written_since_sync(last_id: int) -> tuple[int, set[str]]:
    """(the newest log row id, the conversations with rows after `last_id`)."""
    rows = list(
        RunEvent.objects.filter(id__gt=last_id)
        .values("conversation_id")
        .annotate(m=Max("id"))
        .values_list("conversation_id", "m")
    )
    return max((m for _, m in rows), default=last_id), {str(c) for c, _ in rows}


async def _read(func: Any, *args: Any) -> Any:
    return await db_sync_to_async(func)(*args)


def last_logged_cursor_sync(conversation_id: uuid.UUID) -> int:
    m = RunEvent.objects.filter(conversation_id=conversation_id).aggregate(m=Max("cursor_end"))["m"]
    return m if m is not None else -1


# --- publishing ----------------------------------------------------------------------------


# Publishes in flight at once, per event loop. The Redis layer's client takes a pooled
# connection per command and refuses one past its pool's size (redis-py: 100) instead of
# waiting; many runs publishing together would lose events to that (streams then wait
# for the log). Past this bound a publish waits for a slot.
PUBLISH_CONCURRENCY = 32
_publish_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = (
    weakref.WeakKeyDictionary()
)


def _publish_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _publish_slots.get(loop)
    if slots is None:
        slots = _publish_slots[loop] = asyncio.Semaphore(PUBLISH_CONCURRENCY)
    return slots


async def _send_remote(conversation_id: str, items: list[dict[str, Any]]) -> None:
    if not _channel_layer_is_shared():
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async with _publish_slot():
            await layer.group_send(
                group_name(conversation_id),
                {"type": "conversation.events", "origin": PROCESS_ID, "items": items},
            )
    except Exception:  # at most once: streams fill the gap from the log
        logger.warning("channel layer publish failed", exc_info=True)


class RunPublisher:
    """Publishes one run's events (see the module docstring). Use `start()` first and
    `close()` last (it flushes and gives back unused reserved cursors)."""

    def __init__(self, *, conversation_id: uuid.UUID, run_id: uuid.UUID | None) -> None:
        self.conversation_id = conversation_id
        self.run_id = run_id
        self._key = str(conversation_id)
        self._next = 0
        self._reserved = -1
        self._prev = -1
        self._buffer: list[Envelope] = []
        self._pending_remote: list[dict[str, Any]] = []
        self._last_flush = 0.0
        self._flush_task: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.writes = 0  # database writes of the log (for the benchmark)
        self._local = False
        # Deliveries to this process's streams held until a stream subscribed (see
        # `hold_local_until`); None once delivered directly.
        self._held: list[dict[str, Any]] | None = None
        self._release: asyncio.Task[None] | None = None

    async def start(self, reservation: tuple[int, int, int] | None = None) -> None:
        """Reserve cursors, unless given a `reserve_cursors_sync` result made earlier (in
        the transaction that started the run)."""
        first, reserved, logged = reservation or await sync_to_async(reserve_cursors_sync)(
            self.conversation_id, CURSOR_BLOCK
        )
        self._next, self._reserved, self._prev = first, reserved, logged
        self._last_flush = asyncio.get_running_loop().time()
        hub.local_runs[self._key] = hub.local_runs.get(self._key, 0) + 1  # (the tail skips it)
        self._local = True

    def hold_local_until(self, gate: Awaitable[None]) -> None:
        """Hold the deliveries to this process's streams until `gate` completes (the stream
        of the request that started the run subscribed), then deliver them in order: the
        run goes on meanwhile (its model call overlaps the response being sent) and the
        stream misses nothing. The durable log and other processes are not held."""
        self._held = []

        async def release() -> None:
            try:
                await gate
            finally:
                self._deliver_held()

        self._release = asyncio.get_running_loop().create_task(release())

    def _deliver_held(self) -> None:
        held, self._held = self._held, None
        for item in held or ():
            hub.deliver(self._key, item)

    @property
    def last_cursor(self) -> int:
        return self._next - 1

    async def emit(self, event: Event) -> Envelope:
        """Publish one typed event (and only those: apps.core.events)."""
        if not isinstance(event, Event):
            raise TypeError(f"emit takes an apps.core.events.Event, not {type(event)!r}")
        if self._next > self._reserved:
            self._reserved = await sync_to_async(_extend_reservation_sync)(
                self.conversation_id, CURSOR_BLOCK
            )
        kind = event.type
        envelope = Envelope(event, self.conversation_id, self.run_id, self._next)
        event_cursor = envelope.cursor
        self._next += 1
        prev, self._prev = self._prev, event_cursor
        item = {"event": envelope, "prev": prev}
        if self._held is not None:
            self._held.append(item)
        else:
            hub.deliver(self._key, item)  # in-process: the object
        self._buffer.append(envelope)
        if _channel_layer_is_shared():
            self._pending_remote.append({"event": envelope.to_dict(), "prev": prev})
            if kind not in DELTA_TYPES or len(self._pending_remote) >= 32:
                await self._flush_remote()
            elif self._flush_task is None:
                self._schedule_flush()
        now = asyncio.get_running_loop().time()
        if kind not in DELTA_TYPES or now - self._last_flush >= FLUSH_INTERVAL:
            self._kick_writer()  # in the background: a token never waits for the database
        elif self._flush_task is None:
            self._schedule_flush()
        return envelope

    def _kick_writer(self) -> None:
        self._last_flush = asyncio.get_running_loop().time()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self.flush())

    def _schedule_flush(self) -> None:
        async def later() -> None:
            await asyncio.sleep(
                min(FLUSH_INTERVAL, 0.02) if self._pending_remote else FLUSH_INTERVAL
            )
            self._flush_task = None
            await self._flush_remote()
            if self._buffer:
                if asyncio.get_running_loop().time() - self._last_flush >= FLUSH_INTERVAL:
                    await self.flush()
                else:
                    self._schedule_flush()

        self._flush_task = asyncio.get_running_loop().create_task(later())

    async def _flush_remote(self) -> None:
        if self._pending_remote:
            items, self._pending_remote = self._pending_remote, []
            await _send_remote(self._key, items)

    async def flush(self) -> None:
        """Write buffered events to the durable log (one INSERT)."""
        self._last_flush = asyncio.get_running_loop().time()
        async with self._write_lock:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            await _write_events(batch)
            self.writes += 1

    async def close(self) -> None:
        try:
            if self._release is not None:
                if not self._release.done():
                    self._release.cancel()  # the run ended before its stream came
                    await asyncio.gather(self._release, return_exceptions=True)
                self._deliver_held()
            if self._flush_task is not None:
                self._flush_task.cancel()
                self._flush_task = None
            await self._flush_remote()
            await self.flush()
            await sync_to_async(_release_reservation_sync)(
                self.conversation_id, self.last_cursor, self._reserved
            )
        finally:
            if self._local:
                self._local = False
                left = hub.local_runs.get(self._key, 1) - 1
                if left > 0:
                    hub.local_runs[self._key] = left
                else:
                    hub.local_runs.pop(self._key, None)


async def publish_detached(
    *,
    conversation_id: uuid.UUID,
    run_id: uuid.UUID | None,
    events: list[Event],
) -> list[Envelope]:
    """Publish a few events when no run of the conversation is executing (a run found
    dead, a paused run cancelled): the caller must be the only writer at that moment."""
    publisher = RunPublisher(conversation_id=conversation_id, run_id=run_id)
    await publisher.start()
    out = [await publisher.emit(e) for e in events]
    await publisher.close()
    return out


def now() -> datetime:
    return datetime.now(UTC)

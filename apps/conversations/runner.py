"""Executing runs: claim the next queued run of a conversation, drive the engine's
`run_turn` with hooks that publish events and store messages, and finish the run.

Interactive runs execute as asyncio tasks in the ASGI process that received the request;
background runs (and requests outside an event loop) in a Celery worker: same code.
Runs of one conversation are serial: the claim is a conditional transition guarded by the
partial unique constraint `conversation_one_active_run`.
"""

import asyncio
import contextlib
import contextvars
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.conversations.choices import ACTIVE_STATUSES, Role, RunKind, RunStatus
from apps.conversations.eventlog import (
    PROCESS_ID,
    RunPublisher,
    publish_detached,
)
from apps.conversations.models import Conversation, Message, Run
from apps.core.events import EventType
from apps.core.outbox import OutboundEvent, outbox_emit
from apps.core.tools import ToolContext
from apps.providers.adapters import share_clients_on_this_loop
from apps.providers.services import prefetch_model, remember_resolutions

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0  # how often a running run proves its process alive (and polls cancel)
STALE_AFTER = timedelta(seconds=30)  # a running run silent this long belongs to a dead process

# Runs executing in this process: run id -> its cancel event (strong refs to the tasks too).
_cancel_events: dict[uuid.UUID, asyncio.Event] = {}
_tasks: set[asyncio.Task[Any]] = set()
_driving: set[uuid.UUID] = set()
_wake: set[uuid.UUID] = set()
# Runs started in a request's transaction (`message_send`): their cursor
# reservation, and the gate their stream opens once subscribed.
_reservations: dict[uuid.UUID, tuple[int, int, int]] = {}
_gates: dict[uuid.UUID, asyncio.Event] = {}
STREAM_GATE_SECONDS = 5.0  # a stream that never subscribes does not hold its run longer


# --- messages ------------------------------------------------------------------------------


def content_text(content: Any) -> str:
    """Plain text of an OpenAI message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def message_create_sync(
    *,
    conversation_id: uuid.UUID,
    run_id: uuid.UUID | None,
    message: dict[str, Any],
    seq: int | None = None,
) -> Message:
    """Append an OpenAI-format message (+ optional metadata/attachments/citations/usage).
    `seq`: given by a caller holding the conversation's row lock, which then stores it in
    `message_seq` itself; otherwise the next one is taken here."""
    with transaction.atomic() if seq is None else contextlib.nullcontext():
        if seq is None:
            Conversation.objects.filter(id=conversation_id).update(
                message_seq=F("message_seq") + 1, last_message_at=timezone.now()
            )
            seq = Conversation.objects.filter(id=conversation_id).values_list(
                "message_seq", flat=True
            )[0]
        metadata = dict(message.get("metadata") or {})
        citations = metadata.pop("citations", None) or message.get("citations") or []
        usage = metadata.pop("usage", None) or message.get("usage") or {}
        content = message.get("content")
        # The engine names its messages (the id it already used in events): keep it.
        msg_id = uuid.UUID(str(message["id"])) if message.get("id") else uuid.uuid4()
        return Message.objects.create(
            id=msg_id,
            conversation_id=conversation_id,
            run_id=run_id,
            seq=seq,
            role=message["role"],
            content=content if content is not None else "",
            text=content_text(content),
            tool_calls=message.get("tool_calls") or [],
            tool_call_id=message.get("tool_call_id") or "",
            name=message.get("name") or "",
            attachments=message.get("attachments") or [],
            citations=[_plain(c) for c in citations],
            usage=usage,
            metadata=metadata,
        )


def _plain(citation: Any) -> Any:
    if hasattr(citation, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(citation)
    return citation


def message_as_openai(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = m.tool_calls
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    if m.name:
        out["name"] = m.name
    if m.metadata:
        out["metadata"] = m.metadata
    if m.attachments:  # files the engine gives the model (apps.agents.context)
        out["attachments"] = m.attachments
    return out


def current_turn(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What an agent with memory_mode "none" sees: the latest user message and what this
    turn added after it (tool calls and results while the run goes on)."""
    for index in range(len(history) - 1, -1, -1):
        if history[index].get("role") == "user":
            return history[index:]
    return history


def history_sync(conversation_id: uuid.UUID) -> list[dict[str, Any]]:
    """The conversation's live messages from the latest compaction summary on."""
    rows = list(
        Message.objects.filter(conversation_id=conversation_id, superseded_at__isnull=True)
        .order_by("seq")
        .only(
            "role",
            "content",
            "tool_calls",
            "tool_call_id",
            "name",
            "metadata",
            "seq",
            "attachments",
        )
    )
    start = 0
    for i, m in enumerate(rows):
        if (m.metadata or {}).get("kind") == "compaction":
            start = i
    return [message_as_openai(m) for m in rows[start:]]


# --- claiming ------------------------------------------------------------------------------


def claim_next_run_sync(conversation_id: uuid.UUID) -> Run | None:
    """Start the next queued run of the conversation in this process, if none is active.
    Materializes a queued message as a user Message. Returns None when there is nothing
    to start or another run is active (the constraint decides between racing processes)."""
    try:
        with transaction.atomic():
            if Run.objects.filter(
                conversation_id=conversation_id, status__in=ACTIVE_STATUSES
            ).exists():
                return None
            run = (
                Run.objects.filter(conversation_id=conversation_id, status=RunStatus.QUEUED)
                .order_by("-priority", "created_at")
                .first()
            )
            if run is None:
                return None
            now = timezone.now()
            updated = Run.objects.filter(id=run.id, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING, owner=PROCESS_ID, heartbeat_at=now, started_at=now
            )
            if not updated:
                return None
            if run.pending_input and run.message_id is None:
                msg = message_create_sync(
                    conversation_id=conversation_id,
                    run_id=run.id,
                    message={"role": Role.USER, **run.pending_input},
                )
                Run.objects.filter(id=run.id).update(message=msg, pending_input={})
    except IntegrityError:
        return None  # another process started a run first
    return Run.objects.select_related("agent", "conversation").get(id=run.id)


def started_here_fields(now: Any) -> dict[str, Any]:
    """The fields of a run that starts in this process now (`message_send` sets them on
    a run it creates; `prestart` then executes it)."""
    return {
        "status": RunStatus.RUNNING,
        "owner": PROCESS_ID,
        "heartbeat_at": now,
        "started_at": now,
    }


def hold_reservation(run_id: uuid.UUID, reservation: tuple[int, int, int]) -> None:
    """Keep the cursors reserved for a run started in a request until `prestart`."""
    _reservations[run_id] = reservation


def claim_paused_run_sync(run_id: uuid.UUID) -> Run | None:
    """requires_action -> running for the approval decisions already stored on the run."""
    now = timezone.now()
    updated = Run.objects.filter(id=run_id, status=RunStatus.REQUIRES_ACTION).update(
        status=RunStatus.RUNNING, owner=PROCESS_ID, heartbeat_at=now
    )
    if not updated:
        return None
    return Run.objects.select_related("agent", "conversation").get(id=run_id)


# --- the hooks the engine calls -------------------------------------------------------------


class Hooks:
    """RunHooks for one run: events through the publisher, messages into the database."""

    def __init__(self, run: Run, publisher: RunPublisher) -> None:
        self.run = run
        self.publisher = publisher

    async def emit(self, type: EventType, data: dict[str, Any]) -> None:
        await self.publisher.emit(type, data)

    async def persist_message(self, message: dict[str, Any]) -> uuid.UUID:
        # A step boundary: what was streamed so far reaches the log before the message.
        await self.publisher.flush()
        msg = await sync_to_async(message_create_sync)(
            conversation_id=self.run.conversation_id, run_id=self.run.id, message=message
        )
        return msg.id


# --- execution -----------------------------------------------------------------------------


def _finish_sync(run_id: uuid.UUID, **fields: Any) -> None:
    # The run's outbound event (webhooks) is recorded in the transaction of its status.
    with transaction.atomic():
        Run.objects.filter(id=run_id).update(**fields)
        if fields.get("status") in _OUTBOUND_RUN_EVENTS:
            _outbound_run_event(run_id)


_OUTBOUND_RUN_EVENTS = {
    RunStatus.COMPLETED: "run.completed",
    RunStatus.FAILED: "run.failed",
    RunStatus.REQUIRES_ACTION: "run.requires_action",
}


def _outbound_run_event(run_id: uuid.UUID) -> None:
    run = Run.objects.select_related("answer_message").get(id=run_id)
    data: dict[str, Any] = {
        "run_id": str(run.id),
        "conversation_id": str(run.conversation_id),
        "agent_id": str(run.agent_id),
        "status": str(run.status),
        "usage": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens},
    }
    if run.status == RunStatus.COMPLETED:
        data["message_id"] = str(run.answer_message_id) if run.answer_message_id else None
        data["answer"] = run.answer_message.text if run.answer_message is not None else ""
    elif run.status == RunStatus.FAILED:
        data["error"] = {"code": run.error_code, "message": run.error_message}
    else:
        data["pending"] = run.pending_approvals
    outbox_emit(
        OutboundEvent(
            type=_OUTBOUND_RUN_EVENTS[RunStatus(run.status)],
            workspace_id=run.workspace_id,
            data=data,
        )
    )


def _is_first_exchange_sync(conversation_id: uuid.UUID, run_id: uuid.UUID) -> bool:
    conv = Conversation.objects.only("title").get(id=conversation_id)
    if conv.title:
        return False
    return (
        not Run.objects.filter(conversation_id=conversation_id, status=RunStatus.COMPLETED)
        .exclude(id=run_id)
        .exists()
    )


def _snapshot_sync(run: Run) -> Any:
    from apps.agents.selectors import agent_snapshot

    return agent_snapshot(agent=run.agent)


def _user_text_sync(run: Run) -> str:
    if run.message_id is None:
        return ""
    return Message.objects.only("text").get(id=run.message_id).text


async def _heartbeat(run_id: uuid.UUID, cancel: asyncio.Event) -> None:
    while not cancel.is_set():
        await asyncio.sleep(HEARTBEAT_SECONDS)
        rows = await sync_to_async(_beat_sync)(run_id)
        if rows:
            cancel.set()


def _beat_sync(run_id: uuid.UUID) -> bool:
    Run.objects.filter(id=run_id, owner=PROCESS_ID).update(heartbeat_at=timezone.now())
    return Run.objects.filter(id=run_id, cancel_requested=True).exists()


async def _read_sync(func: Callable[..., Any], *args: Any) -> Any:
    return await sync_to_async(func, thread_sensitive=False)(*args)


def _begin_reads(run: Run) -> tuple[asyncio.Task[Any], asyncio.Task[Any]]:
    """What the first model call needs, read at once and concurrently, each query on a
    thread of its own: the agent snapshot, the history, and the model's resolution
    (remembered for the whole run: see `remember_resolutions`)."""
    remember_resolutions()
    prefetch_model(workspace_id=run.workspace_id, model_id=run.agent.model_id, kind="chat")
    loop = asyncio.get_running_loop()
    return (
        loop.create_task(_read_sync(_snapshot_sync, run)),
        loop.create_task(_read_sync(history_sync, run.conversation_id)),
    )


async def execute_run(
    run: Run,
    *,
    reservation: tuple[int, int, int] | None = None,
    reads: tuple[asyncio.Task[Any], asyncio.Task[Any]] | None = None,
) -> str:
    """Execute a claimed run to a stopping point; returns its new status. `reservation`
    and `reads` come from `prestart` when the run started in the request."""
    from apps.agents.engine import (  # type: ignore[attr-defined,unused-ignore]
        generate_suggestions,
        generate_title,
        repair_dangling_tool_calls,
        run_turn,
    )
    from apps.providers.types import UsageContext

    publisher = RunPublisher(conversation_id=run.conversation_id, run_id=run.id)
    snapshot_read, history_read = reads or _begin_reads(run)
    try:
        await publisher.start(reservation)
    except BaseException:
        for task in (snapshot_read, history_read):
            task.cancel()
        await asyncio.gather(snapshot_read, history_read, return_exceptions=True)
        raise
    hooks = Hooks(run, publisher)
    cancel = _cancel_events.setdefault(run.id, asyncio.Event())
    if run.cancel_requested:
        cancel.set()
    beat = asyncio.get_running_loop().create_task(_heartbeat(run.id, cancel))
    status = RunStatus.FAILED
    usage = {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens}
    try:
        snapshot = await snapshot_read
        resuming = bool(run.decisions)
        if not resuming:
            await publisher.emit(
                EventType.RUN_STARTED,
                {
                    "agent_id": str(run.agent_id),
                    "message_id": str(run.message_id) if run.message_id else None,
                },
            )
        history = await history_read
        if not resuming:
            repairs = repair_dangling_tool_calls(history)
            for repair in repairs:
                await hooks.persist_message(repair)
                await publisher.emit(
                    EventType.TOOL_RESULT,
                    {
                        "tool_call_id": repair.get("tool_call_id"),
                        "name": repair.get("metadata", {}).get("tool_name", ""),
                        "content": repair.get("content", ""),
                        "is_error": True,
                        "synthetic": True,
                    },
                )
            if repairs:
                history = await sync_to_async(history_sync)(run.conversation_id)
        if snapshot.memory_mode == "none":
            history = current_turn(history)
        ctx = ToolContext(
            workspace_id=run.workspace_id,
            user_id=run.created_by_id,
            agent_id=run.agent_id,
            run_id=run.id,
            conversation_id=run.conversation_id,
        )
        usage_ctx = UsageContext(
            workspace_id=run.workspace_id,
            user_id=run.created_by_id,
            agent_id=run.agent_id,
            run_id=run.id,
        )
        outcome = await run_turn(
            agent=snapshot,
            history=history,
            hooks=hooks,
            context=ctx,
            cancel=cancel,
            decisions=run.decisions or None if resuming else None,
            usage=usage_ctx,
        )
        usage = {
            "input_tokens": run.input_tokens + outcome.input_tokens,
            "output_tokens": run.output_tokens + outcome.output_tokens,
        }
        answer_id = str(outcome.answer_message_id) if outcome.answer_message_id else None
        if outcome.status == "requires_action":
            await sync_to_async(_finish_sync)(
                run.id,
                status=RunStatus.REQUIRES_ACTION,
                pending_approvals=outcome.pending_approvals,
                decisions={},
                input_tokens=usage["input_tokens"],
                output_tokens=usage["output_tokens"],
                owner="",
            )
            await publisher.emit(
                EventType.RUN_REQUIRES_ACTION, {"pending": outcome.pending_approvals}
            )
            return RunStatus.REQUIRES_ACTION
        if outcome.status == "completed":
            status = RunStatus.COMPLETED
            if await sync_to_async(_is_first_exchange_sync)(run.conversation_id, run.id):
                await _title(
                    run, snapshot, outcome.answer_text, publisher, usage_ctx, generate_title
                )
            if snapshot.suggestions_enabled:
                try:
                    history = await sync_to_async(history_sync)(run.conversation_id)
                    suggestions = await generate_suggestions(
                        agent=snapshot, history=history, usage=usage_ctx
                    )
                except Exception:  # suggestions are a nicety: never fail the run for them
                    logger.warning("suggestions failed for run %s", run.id, exc_info=True)
                    suggestions = []
                if suggestions:
                    await publisher.emit(EventType.SUGGESTIONS, {"suggestions": suggestions})
            await publisher.emit(EventType.RUN_COMPLETED, {"usage": usage})
            error = {"code": "", "message": ""}
        elif outcome.status == "cancelled":
            status = RunStatus.CANCELLED
            await publisher.emit(EventType.RUN_CANCELLED, {"reason": "cancelled"})
            error = {"code": "", "message": ""}
        else:
            status = RunStatus.FAILED
            error = {"code": outcome.error_code or "run_failed", "message": outcome.error_message}
            await publisher.emit(EventType.RUN_FAILED, {"error": error})
        await sync_to_async(_finish_sync)(
            run.id,
            status=status,
            finished_at=timezone.now(),
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
            error_code=error["code"],
            error_message=error["message"],
            answer_message_id=outcome.answer_message_id,
            pending_approvals=[],
            owner="",
        )
        await publisher.emit(
            EventType.DONE, {"status": str(status), "message_id": answer_id, "usage": usage}
        )
        await publisher.emit(EventType.END, {})
        return status
    except asyncio.CancelledError:
        await _fail(
            run, publisher, RunStatus.INTERRUPTED, "interrupted", "The server stopped.", usage
        )
        raise
    except Exception as exc:
        logger.exception("run %s crashed", run.id)
        await _fail(run, publisher, RunStatus.FAILED, "internal_error", str(exc)[:500], usage)
        return RunStatus.FAILED
    finally:
        beat.cancel()
        if not history_read.done():  # the snapshot failed first
            history_read.cancel()
        _cancel_events.pop(run.id, None)
        await publisher.close()


async def _title(
    run: Run,
    snapshot: Any,
    answer: str,
    publisher: RunPublisher,
    usage_ctx: Any,
    generate_title: Any,
) -> None:
    user_text = await sync_to_async(_user_text_sync)(run)
    try:
        title = (
            await generate_title(
                agent=snapshot, user_text=user_text, answer_text=answer, usage=usage_ctx
            )
        ).strip()
    except Exception:  # a title is a nicety: never fail the run for it
        logger.warning("title failed for run %s", run.id, exc_info=True)
        title = ""
    title = title[:200] or user_text[:80]
    if title:
        await sync_to_async(
            lambda: Conversation.objects.filter(id=run.conversation_id, title="").update(
                title=title
            )
        )()
        await publisher.emit(EventType.TITLE, {"title": title})


async def _fail(
    run: Run, publisher: RunPublisher, status: str, code: str, message: str, usage: dict[str, int]
) -> None:
    event = EventType.RUN_INTERRUPTED if status == RunStatus.INTERRUPTED else EventType.RUN_FAILED
    try:
        await sync_to_async(_finish_sync)(
            run.id,
            status=status,
            finished_at=timezone.now(),
            error_code=code,
            error_message=message,
            owner="",
        )
        payload = (
            {"reason": message}
            if event == EventType.RUN_INTERRUPTED
            else {"error": {"code": code, "message": message}}
        )
        await publisher.emit(event, payload)
        await publisher.emit(EventType.DONE, {"status": status, "message_id": None, "usage": usage})
        await publisher.emit(EventType.END, {})
    except Exception:
        logger.exception("could not record the end of run %s", run.id)


async def drive_conversation(conversation_id: uuid.UUID) -> None:
    """Execute the conversation's queued runs one after the other in this process."""
    if conversation_id in _driving:
        _wake.add(conversation_id)  # the loop below looks again before it stops
        return
    _driving.add(conversation_id)
    try:
        while True:
            _wake.discard(conversation_id)
            run = await sync_to_async(claim_next_run_sync)(conversation_id)
            if run is None:
                if conversation_id in _wake:
                    continue
                return
            await execute_run(run)
    finally:
        _driving.discard(conversation_id)


async def resume_paused_run(run_id: uuid.UUID) -> None:
    run = await sync_to_async(claim_paused_run_sync)(run_id)
    if run is None:
        return
    status = await execute_run(run)
    if status != RunStatus.REQUIRES_ACTION:
        await drive_conversation(run.conversation_id)


# --- dispatching -----------------------------------------------------------------------------


def main_loop() -> asyncio.AbstractEventLoop | None:
    """The ASGI server's event loop when called from a sync view running under it."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    import os

    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


def spawn(coro: Any) -> None:
    """Run `coro` as a task of the ASGI event loop (from async or sync code under it)."""
    loop = main_loop()
    assert loop is not None

    def create() -> None:
        # The server's loop outlives every run: model calls made on it share SDK clients
        # (and their keep-alive connections).
        share_clients_on_this_loop()
        # A fresh context: the run must not inherit the request's thread-sensitive
        # executor (gone when the response ends) nor its request id.
        task = loop.create_task(coro, context=contextvars.Context())
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    try:
        asyncio.get_running_loop()
        create()
    except RuntimeError:
        loop.call_soon_threadsafe(create)


def dispatch(
    *, conversation_id: uuid.UUID, background: bool = False, resume_run_id: uuid.UUID | None = None
) -> None:
    """Make sure the conversation's next run executes: here as an asyncio task when under
    the ASGI event loop, else (and for background runs) in a Celery worker. Call after commit."""
    if not background and main_loop() is not None:
        if resume_run_id is not None:
            spawn(resume_paused_run(resume_run_id))
        else:
            spawn(drive_conversation(conversation_id))
        return
    from apps.conversations.tasks import drive_task

    drive_task.delay(str(conversation_id), str(resume_run_id) if resume_run_id else None)


def prestart(run: Run) -> None:
    """Execute `run`, started in `message_send`'s transaction (call after commit), as a task
    of the ASGI loop. Its first reads begin at once; the run itself waits until its
    stream has subscribed (`stream_subscribed`), at most STREAM_GATE_SECONDS."""
    reservation = _reservations.pop(run.id)
    gate = _gates[run.id] = asyncio.Event()

    async def go() -> None:
        reads = _begin_reads(run)
        try:
            await asyncio.wait_for(gate.wait(), timeout=STREAM_GATE_SECONDS)
        except TimeoutError:
            pass  # no stream (the client left): run anyway, the events are in the log
        finally:
            _gates.pop(run.id, None)
        await execute_run(run, reservation=reservation, reads=reads)
        await drive_conversation(run.conversation_id)  # then whatever was queued behind

    spawn(go())


def stream_subscribed(run: Run) -> None:
    """Called once a stream of `run` is subscribed (on the loop or from the view's
    thread): start the run."""
    gate = _gates.get(run.id)
    if gate is not None:
        loop = main_loop()
        if loop is not None:
            loop.call_soon_threadsafe(gate.set)
    elif run.status == RunStatus.QUEUED:
        dispatch(conversation_id=run.conversation_id)


def can_start_here(*, background: bool = False) -> bool:
    """Whether a run can execute in this process now (under the ASGI event loop)."""
    return not background and main_loop() is not None


def request_cancel_local(run_id: uuid.UUID) -> None:
    event = _cancel_events.get(run_id)
    if event is not None:
        loop = main_loop()
        if loop is not None:
            loop.call_soon_threadsafe(event.set)
        else:
            event.set()


# --- recovery -----------------------------------------------------------------------------


def stale_runs_sync(conversation_id: uuid.UUID | None = None) -> list[Run]:
    qs = Run.objects.filter(
        status=RunStatus.RUNNING, heartbeat_at__lt=timezone.now() - STALE_AFTER
    ).exclude(owner=PROCESS_ID)
    if conversation_id is not None:
        qs = qs.filter(conversation_id=conversation_id)
    return list(qs)


async def interrupt_stale_runs(conversation_id: uuid.UUID | None = None) -> int:
    """Mark runs whose process died (no heartbeat for STALE_AFTER) `interrupted`, with
    their closing events; the next turn repairs their dangling tool calls. Idempotent."""
    count = 0
    for run in await sync_to_async(stale_runs_sync)(conversation_id):
        updated = await sync_to_async(
            lambda r=run: Run.objects.filter(
                id=r.id, status=RunStatus.RUNNING, heartbeat_at=r.heartbeat_at
            ).update(
                status=RunStatus.INTERRUPTED,
                finished_at=timezone.now(),
                error_code="interrupted",
                error_message="The process executing the run stopped.",
                owner="",
            )
        )()
        if not updated:
            continue
        count += 1
        await publish_detached(
            conversation_id=run.conversation_id,
            run_id=run.id,
            events=[
                (EventType.RUN_INTERRUPTED, {"reason": "The process executing the run stopped."}),
                (
                    EventType.DONE,
                    {
                        "status": "interrupted",
                        "message_id": None,
                        "usage": {
                            "input_tokens": run.input_tokens,
                            "output_tokens": run.output_tokens,
                        },
                    },
                ),
                (EventType.END, {}),
            ],
        )
    return count


__all__ = ["RunKind"]

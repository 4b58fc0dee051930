"""Executing runs: drive the engine's `run_turn` for a run the run service claimed, with
hooks that publish events and store messages (through the service), and finish the run.

Nothing here starts a run on its own: the executor (executor.py) calls `run_next`,
`resume` and `execute_started`, as the run service (services.py) asks it to. Interactive
runs execute as asyncio tasks on the ASGI server's loop; background runs in a Celery
worker: same code. Runs of one conversation are serial: the claim is a conditional
transition guarded by the partial unique constraint `conversation_one_active_run`.
"""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async

from apps.agents.engine import (
    client_tool_specs,
    generate_suggestions,
    generate_title,
    repair_dangling_tool_calls,
    run_turn,
)
from apps.agents.selectors import agent_snapshot
from apps.conversations import selectors, services
from apps.conversations.choices import RunStatus
from apps.conversations.eventlog import RunPublisher
from apps.conversations.executor import Reservation, executor
from apps.conversations.models import Run
from apps.core.db import db_sync_to_async
from apps.core.events import (
    Done,
    End,
    Event,
    PendingCall,
    RunCancelled,
    RunCompleted,
    RunError,
    RunFailed,
    RunInterrupted,
    RunQueued,
    RunRequiresAction,
    RunStarted,
    Suggestions,
    Title,
    ToolResult,
    Usage,
)
from apps.core.tools import ToolContext
from apps.providers.services import prefetch_model, remember_resolutions
from apps.providers.types import UsageContext

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0  # how often a running run proves its process alive (and polls cancel)


def current_turn(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What an agent with memory_mode "none" sees: the latest user message and what this
    turn added after it (tool calls and results while the run goes on)."""
    for index in range(len(history) - 1, -1, -1):
        if history[index].get("role") == "user":
            return history[index:]
    return history


def client_instructions(client_input: dict[str, Any]) -> str:
    """What a protocol client's context and state tell the model for this run (added to
    the system prompt): each context item, and the application's state as JSON."""
    parts = [
        f"{item.get('description', '')}:\n{item.get('value', '')}"
        for item in client_input.get("context") or []
    ]
    if "state" in client_input:
        state = json.dumps(client_input["state"], ensure_ascii=False, sort_keys=True)
        parts.append(f"The application's current state (JSON):\n{state}")
    if not parts:
        return ""
    return "Context from the application you are embedded in:\n\n" + "\n\n".join(parts)


# --- the hooks the engine calls -------------------------------------------------------------


class Hooks:
    """RunHooks for one run: events through the publisher, messages through the service."""

    def __init__(self, run: Run, publisher: RunPublisher) -> None:
        self.run = run
        self.publisher = publisher

    async def emit(self, event: Event) -> None:
        await self.publisher.emit(event)

    async def persist_message(self, message: dict[str, Any]) -> uuid.UUID:
        # A step boundary: what was streamed so far reaches the log before the message.
        await self.publisher.flush()
        msg = await sync_to_async(services.message_create)(
            conversation_id=self.run.conversation_id, run_id=self.run.id, message=message
        )
        return msg.id


# --- execution -----------------------------------------------------------------------------


def _snapshot_sync(run: Run) -> Any:
    return agent_snapshot(agent=run.agent)


def _history_sync(conversation_id: uuid.UUID) -> list[dict[str, Any]]:
    return selectors.conversation_history(conversation_id=conversation_id)


async def _heartbeat(run: Run, cancel: asyncio.Event, publisher: RunPublisher) -> None:
    """Every HEARTBEAT_SECONDS (or when poked: a message was queued in this process):
    prove this process alive, see a cancel asked elsewhere, and announce the messages
    queued behind the run (`run.queued`)."""
    poke = executor.poke_signal(run.id)
    announced: set[str] = set()
    while not cancel.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(poke.wait(), timeout=HEARTBEAT_SECONDS)
        poke.clear()
        cancelled, queued = await sync_to_async(services.run_heartbeat)(run=run)
        if cancelled:
            cancel.set()
        for position, queued_id in enumerate(queued, start=1):
            if queued_id not in announced:
                announced.add(queued_id)
                await publisher.emit(RunQueued(queued_run_id=queued_id, position=position))


async def _read_sync(func: Callable[..., Any], *args: Any) -> Any:
    return await db_sync_to_async(func)(*args)


def _begin_reads(run: Run) -> tuple[asyncio.Task[Any], asyncio.Task[Any]]:
    """What the first model call needs, read at once and concurrently, each query on a
    thread of its own: the agent snapshot, the history, and the model's resolution
    (remembered for the whole run: see `remember_resolutions`)."""
    remember_resolutions()
    prefetch_model(workspace_id=run.workspace_id, model_id=run.agent.model_id, kind="chat")
    loop = asyncio.get_running_loop()
    return (
        loop.create_task(_read_sync(_snapshot_sync, run)),
        loop.create_task(_read_sync(_history_sync, run.conversation_id)),
    )


async def execute_run(
    run: Run,
    *,
    reservation: tuple[int, int, int] | None = None,
    stream_gate: Awaitable[None] | None = None,
) -> str:
    """Execute a claimed run to a stopping point; returns its new status. `reservation`
    and `stream_gate` come from `execute_started` when the run started in the request."""
    publisher = RunPublisher(conversation_id=run.conversation_id, run_id=run.id)
    snapshot_read, history_read = _begin_reads(run)
    try:
        await publisher.start(reservation)
        if stream_gate is not None:
            publisher.hold_local_until(stream_gate)
    except BaseException:
        for task in (snapshot_read, history_read):
            task.cancel()
        await asyncio.gather(snapshot_read, history_read, return_exceptions=True)
        raise
    hooks = Hooks(run, publisher)
    cancel = executor.cancel_signal(run.id)
    if run.cancel_requested:
        cancel.set()
    beat = asyncio.get_running_loop().create_task(_heartbeat(run, cancel, publisher))
    status = RunStatus.FAILED
    usage = {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens}
    try:
        snapshot = await snapshot_read
        resuming = bool(run.decisions)
        if not resuming:
            await publisher.emit(
                RunStarted(
                    agent_id=str(run.agent_id),
                    message_id=str(run.message_id) if run.message_id else None,
                )
            )
        history = await history_read
        if not resuming:
            repairs = repair_dangling_tool_calls(history)
            for repair in repairs:
                await hooks.persist_message(repair)
                await publisher.emit(
                    ToolResult(
                        tool_call_id=str(repair.get("tool_call_id") or ""),
                        name=repair.get("metadata", {}).get("tool_name", ""),
                        content=repair.get("content", ""),
                        is_error=True,
                        synthetic=True,
                    )
                )
            if repairs:
                history = await sync_to_async(_history_sync)(run.conversation_id)
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
            client_tools=client_tool_specs(run.client_input.get("tools") or []),
            instructions=client_instructions(run.client_input),
        )
        usage = {
            "input_tokens": run.input_tokens + outcome.input_tokens,
            "output_tokens": run.output_tokens + outcome.output_tokens,
        }
        answer_id = str(outcome.answer_message_id) if outcome.answer_message_id else None
        if outcome.status == "requires_action":
            await sync_to_async(services.run_pause)(
                run_id=run.id, pending=outcome.pending_approvals, usage=usage
            )
            await publisher.emit(
                RunRequiresAction(
                    pending=[PendingCall.from_dict(p) for p in outcome.pending_approvals]
                )
            )
            return RunStatus.REQUIRES_ACTION
        if outcome.status == "completed":
            status = RunStatus.COMPLETED
            extras = selectors.run_wants_extras(run=run)
            if extras and await sync_to_async(selectors.run_is_first_exchange)(run=run):
                await _title(run, snapshot, outcome.answer_text, publisher, usage_ctx)
            if extras and snapshot.suggestions_enabled:
                try:
                    history = await sync_to_async(_history_sync)(run.conversation_id)
                    suggestions = await generate_suggestions(
                        agent=snapshot, history=history, usage=usage_ctx
                    )
                except Exception:  # suggestions are a nicety: never fail the run for them
                    logger.warning("suggestions failed for run %s", run.id, exc_info=True)
                    suggestions = []
                if suggestions:
                    await publisher.emit(Suggestions(suggestions=suggestions))
            await publisher.emit(RunCompleted(usage=Usage(**usage)))
            error = {"code": "", "message": ""}
        elif outcome.status == "cancelled":
            status = RunStatus.CANCELLED
            await publisher.emit(RunCancelled(reason="cancelled"))
            error = {"code": "", "message": ""}
        else:
            status = RunStatus.FAILED
            error = {"code": outcome.error_code or "run_failed", "message": outcome.error_message}
            await publisher.emit(RunFailed(error=RunError(**error)))
        await sync_to_async(services.run_finish)(
            run_id=run.id,
            status=status,
            usage=usage,
            error_code=error["code"],
            error_message=error["message"],
            answer_message_id=outcome.answer_message_id,
        )
        await publisher.emit(Done(status=str(status), message_id=answer_id, usage=Usage(**usage)))
        await publisher.emit(End())
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
        executor.forget(run.id)
        await publisher.close()


async def _title(
    run: Run,
    snapshot: Any,
    answer: str,
    publisher: RunPublisher,
    usage_ctx: Any,
) -> None:
    user_text = await sync_to_async(selectors.run_user_text)(run=run)
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
        await sync_to_async(services.conversation_title_auto)(
            conversation_id=run.conversation_id, title=title
        )
        await publisher.emit(Title(title=title))


async def _fail(
    run: Run, publisher: RunPublisher, status: str, code: str, message: str, usage: dict[str, int]
) -> None:
    event: Event = (
        RunInterrupted(reason=message)
        if status == RunStatus.INTERRUPTED
        else RunFailed(error=RunError(code=code, message=message))
    )
    try:
        await sync_to_async(services.run_finish)(
            run_id=run.id, status=status, error_code=code, error_message=message
        )
        await publisher.emit(event)
        await publisher.emit(Done(status=str(status), message_id=None, usage=Usage(**usage)))
        await publisher.emit(End())
    except Exception:
        logger.exception("could not record the end of run %s", run.id)


# --- what the executor calls (executor.ExecutorPorts) ---------------------------------------


async def run_next(conversation_id: uuid.UUID) -> bool:
    """Claim the conversation's next queued run and execute it; False when none started."""
    run = await sync_to_async(services.run_claim_next)(conversation_id=conversation_id)
    if run is None:
        return False
    await execute_run(run)
    return True


async def resume(run_id: uuid.UUID) -> str | None:
    """Claim a paused run (its decisions stored) and execute it; its new status."""
    run = await sync_to_async(services.run_claim_paused)(run_id=run_id)
    if run is None:
        return None
    return await execute_run(run)


async def execute_started(run: Run, reservation: Reservation, gate: Awaitable[None]) -> None:
    """Execute a run started in the send's transaction at once: its first reads and its
    model call overlap the response being sent; its events reach this process's streams,
    in order, once `gate` opens (the request's stream subscribed)."""
    await execute_run(run, reservation=reservation, stream_gate=gate)

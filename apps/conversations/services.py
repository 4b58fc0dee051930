"""Writes of conversations, messages and runs, and the run service.

The run service is the only way any caller starts, resumes or cancels a run:
`message_send` (the public send entry point), `run_start`, `run_resume`, `run_cancel`,
`run_stream_opened`. Behind it the process's one `RunExecutor` (executor.py) executes runs
on the ASGI server's loop or hands them to a Celery worker; `runner.py` executes and calls
back here for every write (claims, messages, the end of a run).
"""

import contextlib
import hashlib
import secrets
import uuid
from dataclasses import asdict, is_dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from apps.agents.services import message_inputs_prepare
from apps.conversations.choices import (
    ACTIVE_STATUSES,
    ConversationSource,
    Rating,
    Role,
    RunKind,
    RunStatus,
)
from apps.conversations.eventlog import PROCESS_ID, cursor_reservation_sync, publish_detached
from apps.conversations.exceptions import (
    NothingToRerun,
    RunActive,
    RunNotAwaitingApproval,
    RunNotCancellable,
    RunNotQueued,
)
from apps.conversations.executor import executor
from apps.conversations.models import (
    Conversation,
    Message,
    MessageFeedback,
    Run,
    ShareLink,
    StreamTicket,
)
from apps.core.events import (
    Done,
    End,
    OutboundEvent,
    PendingCall,
    RunCancelled,
    RunCompletedNotice,
    RunError,
    RunFailedNotice,
    RunInterrupted,
    RunRequiresActionNotice,
    Usage,
)
from apps.core.exceptions import ValidationFailed
from apps.core.jobs import (
    JobKind,
    job_claim,
    job_finish,
    job_heartbeat,
    job_kind_sweep,
    job_release,
)
from apps.core.outbox import outbox_emit
from apps.files.services import files_delete_for_conversation
from apps.users.actors import Actor
from apps.users.choices import Role as MemberRole

STREAM_TICKET_TTL = timedelta(seconds=60)
STALE_AFTER = timedelta(seconds=30)  # a running run silent this long belongs to a dead process
INTERRUPTED_REASON = "The process executing the run stopped."


# --- the run service -------------------------------------------------------------------------


def run_start(*, conversation_id: uuid.UUID, background: bool = False) -> None:
    """Make sure the conversation's next queued run executes (idempotent): in this process
    when it serves the ASGI loop, else (and for background runs) in a Celery worker.
    Within a transaction it takes effect after commit."""
    transaction.on_commit(lambda: executor.start(conversation_id, background=background))


def run_resume(*, run: Run) -> None:
    """Execute a paused run whose decisions are stored (after commit)."""
    transaction.on_commit(lambda: executor.resume(run.conversation_id, run.id))


def run_stream_opened(*, run: Run) -> None:
    """A stream of `run` (sent with `message_send(stream=True)`) is subscribed: the run
    goes (at once when it was started in the send; queued, when nothing is active)."""
    if run.status == RunStatus.RUNNING and executor.can_start_here():
        executor.stream_subscribed(run.id)
    elif run.status == RunStatus.QUEUED:
        executor.start(run.conversation_id, background=run.background)


def _after_commit_prestart(run: Run, reservation: tuple[int, int, int]) -> None:
    executor.hold(run.id, reservation)
    transaction.on_commit(lambda: executor.prestart(run))


def conversation_create(
    *,
    actor: Actor,
    agent: Any,
    title: str = "",
    source: str = ConversationSource.CHAT,
    conversation_id: uuid.UUID | None = None,
) -> Conversation:
    """A new conversation of the actor with `agent` (already access-checked); under
    `conversation_id` when the caller names it (a protocol's thread id). Raises
    IntegrityError when that id is taken."""
    actor.require_role(MemberRole.VIEWER)
    return Conversation.objects.create(
        id=conversation_id or uuid.uuid4(),
        workspace=actor.workspace,
        agent=agent,
        user=actor.user,
        title=title[:200],
        source=source,
    )


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    """Set the title (and stop the automatic one)."""
    conversation.title = title[:200]
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete the conversation with its messages, runs and events; an active run is
    asked to stop first."""
    for run in Run.objects.filter(conversation=conversation, status__in=ACTIVE_STATUSES):
        executor.cancel(run.id)
    with transaction.atomic():
        files_delete_for_conversation(conversation_id=conversation.id)
        conversation.delete()


def interrupt_stale_runs_of(*, conversation: Conversation) -> None:
    """Mark the conversation's runs whose process died `interrupted` (idempotent), so a
    new message can start and a stream of such a run ends."""
    if runs_interrupt_stale(conversation_id=conversation.id):
        run_start(conversation_id=conversation.id)


def _publish_interrupted(run: Run) -> None:
    """The closing events of a run the stale sweep ended (its process is gone, so this is
    the only writer of its conversation's events)."""
    async_to_sync(publish_detached)(
        conversation_id=run.conversation_id,
        run_id=run.id,
        events=[
            RunInterrupted(reason=INTERRUPTED_REASON),
            _done(RunStatus.INTERRUPTED, run),
            End(),
        ],
    )


# Runs are jobs of apps.core.jobs: claimed, kept alive and ended by its functions; its one
# beat sweep (core.sweep_stale_jobs) ends a running run without a heartbeat for
# STALE_AFTER `interrupted` with a reason and publishes its closing events (registered in
# ConversationsConfig.ready).
RUN_JOB_KIND: JobKind[Run] = JobKind(
    name="conversations.run",
    model=Run,
    stale_after=STALE_AFTER,
    stale_status=RunStatus.INTERRUPTED,
    stale_code="interrupted",
    stale_reason=INTERRUPTED_REASON,
    on_ended=_publish_interrupted,
)


def runs_interrupt_stale(*, conversation_id: uuid.UUID | None = None) -> int:
    """Mark runs whose process died (no heartbeat for STALE_AFTER) `interrupted` with a
    reason, and publish their closing events; the next turn repairs their dangling tool
    calls. Idempotent (the job sweep's conditional update per run). For one conversation,
    this process's own runs are left alone (they are alive while it runs this). Returns
    how many it marked."""
    where = None
    if conversation_id is not None:
        where = Q(conversation_id=conversation_id) & ~Q(worker_id=PROCESS_ID)
    return job_kind_sweep(RUN_JOB_KIND, where=where)


def _done(status: str, run: Run) -> Done:
    """The `done` of a run that ends without executing further (no answer)."""
    return Done(
        status=str(status),
        message_id=None,
        usage=Usage(input_tokens=run.input_tokens, output_tokens=run.output_tokens),
    )


def _interrupt_stale(conversation: Conversation) -> None:
    interrupt_stale_runs_of(conversation=conversation)


def _validate_content(content: Any) -> Any:
    if isinstance(content, str):
        if not content.strip():
            raise ValidationFailed("The message is empty.", field="content")
        return content
    if isinstance(content, list) and content:
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in {"text", "image_url"}:
                raise ValidationFailed(
                    'Each content part is {"type": "text", "text": ...} or '
                    '{"type": "image_url", "image_url": {"url": ...}}.',
                    field="content",
                )
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise ValidationFailed("A text part needs `text`.", field="content")
            if part["type"] == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if not isinstance(url, str) or not url.startswith(("https://", "data:image/")):
                    raise ValidationFailed(
                        "An image is an https:// URL or a data:image/... URL.", field="content"
                    )
        return content
    raise ValidationFailed("content is a string or a list of parts.", field="content")


def message_send(
    *,
    actor: Actor,
    conversation: Conversation,
    content: Any,
    attachments: list[dict[str, Any]] | None = None,
    running_run_behavior: str = "queue",
    background: bool = False,
    stream: bool = False,
    client_input: dict[str, Any] | None = None,
    run_id: uuid.UUID | None = None,
) -> Run:
    """Send a user message: a queued Run holding it, started at once when no run is
    active (the message then exists when this returns), else queued behind the active
    run, or, with running_run_behavior="interrupt", the active run is cancelled first.
    With stream=True the caller streams the run and calls `run_stream_opened(run=...)`
    once subscribed; when the run can start in this process at once, it is started in
    this transaction (status running, cursors reserved) and begins as soon as the stream
    subscribes (or after STREAM_GATE_SECONDS without one). `client_input`: a protocol
    client's tools and context for the run (Run.client_input); `run_id`: the run's id
    when the caller names it (free: the caller checked)."""
    actor.require_role(MemberRole.VIEWER)
    content = _validate_content(content)
    attachments = message_inputs_prepare(
        actor=actor,
        agent=conversation.agent,
        conversation_id=conversation.id,
        content=content,
        attachments=attachments or [],
    )
    _interrupt_stale(conversation)
    with transaction.atomic():
        locked = (
            Conversation.objects.select_for_update()
            .only("message_seq", "cursor_reserved")
            .get(id=conversation.id)
        )
        waiting = list(
            Run.objects.filter(
                conversation=conversation, status__in=[*ACTIVE_STATUSES, RunStatus.QUEUED]
            )
        )
        active = next((r for r in waiting if r.status in ACTIVE_STATUSES), None)
        queued = [r for r in waiting if r.status == RunStatus.QUEUED]
        if active is None and not queued:
            run = _run_now(
                actor=actor,
                conversation=conversation,
                locked=locked,
                message={"role": Role.USER, "content": content, "attachments": attachments or []},
                background=background,
                start_here=stream and executor.can_start_here(background=background),
                client_input=client_input or {},
                run_id=run_id,
            )
        else:
            priority = 0
            if active is not None and running_run_behavior == "interrupt":
                priority = max((r.priority for r in queued), default=0) + 1
            run = Run.objects.create(
                id=run_id or uuid.uuid4(),
                conversation=conversation,
                workspace_id=conversation.workspace_id,
                agent_id=conversation.agent_id,
                created_by=actor.user,
                kind=RunKind.SEND,
                pending_input={"content": content, "attachments": attachments or []},
                priority=priority,
                background=background,
                client_input=client_input or {},
            )
    if active is not None and running_run_behavior == "interrupt":
        _cancel_active(active)
    elif active is not None:
        active_id = active.id  # its heartbeat announces the queued message (`run.queued`)
        transaction.on_commit(lambda: executor.poke(active_id))
    if not stream:
        run_start(conversation_id=conversation.id, background=background)
    return run


def _started_here_fields(now: Any) -> dict[str, Any]:
    """A run inserted already claimed by this process (what `job_claim` would write)."""
    return {
        "status": RunStatus.RUNNING,
        "worker_id": PROCESS_ID,
        "attempts": 1,
        "heartbeat_at": now,
        "started_at": now,
    }


def _run_now(
    *,
    actor: Actor,
    conversation: Conversation,
    locked: Conversation,
    message: dict[str, Any],
    background: bool,
    start_here: bool,
    client_input: dict[str, Any],
    run_id: uuid.UUID | None,
) -> Run:
    """In `message_send`'s transaction (the conversation row `locked`, no run active or
    queued): the message and its run, stored at once so the 202 already names the
    message. With `start_here` the run is also running in this process with its event
    cursors reserved, and the executor executes it after commit; otherwise it is queued
    for `run_start`. Five statements: the log's last cursor, two inserts,
    one update."""
    now = timezone.now()
    run_id = run_id or uuid.uuid4()
    seq = locked.message_seq + 1
    msg = message_create(conversation_id=conversation.id, run_id=run_id, message=message, seq=seq)
    run = Run.objects.create(
        id=run_id,
        conversation=conversation,
        workspace_id=conversation.workspace_id,
        agent_id=conversation.agent_id,
        created_by=actor.user,
        kind=RunKind.SEND,
        message=msg,
        background=background,
        client_input=client_input,
        **(_started_here_fields(now) if start_here else {}),
    )
    mark: dict[str, Any] = {"message_seq": seq, "last_message_at": now}
    if start_here:
        reservation = cursor_reservation_sync(conversation.id, locked.cursor_reserved)
        mark["cursor_reserved"] = reservation[1]
        run.conversation, run.agent = conversation, conversation.agent
        _after_commit_prestart(run, reservation)
    Conversation.objects.filter(id=conversation.id).update(**mark)
    return run


def _cancel_active(run: Run) -> None:
    if run.status == RunStatus.REQUIRES_ACTION:
        _cancel_paused(run)
    else:
        Run.objects.filter(id=run.id).update(cancel_requested=True)
        executor.cancel(run.id)


def _cancel_paused(run: Run) -> bool:
    updated = job_finish(
        Run,
        run.id,
        status=RunStatus.CANCELLED,
        code="cancelled",
        reason="Cancelled while it waited for approval.",
        from_statuses=[RunStatus.REQUIRES_ACTION],
        cancel_requested=True,
        pending_approvals=[],
    )
    if updated:
        async_to_sync(publish_detached)(
            conversation_id=run.conversation_id,
            run_id=run.id,
            events=[
                RunCancelled(reason="cancelled"),
                _done(RunStatus.CANCELLED, run),
                End(),
            ],
        )
    return bool(updated)


def run_cancel(*, actor: Actor, run: Run) -> Run:
    """Cancel a run: a queued one never starts, a paused one ends now, a running one is
    told to stop (it ends `cancelled` at its next step). Raises RunNotCancellable."""
    actor.require_role(MemberRole.VIEWER)
    if run.status == RunStatus.QUEUED:
        if not _cancel_queued(run, reason="Cancelled before it started."):
            run.refresh_from_db()
            return run_cancel(actor=actor, run=run)
    elif run.status == RunStatus.REQUIRES_ACTION:
        if not _cancel_paused(run):
            run.refresh_from_db()
            return run_cancel(actor=actor, run=run)
        run_start(conversation_id=run.conversation_id)
    elif run.status == RunStatus.RUNNING:
        Run.objects.filter(id=run.id).update(cancel_requested=True)
        executor.cancel(run.id)
    else:
        raise RunNotCancellable()
    run.refresh_from_db()
    return run


def run_decide(*, actor: Actor, run: Run, decisions: dict[str, bool]) -> Run:
    """Approve or reject the pending tool calls of a paused run and resume it. Every
    pending call needs a decision. Raises RunNotAwaitingApproval, ValidationFailed."""
    actor.require_role(MemberRole.VIEWER)
    if run.status != RunStatus.REQUIRES_ACTION:
        raise RunNotAwaitingApproval()
    pending = {p["tool_call_id"] for p in run.pending_approvals}
    if set(decisions) != pending:
        raise ValidationFailed(
            "Decide every pending tool call: " + ", ".join(sorted(pending)) + ".",
            field="decisions",
        )
    updated = Run.objects.filter(id=run.id, status=RunStatus.REQUIRES_ACTION, decisions={}).update(
        decisions=decisions
    )
    if not updated:
        raise RunNotAwaitingApproval("A decision was already recorded.")
    run.refresh_from_db()
    run_resume(run=run)
    return run


def run_submit_tool_results(
    *,
    actor: Actor,
    run: Run,
    results: dict[str, str],
    decisions: dict[str, bool],
) -> Run:
    """Answer the pending tool calls of a paused run and resume it: `results` are the
    outputs of client tools (Run.client_input tools) the client executed, stored as the
    calls' tool messages; `decisions` approve or reject the calls that need approval.
    Every pending call needs one or the other. Raises RunNotAwaitingApproval,
    ValidationFailed (field "messages" for results, "resume" for decisions)."""
    actor.require_role(MemberRole.VIEWER)
    if run.status != RunStatus.REQUIRES_ACTION:
        raise RunNotAwaitingApproval()
    client_names = {t.get("name") for t in (run.client_input.get("tools") or [])}
    pending = {p["tool_call_id"]: p for p in run.pending_approvals}
    for call_id in results:
        if call_id not in pending or pending[call_id]["name"] not in client_names:
            raise ValidationFailed(
                f"No client tool call {call_id!r} waits for a result.", field="messages"
            )
    for call_id in decisions:
        if call_id not in pending or pending[call_id]["name"] in client_names:
            raise ValidationFailed(
                f"No tool call {call_id!r} waits for an approval.", field="resume"
            )
    missing = sorted(set(pending) - set(results) - set(decisions))
    if missing:
        raise ValidationFailed(
            "Answer every pending tool call: " + ", ".join(missing) + ".", field="messages"
        )
    with transaction.atomic():
        updated = Run.objects.filter(
            id=run.id, status=RunStatus.REQUIRES_ACTION, decisions={}
        ).update(decisions={**decisions, **dict.fromkeys(results, True)})
        if not updated:
            raise RunNotAwaitingApproval("A decision was already recorded.")
        for call_id, content in results.items():
            message_create(
                conversation_id=run.conversation_id,
                run_id=run.id,
                message={
                    "role": Role.TOOL,
                    "tool_call_id": call_id,
                    "content": content,
                    "metadata": {"tool_name": pending[call_id]["name"], "client": True},
                },
            )
    run.refresh_from_db()
    run_resume(run=run)
    return run


def queue_promote(*, run: Run) -> Run:
    """Move a queued message to the front of its conversation's queue."""
    with transaction.atomic():
        top = Run.objects.filter(
            conversation_id=run.conversation_id, status=RunStatus.QUEUED
        ).aggregate(m=Max("priority"))["m"]
        updated = Run.objects.filter(id=run.id, status=RunStatus.QUEUED).update(
            priority=(top or 0) + 1
        )
    if not updated:
        raise RunNotQueued()
    run.refresh_from_db()
    return run


def queue_delete(*, run: Run) -> None:
    """Remove a queued message (its run becomes `cancelled`, never started)."""
    if not _cancel_queued(run, reason="The queued message was deleted."):
        raise RunNotQueued()


def _cancel_queued(run: Run, *, reason: str) -> bool:
    return job_finish(
        Run,
        run.id,
        status=RunStatus.CANCELLED,
        code="cancelled",
        reason=reason,
        from_statuses=[RunStatus.QUEUED],
        cancel_requested=True,
    )


def _rerun(
    *,
    actor: Actor,
    conversation: Conversation,
    kind: str,
    new_content: Any | None,
) -> Run:
    actor.require_role(MemberRole.VIEWER)
    _interrupt_stale(conversation)
    with transaction.atomic():
        Conversation.objects.select_for_update().filter(id=conversation.id).first()
        if Run.objects.filter(
            conversation=conversation, status__in=[*ACTIVE_STATUSES, RunStatus.QUEUED]
        ).exists():
            raise RunActive()
        last_user = (
            Message.objects.filter(
                conversation=conversation, role=Role.USER, superseded_at__isnull=True
            )
            .order_by("-seq")
            .first()
        )
        if last_user is None:
            raise NothingToRerun()
        now = timezone.now()
        later = Message.objects.filter(
            conversation=conversation, seq__gt=last_user.seq, superseded_at__isnull=True
        )
        run = Run.objects.create(
            conversation=conversation,
            workspace_id=conversation.workspace_id,
            agent_id=conversation.agent_id,
            created_by=actor.user,
            kind=kind,
        )
        if new_content is not None:
            later.update(superseded_at=now)
            Message.objects.filter(id=last_user.id).update(superseded_at=now)
            msg = message_create(
                conversation_id=conversation.id,
                run_id=run.id,
                message={
                    "role": Role.USER,
                    "content": new_content,
                    "attachments": last_user.attachments,
                    "metadata": {"edited_from": str(last_user.id)},
                },
            )
        else:
            later.update(superseded_at=now)
            msg = last_user
        run.message = msg
        run.save(update_fields=["message"])
    run_start(conversation_id=conversation.id)
    return run


def conversation_edit_last_user_message(
    *, actor: Actor, conversation: Conversation, content: Any
) -> Run:
    """Replace the last user message (the old one and everything after it are kept,
    marked superseded) and re-run from it. Raises RunActive, NothingToRerun."""
    return _rerun(
        actor=actor,
        conversation=conversation,
        kind=RunKind.RERUN,
        new_content=_validate_content(content),
    )


def conversation_regenerate(*, actor: Actor, conversation: Conversation) -> Run:
    """Answer the last user message again (the previous answer is kept, superseded).
    Raises RunActive, NothingToRerun."""
    return _rerun(actor=actor, conversation=conversation, kind=RunKind.REGENERATE, new_content=None)


def feedback_set(
    *, actor: Actor, message: Message, rating: str, comment: str = ""
) -> MessageFeedback:
    """Record (or replace) the actor's rating of an answer. Idempotent."""
    if message.role != Role.ASSISTANT:
        raise ValidationFailed("Only answers can be rated.", field="message")
    if rating not in Rating.values:
        raise ValidationFailed("rating is up or down.", field="rating")
    feedback, _ = MessageFeedback.objects.update_or_create(
        message=message, user=actor.user, defaults={"rating": rating, "comment": comment}
    )
    return feedback


def share_create(*, actor: Actor, conversation: Conversation) -> ShareLink:
    """A new public read-only link to the conversation."""
    return ShareLink.objects.create(
        conversation=conversation, created_by=actor.user, token=secrets.token_urlsafe(24)
    )


def share_revoke(*, share: ShareLink) -> ShareLink:
    """Revoke a share link (idempotent): its URL answers 404 from now on."""
    if share.revoked_at is None:
        share.revoked_at = timezone.now()
        share.save(update_fields=["revoked_at", "updated_at"])
    return share


def _ticket_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def stream_ticket_create(*, actor: Actor, conversation: Conversation) -> tuple[StreamTicket, str]:
    """A single-use ticket valid STREAM_TICKET_TTL for one stream of this conversation
    (browsers' EventSource cannot send an Authorization header). Returns (row, token)."""
    token = secrets.token_urlsafe(32)
    ticket = StreamTicket.objects.create(
        token_hash=_ticket_hash(token),
        user=actor.user,
        workspace=actor.workspace,
        conversation=conversation,
        expires_at=timezone.now() + STREAM_TICKET_TTL,
    )
    return ticket, token


def stream_ticket_consume(*, token: str) -> StreamTicket | None:
    """The ticket for `token` if it is valid, marking it used (a conditional update, so
    two requests racing with one ticket cannot both win)."""
    now = timezone.now()
    ticket = StreamTicket.objects.filter(token_hash=_ticket_hash(token)).first()
    if ticket is None or ticket.expires_at <= now:
        return None
    if not StreamTicket.objects.filter(id=ticket.id, used_at__isnull=True).update(used_at=now):
        return None
    return ticket


# --- writes of the runner (runner.py executes; rows are written here) ----------------------


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


def _plain(citation: Any) -> Any:
    return (
        asdict(citation) if is_dataclass(citation) and not isinstance(citation, type) else citation
    )


def message_create(
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


def conversation_history_import(
    *, conversation: Conversation, messages: list[dict[str, Any]]
) -> None:
    """Store earlier messages given by a client (the OpenAI-compatible endpoint's request
    history) before its first send."""
    for message in messages:
        message_create(conversation_id=conversation.id, run_id=None, message=dict(message))


def run_claim_next(*, conversation_id: uuid.UUID) -> Run | None:
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
            if not job_claim(
                Run,
                run.id,
                from_statuses=[RunStatus.QUEUED],
                status=RunStatus.RUNNING,
                worker_id=PROCESS_ID,
            ):
                return None
            if run.pending_input and run.message_id is None:
                msg = message_create(
                    conversation_id=conversation_id,
                    run_id=run.id,
                    message={"role": Role.USER, **run.pending_input},
                )
                Run.objects.filter(id=run.id).update(message=msg, pending_input={})
    except IntegrityError:
        return None  # another process started a run first
    return Run.objects.select_related("agent", "conversation").get(id=run.id)


def run_claim_paused(*, run_id: uuid.UUID) -> Run | None:
    """requires_action -> running for the approval decisions already stored on the run."""
    if not job_claim(
        Run,
        run_id,
        from_statuses=[RunStatus.REQUIRES_ACTION],
        status=RunStatus.RUNNING,
        worker_id=PROCESS_ID,
    ):
        return None
    return Run.objects.select_related("agent", "conversation").get(id=run_id)


def run_heartbeat(*, run: Run) -> tuple[bool, list[str]]:
    """Prove this process alive for a run it executes. Returns whether a cancel was asked,
    and the ids of the runs queued behind it, next first."""
    job_heartbeat(Run, run.id, worker_id=PROCESS_ID)
    cancelled = Run.objects.filter(id=run.id, cancel_requested=True).exists()
    queued = Run.objects.filter(
        conversation_id=run.conversation_id, status=RunStatus.QUEUED
    ).order_by("-priority", "created_at")
    return cancelled, [str(i) for i in queued.values_list("id", flat=True)]


def run_pause(*, run_id: uuid.UUID, pending: list[dict[str, Any]], usage: dict[str, int]) -> None:
    """A run waits for approval decisions on `pending` tool calls."""
    with transaction.atomic():
        paused = job_release(
            Run,
            run_id,
            status=RunStatus.REQUIRES_ACTION,
            pending_approvals=pending,
            decisions={},
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
        )
        if paused:
            _outbound_run_event(run_id)


def run_finish(
    *,
    run_id: uuid.UUID,
    status: str,
    usage: dict[str, int] | None = None,
    error_code: str = "",
    error_message: str = "",
    answer_message_id: uuid.UUID | None = None,
) -> None:
    """Record the end of a run executed here: its terminal status, usage, error, answer.
    The first end wins (a run the stale sweep already ended stays so; no second webhook)."""
    fields: dict[str, Any] = {"pending_approvals": [], "worker_id": ""}
    if usage is not None:
        fields.update(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"])
    if answer_message_id is not None:
        fields["answer_message_id"] = answer_message_id
    with transaction.atomic():
        ended = job_finish(
            Run, run_id, status=status, code=error_code, reason=error_message, **fields
        )
        if ended:
            _outbound_run_event(run_id)


def _outbound_run_event(run_id: uuid.UUID) -> None:
    """The run's outbound event (webhooks, core.outbox), in the transaction of its
    status: run.completed, run.failed or run.requires_action (other statuses: none)."""
    run = Run.objects.select_related("answer_message").filter(id=run_id).first()
    if run is None:
        return
    # The fields every run event shares, spelled out per class so mypy checks each one.
    run_id, conversation_id, agent_id = run.id, run.conversation_id, run.agent_id
    status = str(run.status)
    usage = Usage(input_tokens=run.input_tokens, output_tokens=run.output_tokens)
    event: OutboundEvent
    if run.status == RunStatus.COMPLETED:
        event = RunCompletedNotice(
            run_id=run_id,
            conversation_id=conversation_id,
            agent_id=agent_id,
            status=status,
            usage=usage,
            message_id=run.answer_message_id,
            answer=run.answer_message.text if run.answer_message is not None else "",
        )
    elif run.status == RunStatus.FAILED:
        event = RunFailedNotice(
            run_id=run_id,
            conversation_id=conversation_id,
            agent_id=agent_id,
            status=status,
            usage=usage,
            error=RunError(code=run.error_code, message=run.error_message),
        )
    elif run.status == RunStatus.REQUIRES_ACTION:
        event = RunRequiresActionNotice(
            run_id=run_id,
            conversation_id=conversation_id,
            agent_id=agent_id,
            status=status,
            usage=usage,
            pending=[PendingCall.from_dict(p) for p in run.pending_approvals],
        )
    else:
        return
    outbox_emit(event, workspace_id=run.workspace_id)


def conversation_title_auto(*, conversation_id: uuid.UUID, title: str) -> bool:
    """Set the automatic title unless the conversation has one (a user's wins)."""
    return bool(Conversation.objects.filter(id=conversation_id, title="").update(title=title[:200]))

"""Writes of conversations, messages and runs. Every function takes an Actor whose access
was checked by a selector; run execution is scheduled after commit (see runner.dispatch)."""

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.agents.services import message_inputs_prepare
from apps.conversations import runner
from apps.conversations.choices import (
    ACTIVE_STATUSES,
    ConversationSource,
    Rating,
    Role,
    RunKind,
    RunStatus,
)
from apps.conversations.eventlog import cursor_reservation_sync, publish_detached
from apps.conversations.exceptions import (
    NothingToRerun,
    RunActive,
    RunNotAwaitingApproval,
    RunNotCancellable,
    RunNotQueued,
)
from apps.conversations.models import (
    Conversation,
    Message,
    MessageFeedback,
    Run,
    ShareLink,
    StreamTicket,
)
from apps.core.events import EventType
from apps.core.exceptions import ValidationFailed
from apps.files.services import files_delete_for_conversation
from apps.users.actors import Actor
from apps.users.choices import Role as MemberRole

STREAM_TICKET_TTL = timedelta(seconds=60)


def _after_commit_dispatch(
    conversation: Conversation, *, background: bool = False, resume_run_id: uuid.UUID | None = None
) -> None:
    transaction.on_commit(
        lambda: runner.dispatch(
            conversation_id=conversation.id, background=background, resume_run_id=resume_run_id
        )
    )


def conversation_create(
    *,
    actor: Actor,
    agent: Any,
    title: str = "",
    source: str = ConversationSource.CHAT,
) -> Conversation:
    """A new conversation of the actor with `agent` (already access-checked)."""
    actor.require_role(MemberRole.VIEWER)
    return Conversation.objects.create(
        workspace=actor.workspace, agent=agent, user=actor.user, title=title[:200], source=source
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
        runner.request_cancel_local(run.id)
    with transaction.atomic():
        files_delete_for_conversation(conversation_id=conversation.id)
        conversation.delete()


def interrupt_stale_runs_of(*, conversation: Conversation) -> None:
    """Mark the conversation's runs whose process died `interrupted` (idempotent), so a
    new message can start and a stream of such a run ends."""
    if runner.stale_runs_sync(conversation.id):
        async_to_sync(runner.interrupt_stale_runs)(conversation.id)
        runner.dispatch(conversation_id=conversation.id)


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
    dispatch: bool = True,
    stream: bool = False,
) -> Run:
    """Send a user message: a queued Run holding it, started at once when no run is
    active (the message then exists when this returns), else queued behind the active
    run, or, with running_run_behavior="interrupt", the active run is cancelled first.
    With dispatch=False the caller starts the run (the streaming response does). With
    stream=True the caller streams the run and calls `runner.stream_subscribed(run)` once
    subscribed; when the run can start in this process at once, it is started in this
    transaction (status running, cursors reserved) and begins as soon as the stream
    subscribes."""
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
                start_here=stream and runner.can_start_here(background=background),
            )
        else:
            priority = 0
            if active is not None and running_run_behavior == "interrupt":
                priority = max((r.priority for r in queued), default=0) + 1
            run = Run.objects.create(
                conversation=conversation,
                workspace_id=conversation.workspace_id,
                agent_id=conversation.agent_id,
                created_by=actor.user,
                kind=RunKind.SEND,
                pending_input={"content": content, "attachments": attachments or []},
                priority=priority,
                background=background,
            )
    if active is not None and running_run_behavior == "interrupt":
        _cancel_active(active)
    if dispatch:
        runner.dispatch(conversation_id=conversation.id, background=background)
    return run


def _run_now(
    *,
    actor: Actor,
    conversation: Conversation,
    locked: Conversation,
    message: dict[str, Any],
    background: bool,
    start_here: bool,
) -> Run:
    """In `message_send`'s transaction (the conversation row `locked`, no run active or
    queued): the message and its run, stored at once so the 202 already names the
    message. With `start_here` the run is also running in this process with its event
    cursors reserved, and `runner.prestart` executes it after commit; otherwise it is
    queued for `runner.dispatch`. Five statements: the log's last cursor, two inserts,
    one update."""
    now = timezone.now()
    run_id = uuid.uuid4()
    seq = locked.message_seq + 1
    msg = runner.message_create_sync(
        conversation_id=conversation.id, run_id=run_id, message=message, seq=seq
    )
    run = Run.objects.create(
        id=run_id,
        conversation=conversation,
        workspace_id=conversation.workspace_id,
        agent_id=conversation.agent_id,
        created_by=actor.user,
        kind=RunKind.SEND,
        message=msg,
        background=background,
        **(runner.started_here_fields(now) if start_here else {}),
    )
    mark: dict[str, Any] = {"message_seq": seq, "last_message_at": now}
    if start_here:
        reservation = cursor_reservation_sync(conversation.id, locked.cursor_reserved)
        mark["cursor_reserved"] = reservation[1]
        run.conversation, run.agent = conversation, conversation.agent
        runner.hold_reservation(run.id, reservation)
        transaction.on_commit(lambda: runner.prestart(run))
    Conversation.objects.filter(id=conversation.id).update(**mark)
    return run


def _cancel_active(run: Run) -> None:
    if run.status == RunStatus.REQUIRES_ACTION:
        _cancel_paused(run)
    else:
        Run.objects.filter(id=run.id).update(cancel_requested=True)
        runner.request_cancel_local(run.id)


def _cancel_paused(run: Run) -> bool:
    updated = Run.objects.filter(id=run.id, status=RunStatus.REQUIRES_ACTION).update(
        status=RunStatus.CANCELLED,
        finished_at=timezone.now(),
        cancel_requested=True,
        pending_approvals=[],
    )
    if updated:
        async_to_sync(publish_detached)(
            conversation_id=run.conversation_id,
            run_id=run.id,
            events=[
                (EventType.RUN_CANCELLED, {"reason": "cancelled"}),
                (
                    EventType.DONE,
                    {
                        "status": "cancelled",
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
    return bool(updated)


def run_cancel(*, actor: Actor, run: Run) -> Run:
    """Cancel a run: a queued one never starts, a paused one ends now, a running one is
    told to stop (it ends `cancelled` at its next step). Raises RunNotCancellable."""
    actor.require_role(MemberRole.VIEWER)
    if run.status == RunStatus.QUEUED:
        updated = Run.objects.filter(id=run.id, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now(), cancel_requested=True
        )
        if not updated:
            run.refresh_from_db()
            return run_cancel(actor=actor, run=run)
    elif run.status == RunStatus.REQUIRES_ACTION:
        if not _cancel_paused(run):
            run.refresh_from_db()
            return run_cancel(actor=actor, run=run)
        runner.dispatch(conversation_id=run.conversation_id)
    elif run.status == RunStatus.RUNNING:
        Run.objects.filter(id=run.id).update(cancel_requested=True)
        runner.request_cancel_local(run.id)
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
    runner.dispatch(conversation_id=run.conversation_id, resume_run_id=run.id)
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
    updated = Run.objects.filter(id=run.id, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED, finished_at=timezone.now(), cancel_requested=True
    )
    if not updated:
        raise RunNotQueued()


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
            msg = runner.message_create_sync(
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
    runner.dispatch(conversation_id=conversation.id)
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

"""Reads of conversations, messages and runs; each checks the actor's access.

A conversation is private to the user who started it, inside its workspace: anybody
else (another member, another workspace) gets 404.
"""

import uuid
from typing import Any

from django.db.models import Q, QuerySet

from apps.conversations.choices import ConversationSource, RunStatus
from apps.conversations.exceptions import (
    ConversationNotFound,
    MessageNotFound,
    RunNotFound,
    ShareNotFound,
)
from apps.conversations.models import Conversation, Message, Run, RunEvent, ShareLink
from apps.users.actors import Actor


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def conversation_list(
    *, actor: Actor, search: str = "", agent_id: uuid.UUID | None = None
) -> QuerySet[Conversation]:
    """The actor's conversations in its workspace, searched by title or message text."""
    qs = Conversation.objects.filter(workspace_id=actor.workspace_id, user=actor.user)
    if agent_id is not None:
        qs = qs.filter(agent_id=agent_id)
    if search:
        matching = Message.objects.filter(
            conversation__workspace_id=actor.workspace_id,
            conversation__user=actor.user,
            text__icontains=search,
        ).values("conversation_id")
        qs = qs.filter(Q(title__icontains=search) | Q(id__in=matching))
    return qs


def access_conversation(*, actor: Actor, conversation_id: uuid.UUID | str) -> Conversation:
    """One of the actor's conversations. Raises ConversationNotFound."""
    pk = _uuid(conversation_id)
    conv = (
        Conversation.objects.filter(pk=pk, workspace_id=actor.workspace_id, user=actor.user)
        .select_related("agent")
        .first()
        if pk
        else None
    )
    if conv is None:
        raise ConversationNotFound()
    return conv


def access_run(*, actor: Actor, run_id: uuid.UUID | str) -> Run:
    """A run of one of the actor's conversations. Raises RunNotFound."""
    pk = _uuid(run_id)
    run = (
        Run.objects.filter(
            pk=pk, workspace_id=actor.workspace_id, conversation__user=actor.user
        ).first()
        if pk
        else None
    )
    if run is None:
        raise RunNotFound()
    return run


def access_message(*, actor: Actor, message_id: uuid.UUID | str) -> Message:
    """A message of one of the actor's conversations. Raises MessageNotFound."""
    pk = _uuid(message_id)
    msg = (
        Message.objects.filter(
            pk=pk,
            conversation__workspace_id=actor.workspace_id,
            conversation__user=actor.user,
        ).first()
        if pk
        else None
    )
    if msg is None:
        raise MessageNotFound()
    return msg


def message_page(
    *,
    conversation: Conversation,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
    include_superseded: bool = False,
) -> tuple[list[Message], bool]:
    """Keyset page of messages by `seq`: the newest `limit` (or those before / after a
    seq), returned oldest first, and whether more exist in that direction."""
    qs = Message.objects.filter(conversation=conversation)
    if not include_superseded:
        qs = qs.filter(superseded_at__isnull=True)
    if after is not None:
        rows = list(qs.filter(seq__gt=after).order_by("seq")[: limit + 1])
        return rows[:limit], len(rows) > limit
    if before is not None:
        qs = qs.filter(seq__lt=before)
    rows = list(qs.order_by("-seq")[: limit + 1])
    more = len(rows) > limit
    return list(reversed(rows[:limit])), more


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    """Every live message, oldest first (exports)."""
    return Message.objects.filter(conversation=conversation, superseded_at__isnull=True).order_by(
        "seq"
    )


def run_list(*, conversation: Conversation) -> QuerySet[Run]:
    return Run.objects.filter(conversation=conversation)


def conversation_exists(*, conversation_id: uuid.UUID) -> bool:
    """Whether any conversation has this id (whoever's: the caller checks access next)."""
    return Conversation.objects.filter(pk=conversation_id).exists()


def run_exists(*, run_id: uuid.UUID) -> bool:
    """Whether any run has this id (a caller-named run id must be free)."""
    return Run.objects.filter(pk=run_id).exists()


def run_paused_of(*, conversation: Conversation) -> Run | None:
    """The conversation's run paused for tool-call answers (requires_action), if any."""
    return Run.objects.filter(conversation=conversation, status=RunStatus.REQUIRES_ACTION).first()


def run_pause_cursor(*, run: Run) -> int | None:
    """The cursor of the run's latest `run.requires_action` event in the durable log
    (None while it is not written yet)."""
    return (
        RunEvent.objects.filter(run=run, type="run.requires_action")
        .order_by("-cursor")
        .values_list("cursor", flat=True)
        .first()
    )


def queue_list(*, conversation: Conversation) -> QuerySet[Run]:
    """The queued messages of a conversation, in the order they will run."""
    return Run.objects.filter(conversation=conversation, status=RunStatus.QUEUED).order_by(
        "-priority", "created_at"
    )


def access_share(*, conversation: Conversation, share_id: uuid.UUID | str) -> ShareLink:
    pk = _uuid(share_id)
    share = ShareLink.objects.filter(pk=pk, conversation=conversation).first() if pk else None
    if share is None:
        raise ShareNotFound()
    return share


def shared_conversation(*, token: str) -> Conversation:
    """The conversation behind an active share link (public). Raises ShareNotFound."""
    share = (
        ShareLink.objects.filter(token=token, revoked_at__isnull=True)
        .select_related("conversation__agent")
        .first()
    )
    if share is None:
        raise ShareNotFound()
    return share.conversation


# --- what the runner reads (no actor: the run was authorized when it was created) ---------


def message_as_openai(m: Message) -> dict[str, Any]:
    """A stored message in the OpenAI message shape (plus `metadata` when it has some)."""
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


def conversation_history(*, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
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


def run_user_text(*, run: Run) -> str:
    """The text of the user message a run answers ("" when it has none)."""
    if run.message_id is None:
        return ""
    return Message.objects.only("text").get(id=run.message_id).text


def run_is_first_exchange(*, run: Run) -> bool:
    """Whether the run answers the first exchange of a conversation without a title."""
    if Conversation.objects.filter(id=run.conversation_id).exclude(title="").exists():
        return False
    return (
        not Run.objects.filter(conversation_id=run.conversation_id, status=RunStatus.COMPLETED)
        .exclude(id=run.id)
        .exists()
    )


def run_result(*, run_id: uuid.UUID) -> tuple[Run, str]:
    """A run re-read with the text of its answer ("" without one)."""
    run = Run.objects.get(id=run_id)
    answer = (
        Message.objects.filter(id=run.answer_message_id).only("text").first()
        if run.answer_message_id
        else None
    )
    return run, answer.text if answer else ""


def run_wants_extras(*, run: Run) -> bool:
    """Whether the run may make model calls nobody asked for (title, suggestions): only
    in chat conversations, never for the OpenAI-compatible or MCP endpoints."""
    return run.conversation.source == ConversationSource.CHAT

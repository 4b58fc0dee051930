"""Chat pages: the conversation list, a new chat, one conversation (its stored messages
rendered on the server; the live answer streamed by static/console/chat.js from the
conversation's SSE stream, with a stream ticket and the last cursor it saw)."""

import uuid
from typing import Any

from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.agents.selectors import access_agent, agents_usable_by
from apps.console.access import console_view, error_message
from apps.console.forms import (
    ConversationFilterForm,
    DecisionForm,
    FeedbackForm,
    NewChatForm,
    RenameForm,
    SendForm,
)
from apps.console.markdown import render_markdown
from apps.conversations.choices import RunStatus
from apps.conversations.models import Conversation, Message, Run, RunEvent
from apps.conversations.selectors import (
    access_conversation,
    access_message,
    access_run,
    conversation_list,
    conversation_messages,
    queue_list,
    shared_conversation,
)
from apps.conversations.services import (
    conversation_create,
    conversation_delete,
    conversation_edit_last_user_message,
    conversation_regenerate,
    conversation_rename,
    feedback_set,
    message_send,
    run_cancel,
    run_decide,
    share_create,
    stream_ticket_create,
)
from apps.core.events import EventType
from apps.core.exceptions import ApplicationError

ACTIVE = (RunStatus.RUNNING, RunStatus.REQUIRES_ACTION)
PAGE_SIZE = 50


def _bad(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@console_view
@require_GET
def conversation_index(request: HttpRequest) -> HttpResponse:
    """The actor's conversations (search, agent filter) and the new-chat picker."""
    actor = request.actor  # type: ignore[attr-defined]
    filters = ConversationFilterForm(request.GET)
    search, agent_id = "", None
    if filters.is_valid():
        search, agent_id = filters.cleaned_data["q"], filters.cleaned_data["agent"]
    conversations = list(
        conversation_list(actor=actor, search=search, agent_id=agent_id)
        .select_related("agent")
        .order_by("-last_message_at", "-created_at")[:PAGE_SIZE]
    )
    agents = list(agents_usable_by(actor=actor).order_by("name"))
    context = {
        "conversations": conversations,
        "agents": agents,
        "filters": filters,
        "search": search,
        "agent_id": agent_id,
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "console/chat/_rows.html", context)
    return render(request, "console/chat/index.html", context)


@console_view
@require_GET
def chat_new(request: HttpRequest) -> HttpResponse:
    """Pick an agent; its opening message and starter questions are shown."""
    actor = request.actor  # type: ignore[attr-defined]
    agents = list(agents_usable_by(actor=actor).order_by("name"))
    chosen = None
    if raw := request.GET.get("agent"):
        try:
            chosen = access_agent(actor=actor, agent_id=raw)
        except ApplicationError:
            chosen = None
    if chosen is None and agents:
        chosen = agents[0]
    return render(request, "console/chat/new.html", {"agents": agents, "chosen": chosen})


@console_view
@require_POST
def chat_start(request: HttpRequest) -> HttpResponse:
    """Create a conversation with the chosen agent and send the first message."""
    actor = request.actor  # type: ignore[attr-defined]
    form = NewChatForm(request.POST)
    if not form.is_valid():
        agents = list(agents_usable_by(actor=actor).order_by("name"))
        return render(
            request,
            "console/chat/new.html",
            {"agents": agents, "chosen": agents[0] if agents else None, "form": form},
            status=400,
        )
    agent = access_agent(actor=actor, agent_id=form.cleaned_data["agent"])
    conv = conversation_create(actor=actor, agent=agent)
    if content := form.cleaned_data["content"].strip():
        message_send(actor=actor, conversation=conv, content=content)
    return redirect("console:conversation", conversation_id=conv.id)


def _stream_start_cursor(conv: Conversation, active: Run | None) -> int:
    """Where the page's stream starts: before the active run's first event (so its
    partial answer is rebuilt from the log, once), else after the last event."""
    events = RunEvent.objects.filter(conversation=conv)
    if active is not None:
        first = events.filter(run=active).order_by("cursor").values_list("cursor", flat=True)
        if start := first.first():
            return int(start) - 1
    last = events.aggregate(last=Max("cursor_end"))["last"]
    return int(last) if last is not None else -1


def _tool_call(call: dict[str, Any]) -> dict[str, str]:
    function = call.get("function") or {}
    return {
        "id": str(call.get("id", "")),
        "name": str(function.get("name") or call.get("name") or "tool"),
        "arguments": str(function.get("arguments") or call.get("arguments") or ""),
    }


def _tool_images(message: Message) -> list[dict[str, str]]:
    """The images a tool produced (stored by the engine in the tool message's metadata),
    each with the files API's download URL (the session authenticates it)."""
    out = []
    for image in message.metadata.get("images") or ():
        try:
            file_id = uuid.UUID(str(image["file_id"]))
        except (KeyError, TypeError, ValueError):
            continue
        url = reverse("file-content", kwargs={"file_id": file_id})
        out.append({"url": url, "path": str(image.get("path", ""))})
    return out


def message_view(message: Message) -> dict[str, Any]:
    """What a template needs of a stored message."""
    citations = message.citations or message.metadata.get("citations") or []
    return {
        "id": message.id,
        "role": message.role,
        "text": message.text,
        "html": render_markdown(message.text) if message.role == "assistant" else "",
        "tool_calls": [_tool_call(call) for call in message.tool_calls or []],
        "name": message.name,
        "citations": citations,
        "reasoning": message.metadata.get("reasoning", ""),
        "images": _tool_images(message) if message.role == "tool" else [],
    }


def _messages(conv: Conversation, active: Run | None) -> list[dict[str, Any]]:
    rows = conversation_messages(conversation=conv)
    if active is not None:
        # The active run's own messages come back through the stream replay.
        rows = rows.exclude(run=active, role__in=["assistant", "tool"])
    return [message_view(m) for m in rows]


@console_view
@require_GET
def conversation_detail(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    conv = access_conversation(actor=actor, conversation_id=conversation_id)
    active = conv.runs.filter(status__in=ACTIVE).first()
    pending = active.pending_approvals if active and active.status == "requires_action" else []
    context = {
        "conversation": conv,
        "chat_messages": _messages(conv, active),
        "active_run": active,
        "pending": pending,
        "queued": list(queue_list(conversation=conv).select_related("message")),
        "start_cursor": _stream_start_cursor(conv, active),
        "event_types": [str(t) for t in EventType],
    }
    embed = request.GET.get("embed") == "1"
    if embed:  # the agent page's test chat frames it: no sidebar
        context["base_template"] = "console/embed.html"
    response = render(request, "console/chat/conversation.html", context)
    if embed:
        response["X-Frame-Options"] = "SAMEORIGIN"
    return response


@console_view
@require_POST
def conversation_send(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """Send a message (fetch from chat.js): 202 with the run; the stream shows the rest."""
    actor = request.actor  # type: ignore[attr-defined]
    conv = access_conversation(actor=actor, conversation_id=conversation_id)
    form = SendForm(request.POST)
    if not form.is_valid():
        return _bad("Write a message first (at most 100,000 characters).")
    behavior = "interrupt" if form.cleaned_data["interrupt"] else "queue"
    try:
        run = message_send(
            actor=actor,
            conversation=conv,
            content=form.cleaned_data["content"],
            running_run_behavior=behavior,
        )
    except ApplicationError as exc:
        return _bad(error_message(exc), exc.status)
    message_id = str(run.message_id) if run.message_id else None
    return JsonResponse(
        {"run_id": str(run.id), "status": run.status, "message_id": message_id}, status=202
    )


@console_view
@require_POST
def conversation_ticket(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """A single-use stream ticket (EventSource sends no headers; the ticket carries the
    workspace the page is in)."""
    actor = request.actor  # type: ignore[attr-defined]
    conv = access_conversation(actor=actor, conversation_id=conversation_id)
    _, token = stream_ticket_create(actor=actor, conversation=conv)
    return JsonResponse({"url": f"/api/v1/conversations/{conv.id}/stream?ticket={token}"})


@console_view
@require_GET
def message_fragment(request: HttpRequest, message_id: uuid.UUID) -> HttpResponse:
    """One stored message, rendered (Markdown sanitized on the server): replaces the
    streamed text once the answer is done."""
    message = access_message(actor=request.actor, message_id=message_id)  # type: ignore[attr-defined]
    context = {"m": message_view(message), "agent_name": message.conversation.agent.name}
    return render(request, "console/chat/_message.html", context)


@console_view
@require_POST
def run_decision(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Approve or reject every pending tool call of a paused run with one choice."""
    actor = request.actor  # type: ignore[attr-defined]
    run = access_run(actor=actor, run_id=run_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _bad("Choose approve or reject.")
    approved = bool(form.cleaned_data["approved"])
    decisions = {str(p["tool_call_id"]): approved for p in run.pending_approvals}
    try:
        run_decide(actor=actor, run=run, decisions=decisions)
    except ApplicationError as exc:
        return _bad(error_message(exc), exc.status)
    return JsonResponse({"status": "ok", "approved": approved}, status=202)


@console_view
@require_POST
def run_stop(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    run = run_cancel(actor=actor, run=access_run(actor=actor, run_id=run_id))
    return JsonResponse({"status": run.status}, status=202)


@console_view
@require_POST
def conversation_regenerate_view(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    conv = access_conversation(actor=actor, conversation_id=conversation_id)
    try:
        run = conversation_regenerate(actor=actor, conversation=conv)
    except ApplicationError as exc:
        return _bad(error_message(exc), exc.status)
    return JsonResponse({"run_id": str(run.id)}, status=202)


@console_view
@require_POST
def conversation_edit_last(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """Replace the last message and answer it again (the old exchange is kept, superseded;
    the page reloads to show the conversation as it now reads)."""
    actor = request.actor  # type: ignore[attr-defined]
    conv = access_conversation(actor=actor, conversation_id=conversation_id)
    form = SendForm(request.POST)
    if not form.is_valid():
        return _bad("Write the new message first (at most 100,000 characters).")
    try:
        run = conversation_edit_last_user_message(
            actor=actor, conversation=conv, content=form.cleaned_data["content"]
        )
    except ApplicationError as exc:
        return _bad(error_message(exc), exc.status)
    return JsonResponse({"run_id": str(run.id)}, status=202)


@console_view
@require_POST
def message_feedback(request: HttpRequest, message_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    message = access_message(actor=actor, message_id=message_id)
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        return _bad("rating: up or down.")
    try:
        feedback_set(actor=actor, message=message, rating=form.cleaned_data["rating"])
    except ApplicationError as exc:
        return _bad(error_message(exc), exc.status)
    return JsonResponse({"rating": form.cleaned_data["rating"]})


@console_view
@require_POST
def conversation_rename_view(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    conv = access_conversation(actor=actor, conversation_id=conversation_id)
    form = RenameForm(request.POST)
    if form.is_valid():
        conversation_rename(conversation=conv, title=form.cleaned_data["title"])
    return redirect("console:conversation", conversation_id=conv.id)


@console_view
@require_POST
def conversation_delete_view(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    conversation_delete(
        conversation=access_conversation(actor=actor, conversation_id=conversation_id)
    )
    return redirect("console:chat")


@console_view
@require_POST
def conversation_share(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """A new public read-only link; the page shows it."""
    actor = request.actor  # type: ignore[attr-defined]
    conv = access_conversation(actor=actor, conversation_id=conversation_id)
    share = share_create(actor=actor, conversation=conv)
    url = request.build_absolute_uri(reverse("console:shared", kwargs={"token": share.token}))
    return render(request, "console/chat/_share.html", {"url": url})


@console_view
@require_GET
def conversation_export(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """The conversation as a Markdown file."""
    actor = request.actor  # type: ignore[attr-defined]
    conv = access_conversation(actor=actor, conversation_id=conversation_id)
    lines = [f"# {conv.title or 'Conversation'}", ""]
    for m in conversation_messages(conversation=conv):
        if m.role in ("user", "assistant") and m.text:
            lines += [f"**{'You' if m.role == 'user' else conv.agent.name}:**", "", m.text, ""]
    response = HttpResponse("\n".join(lines), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="conversation-{conv.id}.md"'
    return response


@require_GET
def shared_page(request: HttpRequest, token: str) -> HttpResponse:
    """The public, read-only page of a shared conversation (no sign-in)."""
    try:
        conv = shared_conversation(token=token)
    except ApplicationError:
        return render(request, "console/shared_missing.html", status=404)
    messages = [
        message_view(m)
        for m in conversation_messages(conversation=conv)
        if m.role == "user" or (m.role == "assistant" and m.text)
    ]
    return render(request, "console/shared.html", {"conversation": conv, "chat_messages": messages})

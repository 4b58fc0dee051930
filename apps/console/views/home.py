"""The console home (a getting-started checklist and recent chats) and the workspace
switcher."""

import uuid

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from apps.agents.selectors import agents_usable_by
from apps.console.access import WORKSPACE_SESSION_KEY, console_view
from apps.conversations.selectors import conversation_list
from apps.knowledge.selectors import knowledge_base_list
from apps.providers.choices import ModelKind
from apps.providers.selectors import model_list
from apps.users.selectors import access_workspace


@console_view
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    recent = list(
        conversation_list(actor=actor)
        .select_related("agent")
        .order_by("-last_message_at", "-created_at")[:8]
    )
    steps = {
        "provider": model_list(actor=actor, kind=ModelKind.CHAT).exists(),
        "agent": agents_usable_by(actor=actor).exists(),
        "knowledge": knowledge_base_list(actor=actor).exists(),
        "chat": bool(recent),
    }
    return render(request, "console/home.html", {"recent": recent, "steps": steps})


@console_view
@require_POST
def workspace_switch(request: HttpRequest) -> HttpResponse:
    """Act in another of the user's workspaces (404 for one they do not belong to)."""
    actor = request.actor  # type: ignore[attr-defined]
    try:
        workspace_id = uuid.UUID(request.POST.get("workspace", ""))
    except ValueError:
        workspace_id = uuid.UUID(int=0)
    membership = access_workspace(actor=actor, workspace_id=workspace_id)
    request.session[WORKSPACE_SESSION_KEY] = str(membership.workspace_id)
    target = request.POST.get("next", "/")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)

"""Agent pages: list, create, edit (model, instructions, tools, knowledge bases,
approvals, starter questions), versions with restore."""

import uuid
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.agents.choices import AgentBuiltinTool
from apps.agents.models import Agent
from apps.agents.selectors import access_agent, agent_can_edit, agent_list, agent_versions
from apps.agents.services import agent_create, agent_update, agent_version_restore
from apps.console.access import console_view, error_message
from apps.console.forms import AgentForm
from apps.core.exceptions import ApplicationError
from apps.knowledge.selectors import knowledge_base_list
from apps.providers.choices import ModelKind
from apps.providers.selectors import model_list
from apps.skills.selectors import tool_list
from apps.users.actors import Actor


def _form(actor: Actor, data: Any = None, initial: dict[str, Any] | None = None) -> AgentForm:
    models = [
        (str(m.id), f"{m.provider.name} / {m.display_name or m.name}")
        for m in model_list(actor=actor, kind=ModelKind.CHAT).filter(is_enabled=True)
    ]
    kbs = [(str(kb.id), kb.name) for kb in knowledge_base_list(actor=actor).order_by("name")]
    tools = [(str(t.id), t.name) for t in tool_list(actor=actor, enabled=True).order_by("name")]
    return AgentForm(
        data,
        initial=initial,
        models=models,
        knowledge_bases=kbs,
        tools=tools,
        builtin_tools=list(AgentBuiltinTool.choices),
    )


def _initial(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "description": agent.description,
        "model": str(agent.model_id or ""),
        "system_prompt": agent.system_prompt,
        "opening_message": agent.opening_message,
        "starter_questions": "\n".join(agent.starter_questions),
        "knowledge_bases": [str(pk) for pk in agent.knowledge_bases.values_list("pk", flat=True)],
        "tools": [str(pk) for pk in agent.tools.values_list("pk", flat=True)],
        "builtin_tools": list(agent.builtin_tools),
        "tools_requiring_approval": list(agent.tools_requiring_approval),
        "suggestions_enabled": agent.suggestions_enabled,
    }


@console_view
def agent_index(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    search = request.GET.get("q", "")[:200]
    agents = list(
        agent_list(actor=actor, search=search).select_related("model__provider").order_by("name")
    )
    return render(request, "console/agents/index.html", {"agents": agents, "search": search})


@console_view
@require_http_methods(["GET", "POST"])
def agent_new(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    form = _form(actor, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            agent = agent_create(actor=actor, values=form.values())
        except ApplicationError as exc:
            form.add_error(None, error_message(exc))
        else:
            messages.success(request, f"Agent “{agent.name}” created.")
            return redirect("console:agent", agent_id=agent.id)
    status = 400 if request.method == "POST" else 200
    return render(request, "console/agents/form.html", {"form": form}, status=status)


@console_view
@require_http_methods(["GET", "POST"])
def agent_detail(request: HttpRequest, agent_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    agent = access_agent(actor=actor, agent_id=agent_id)
    form = _form(actor, request.POST or None, initial=_initial(agent))
    if request.method == "POST" and form.is_valid():
        try:
            agent_update(actor=actor, agent=agent, values=form.values())
        except ApplicationError as exc:
            form.add_error(None, error_message(exc))
        else:
            messages.success(request, "Saved.")
            return redirect("console:agent", agent_id=agent.id)
    context = {
        "form": form,
        "agent": agent,
        "can_edit": agent_can_edit(actor=actor, agent=agent),
        "versions": list(agent_versions(agent=agent).select_related("created_by")[:20]),
    }
    return render(request, "console/agents/form.html", context, status=400 if form.errors else 200)


@console_view
@require_POST
def agent_restore(request: HttpRequest, agent_id: uuid.UUID, number: int) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    agent = access_agent(actor=actor, agent_id=agent_id)
    try:
        agent_version_restore(actor=actor, agent=agent, number=number)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, f"Version {number} restored.")
    return redirect("console:agent", agent_id=agent.id)

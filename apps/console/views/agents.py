"""Agent pages: list, create, edit (model, instructions, tools, knowledge bases,
approvals, starter questions), versions with restore and a diff between two, a draft
generated from a description, a prompt optimized with accept/discard, sharing, import
and export."""

import json
import uuid
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.agents.choices import (
    AgentBuiltinTool,
    AgentJobKind,
    AgentJobStatus,
    GrantPermission,
    Visibility,
)
from apps.agents.exceptions import AgentJobNotFound
from apps.agents.models import Agent, AgentJob
from apps.agents.selectors import (
    access_agent,
    access_agent_job,
    agent_can_edit,
    agent_can_manage,
    agent_export,
    agent_grants,
    agent_list,
    agent_version_diff,
    agent_versions,
)
from apps.agents.services import (
    GrantInput,
    agent_create,
    agent_import,
    agent_job_submit,
    agent_set_sharing,
    agent_update,
    agent_version_restore,
)
from apps.console.access import console_view, error_message
from apps.console.forms import (
    AgentDraftForm,
    AgentForm,
    AgentImportForm,
    PromptOptimizeForm,
    SharingForm,
    VersionDiffForm,
)
from apps.conversations.models import Conversation
from apps.conversations.selectors import access_conversation
from apps.conversations.services import conversation_create
from apps.core.exceptions import ApplicationError
from apps.knowledge.selectors import knowledge_base_list
from apps.providers.choices import ModelKind
from apps.providers.selectors import model_list
from apps.skills.selectors import tool_list
from apps.users.actors import Actor
from apps.users.selectors import access_workspace, member_list


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


def _own_job(actor: Actor, job_id: str | None, kind: str) -> AgentJob | None:
    """The actor's job of `kind` named in the query string (None: none named); another
    user's or workspace's job, or a malformed id, is a 404 like any object."""
    if not job_id:
        return None
    try:
        parsed = uuid.UUID(job_id)
    except ValueError as exc:
        raise AgentJobNotFound() from exc
    job = access_agent_job(actor=actor, job_id=parsed)
    if job.kind != kind:
        raise AgentJobNotFound()
    return job


def _draft_initial(job: AgentJob) -> dict[str, Any]:
    draft = job.result or {}
    return {
        "name": draft.get("name", ""),
        "description": draft.get("description", ""),
        "system_prompt": draft.get("system_prompt", ""),
        "opening_message": draft.get("opening_message", ""),
        "starter_questions": "\n".join(draft.get("starter_questions") or []),
        "builtin_tools": list(draft.get("builtin_tools") or []),
        "tools": list(draft.get("tool_ids") or []),
    }


def _job_pending(job: AgentJob | None) -> bool:
    return job is not None and job.status in (AgentJobStatus.QUEUED, AgentJobStatus.RUNNING)


@console_view
@require_http_methods(["GET", "POST"])
def agent_new(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    job = _own_job(actor, request.GET.get("draft"), AgentJobKind.GENERATE_AGENT)
    initial = _draft_initial(job) if job and job.status == AgentJobStatus.SUCCEEDED else None
    form = _form(actor, request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            agent = agent_create(actor=actor, values=form.values())
        except ApplicationError as exc:
            form.add_error(None, error_message(exc))
        else:
            messages.success(request, f"Agent “{agent.name}” created.")
            return redirect("console:agent", agent_id=agent.id)
    status = 400 if request.method == "POST" else 200
    context = {
        "form": form,
        "draft_form": AgentDraftForm(auto_id="draft_%s"),
        "draft_job": job,
        "draft_pending": _job_pending(job),
        "import_form": _import_form(),
    }
    return render(request, "console/agents/form.html", context, status=status)


@console_view
@require_POST
def agent_generate(request: HttpRequest) -> HttpResponse:
    """Queue a draft of a new agent from a description (a model call in a worker); the
    new-agent page shows it once written."""
    actor = request.actor  # type: ignore[attr-defined]
    form = AgentDraftForm(request.POST, auto_id="draft_%s")
    if form.is_valid():
        tool_ids = [str(t.id) for t in tool_list(actor=actor, enabled=True).order_by("name")[:50]]
        job_input: dict[str, Any] = {"description": form.cleaned_data["description"]}
        if tool_ids:
            job_input["tool_ids"] = tool_ids
        job = agent_job_submit(actor=actor, kind=AgentJobKind.GENERATE_AGENT, input=job_input)
        return redirect(f"{_url('console:agent_new')}?draft={job.id}")
    context = {
        "form": _form(actor),
        "draft_form": form,
        "import_form": _import_form(),
    }
    return render(request, "console/agents/form.html", context, status=400)


@console_view
@require_GET
def agent_job_status(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """A helper job's status (htmx polls it); once it has ended the page reloads to show
    the result."""
    actor = request.actor  # type: ignore[attr-defined]
    job = access_agent_job(actor=actor, job_id=job_id)
    response = render(request, "console/agents/_job.html", {"job": job})
    if not _job_pending(job):
        response["HX-Refresh"] = "true"
    return response


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
    proposal = _own_job(actor, request.GET.get("proposal"), AgentJobKind.OPTIMIZE_PROMPT)
    versions = list(agent_versions(agent=agent).select_related("created_by")[:20])
    can_manage = agent_can_manage(actor=actor, agent=agent)
    context = {
        "form": form,
        "agent": agent,
        "can_edit": agent_can_edit(actor=actor, agent=agent),
        "can_manage": can_manage,
        "versions": versions,
        "proposal": proposal,
        "proposal_pending": _job_pending(proposal),
        "sharing_form": _sharing_form(actor, agent) if can_manage else None,
        "test_chat": _test_chat(actor, agent, request.GET.get("test")),
        "diff_form": VersionDiffForm(
            initial={"before": max(agent.version - 1, 1), "after": agent.version}
        ),
    }
    return render(request, "console/agents/form.html", context, status=400 if form.errors else 200)


@console_view
@require_POST
def agent_optimize(request: HttpRequest, agent_id: uuid.UUID) -> HttpResponse:
    """Queue an improvement of the prompt being edited; the page then shows the proposal
    beside the current prompt."""
    actor = request.actor  # type: ignore[attr-defined]
    agent = access_agent(actor=actor, agent_id=agent_id)
    if not agent_can_edit(actor=actor, agent=agent):
        messages.error(request, "You can use this agent but not edit it.")
        return redirect("console:agent", agent_id=agent.id)
    form = PromptOptimizeForm(request.POST)
    if not form.is_valid() or not form.cleaned_data["system_prompt"].strip():
        messages.error(request, "system_prompt: write instructions first, then optimize them.")
        return redirect("console:agent", agent_id=agent.id)
    job_input = {"system_prompt": form.cleaned_data["system_prompt"]}
    if form.cleaned_data["goal"]:
        job_input["goal"] = form.cleaned_data["goal"]
    job = agent_job_submit(actor=actor, kind=AgentJobKind.OPTIMIZE_PROMPT, input=job_input)
    return redirect(f"{_url('console:agent', agent_id=agent.id)}?proposal={job.id}")


@console_view
@require_POST
def agent_proposal_accept(
    request: HttpRequest, agent_id: uuid.UUID, job_id: uuid.UUID
) -> HttpResponse:
    """Make an optimized prompt the agent's instructions (a new version)."""
    actor = request.actor  # type: ignore[attr-defined]
    agent = access_agent(actor=actor, agent_id=agent_id)
    job = _own_job(actor, str(job_id), AgentJobKind.OPTIMIZE_PROMPT)
    assert job is not None
    if job.status != AgentJobStatus.SUCCEEDED or not job.result:
        messages.error(request, "This proposal has no prompt to accept.")
        return redirect("console:agent", agent_id=agent.id)
    try:
        agent_update(
            actor=actor, agent=agent, values={"system_prompt": job.result["system_prompt"]}
        )
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, "Optimized instructions accepted.")
    return redirect("console:agent", agent_id=agent.id)


def _shown(value: Any) -> str:
    """A configuration value as a person reads it."""
    if value is None or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@console_view
@require_GET
def agent_diff(request: HttpRequest, agent_id: uuid.UUID) -> HttpResponse:
    """What changed between two versions, field by field; text as a line diff."""
    actor = request.actor  # type: ignore[attr-defined]
    agent = access_agent(actor=actor, agent_id=agent_id)
    form = VersionDiffForm(request.GET)
    changes, error = [], ""
    if form.is_valid():
        try:
            changes = agent_version_diff(
                agent=agent, before=form.cleaned_data["before"], after=form.cleaned_data["after"]
            )
        except ApplicationError as exc:  # a version that does not exist
            error = error_message(exc)
    shown = [
        {
            "field": c.field,
            "before": _shown(c.before),
            "after": _shown(c.after),
            "lines": c.lines,
        }
        for c in changes
    ]
    context = {"agent": agent, "form": form, "changes": shown, "error": error}
    status = 400 if form.errors or error else 200
    return render(request, "console/agents/diff.html", context, status=status)


@console_view
@require_GET
def agent_export_view(request: HttpRequest, agent_id: uuid.UUID) -> HttpResponse:
    """The agent's export document, downloaded as JSON (what import takes)."""
    actor = request.actor  # type: ignore[attr-defined]
    agent = access_agent(actor=actor, agent_id=agent_id)
    body = json.dumps(agent_export(agent=agent), indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    filename = f"{slugify(agent.slug) or 'agent'}.agent.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _import_form(data: Any = None, files: Any = None) -> AgentImportForm:
    return AgentImportForm(data, files)


@console_view
@require_POST
def agent_import_view(request: HttpRequest) -> HttpResponse:
    """Create a private agent from an uploaded export file; what is wrong is shown."""
    actor = request.actor  # type: ignore[attr-defined]
    form = _import_form(request.POST, request.FILES)
    if form.is_valid():
        try:
            agent = agent_import(actor=actor, document=form.cleaned_data["file"])
        except ApplicationError as exc:
            form.add_error("file", error_message(exc))
        else:
            messages.success(request, f"Agent “{agent.name}” imported.")
            return redirect("console:agent", agent_id=agent.id)
    context = {
        "form": _form(actor),
        "draft_form": AgentDraftForm(auto_id="draft_%s"),
        "import_form": form,
    }
    return render(request, "console/agents/form.html", context, status=400)


def _sharing_form(actor: Actor, agent: Agent, data: Any = None) -> SharingForm:
    membership = access_workspace(actor=actor, workspace_id=actor.workspace_id)
    members = [
        (str(m.user_id), m.user.email)
        for m in member_list(membership=membership).order_by("user__email")
        if m.user_id != agent.created_by_id
    ]
    initial: dict[str, Any] = {"visibility": agent.visibility}
    initial.update({f"grant_{g.user_id}": g.permission for g in agent_grants(agent=agent)})
    return SharingForm(
        data,
        initial=initial,
        visibilities=list(Visibility.choices),
        members=members,
        permissions=list(GrantPermission.choices),
    )


@console_view
@require_POST
def agent_sharing(request: HttpRequest, agent_id: uuid.UUID) -> HttpResponse:
    """Set who sees the agent and the members it is granted to (needs manage)."""
    actor = request.actor  # type: ignore[attr-defined]
    agent = access_agent(actor=actor, agent_id=agent_id)
    form = _sharing_form(actor, agent, request.POST)
    if not form.is_valid():
        messages.error(request, "Sharing: " + " ".join(str(e) for e in form.errors.values()))
        return redirect("console:agent", agent_id=agent.id)
    agent_set_sharing(
        actor=actor,
        agent=agent,
        visibility=form.cleaned_data["visibility"],
        grants=[GrantInput(user_id=u, permission=p) for u, p in form.grants()],
    )  # PermissionDenied (not its creator nor an admin): the 403 page
    messages.success(request, "Sharing saved.")
    return redirect("console:agent", agent_id=agent.id)


def _test_chat(actor: Actor, agent: Agent, conversation_id: str | None) -> Conversation | None:
    """The test conversation named in the query string, if it is the actor's and with this
    agent (anything else is a 404 like any object)."""
    if not conversation_id:
        return None
    try:
        parsed = uuid.UUID(conversation_id)
    except ValueError as exc:
        raise Http404("No such conversation.") from exc
    conversation = access_conversation(actor=actor, conversation_id=parsed)
    if conversation.agent_id != agent.id:
        raise Http404("No such conversation.")
    return conversation


@console_view
@require_POST
def agent_test_chat(request: HttpRequest, agent_id: uuid.UUID) -> HttpResponse:
    """Start a conversation with the saved agent, shown beside its form."""
    actor = request.actor  # type: ignore[attr-defined]
    agent = access_agent(actor=actor, agent_id=agent_id)
    conversation = conversation_create(actor=actor, agent=agent, title=f"Test of {agent.name}")
    return redirect(f"{_url('console:agent', agent_id=agent.id)}?test={conversation.id}")


def _url(name: str, **kwargs: Any) -> str:
    return reverse(name, kwargs=kwargs)


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

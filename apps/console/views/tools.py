"""Tools, skills and MCP servers pages: the workspace's tools with their schema and a
test run, skills (upload a bundle, view, delete) and MCP servers (add over HTTP, tools,
refresh, OAuth connect, delete). Through the skills app's services and selectors."""

import json
import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.console.access import console_view, error_message, posted, writes_need
from apps.console.forms_tasks import add_service_error
from apps.console.forms_tools import McpServerForm, SkillUploadForm, ToolRunForm
from apps.core.exceptions import ApplicationError
from apps.skills.selectors import (
    access_mcp_server,
    access_skill,
    access_tool,
    latest_skill_version,
    mcp_server_list,
    skill_list,
    skill_version_files,
    tool_list,
)
from apps.skills.services import (
    builtin_tools_ensure,
    mcp_oauth_complete,
    mcp_oauth_start,
    mcp_server_create,
    mcp_server_delete,
    mcp_server_refresh,
    skill_delete,
    skill_upload,
    tool_exec,
)
from apps.users.choices import Role


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


# --- Tools ----------------------------------------------------------------------------------


@console_view
@require_GET
def tool_index(request: HttpRequest) -> HttpResponse:
    """The built-in tools and the workspace's MCP and OpenAPI tools."""
    actor = request.actor  # type: ignore[attr-defined]
    builtin_tools_ensure(workspace=actor.workspace)  # as the API's list does
    tools = list(tool_list(actor=actor).select_related("mcp_server").order_by("source", "name"))
    return render(request, "console/tools/index.html", {"tools": tools})


@console_view
@writes_need(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def tool_detail(request: HttpRequest, tool_id: uuid.UUID) -> HttpResponse:
    """A tool, its schema, and a run with arguments (the result or the error shown)."""
    actor = request.actor  # type: ignore[attr-defined]
    tool = access_tool(actor=actor, tool_id=tool_id)
    form = ToolRunForm(posted(request))
    result = None
    if request.method == "POST" and form.is_valid():
        try:
            result = tool_exec(
                actor=actor, tool=tool, arguments=form.cleaned_data["arguments"], ip=_ip(request)
            )
        except ApplicationError as exc:
            for detail in exc.details:
                field = str(detail.get("field") or "")
                name = field.removeprefix("arguments.") or "arguments"
                form.add_error("arguments", f"{name}: {detail.get('message') or exc.message}")
            if not exc.details:
                form.add_error("arguments", exc.message)
    return render(
        request,
        "console/tools/detail.html",
        {
            "tool": tool,
            "schema": json.dumps(tool.parameters, indent=2, sort_keys=True),
            "form": form,
            "result": result,
        },
        status=400 if form.errors else 200,
    )


# --- Skills ---------------------------------------------------------------------------------


@console_view
@writes_need(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def skill_index(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    form = SkillUploadForm(posted(request), request.FILES if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            version = skill_upload(actor=actor, data=form.cleaned_data["bundle"])
        except ApplicationError as exc:
            add_service_error(form, exc, {"file": "bundle", "skill_md": "bundle"})
            if not form.errors.get("bundle"):
                form.add_error("bundle", error_message(exc))
        else:
            messages.success(request, f"Skill “{version.name}” version {version.number} added.")
            return redirect("console:skill", skill_id=version.skill_id)
    skills = list(skill_list(actor=actor).order_by("name"))
    return render(
        request,
        "console/skills/index.html",
        {"skills": skills, "form": form},
        status=400 if form.errors else 200,
    )


@console_view
@require_GET
def skill_detail(request: HttpRequest, skill_id: uuid.UUID) -> HttpResponse:
    """A skill's latest version: its front matter, SKILL.md and files."""
    actor = request.actor  # type: ignore[attr-defined]
    skill = access_skill(actor=actor, skill_id=skill_id)
    version = latest_skill_version(skill=skill)
    files = list(skill_version_files(version=version).order_by("path"))
    return render(
        request,
        "console/skills/detail.html",
        {"skill": skill, "version": version, "files": files},
    )


@console_view
@writes_need(Role.MEMBER)
@require_POST
def skill_delete_view(request: HttpRequest, skill_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    skill = access_skill(actor=actor, skill_id=skill_id)
    try:
        skill_delete(actor=actor, skill=skill)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("console:skill", skill_id=skill.id)
    messages.success(request, f"Skill “{skill.name}” deleted.")
    return redirect("console:skills")


# --- MCP servers ----------------------------------------------------------------------------


@console_view
@writes_need(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def mcp_index(request: HttpRequest) -> HttpResponse:
    """MCP servers, and a new one over HTTP: registered, then connected and its tools
    discovered (a failure to connect is its status, not an error of the form)."""
    actor = request.actor  # type: ignore[attr-defined]
    form = McpServerForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            server = mcp_server_create(actor=actor, **form.cleaned_data)
        except ApplicationError as exc:
            add_service_error(form, exc, {})
        else:
            messages.success(request, f"MCP server “{server.name}” added: {server.status}.")
            return redirect("console:mcp_server", mcp_server_id=server.id)
    servers = list(mcp_server_list(actor=actor).order_by("name"))
    return render(
        request,
        "console/mcp/index.html",
        {"servers": servers, "form": form},
        status=400 if form.errors else 200,
    )


@console_view
@require_GET
def mcp_server_detail(request: HttpRequest, mcp_server_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    server = access_mcp_server(actor=actor, mcp_server_id=mcp_server_id)
    tools = list(tool_list(actor=actor, mcp_server_id=server.id).order_by("name"))
    return render(request, "console/mcp/detail.html", {"server": server, "tools": tools})


@console_view
@writes_need(Role.MEMBER)
@require_POST
def mcp_server_refresh_view(request: HttpRequest, mcp_server_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    server = access_mcp_server(actor=actor, mcp_server_id=mcp_server_id)
    server = mcp_server_refresh(server=server)
    if server.status == "connected":
        messages.success(request, "Refreshed: the tools below are up to date.")
    else:
        messages.error(request, f"{server.get_status_display()}: {server.status_reason}")
    return redirect("console:mcp_server", mcp_server_id=server.id)


@console_view
@writes_need(Role.MEMBER)
@require_POST
def mcp_server_delete_view(request: HttpRequest, mcp_server_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    server = access_mcp_server(actor=actor, mcp_server_id=mcp_server_id)
    try:
        mcp_server_delete(actor=actor, server=server)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("console:mcp_server", mcp_server_id=server.id)
    messages.success(request, f"MCP server “{server.name}” and its tools deleted.")
    return redirect("console:mcp")


@console_view
@writes_need(Role.MEMBER)
@require_POST
def mcp_oauth_connect(request: HttpRequest, mcp_server_id: uuid.UUID) -> HttpResponse:
    """Start the server's OAuth authorization; the browser goes to its authorization
    page and comes back to the console's callback."""
    actor = request.actor  # type: ignore[attr-defined]
    server = access_mcp_server(actor=actor, mcp_server_id=mcp_server_id)
    callback = request.build_absolute_uri(reverse("console:mcp_oauth_callback"))
    try:
        url = mcp_oauth_start(actor=actor, server=server, redirect_uri=callback)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("console:mcp_server", mcp_server_id=server.id)
    return redirect(url)


@console_view
@require_GET
def mcp_oauth_callback(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    state, code = request.GET.get("state", ""), request.GET.get("code", "")
    if not state or not code:
        reason = request.GET.get("error_description") or request.GET.get("error") or ""
        messages.error(request, f"The authorization did not complete. {reason}".strip())
        return redirect("console:mcp")
    try:
        server = mcp_oauth_complete(actor=actor, state=state, code=code)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("console:mcp")
    messages.success(request, f"“{server.name}” authorized: {server.get_status_display()}.")
    return redirect("console:mcp_server", mcp_server_id=server.id)

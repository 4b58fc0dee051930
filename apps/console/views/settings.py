"""Settings pages: API keys (shown once, revoke), providers (add, verify), members and
roles, usage (by day, agent and model, with names; CSV)."""

import datetime as dt
import uuid
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.agents.selectors import agent_list
from apps.console.access import console_view, error_message
from apps.console.forms import ApiKeyForm, MemberForm, ProviderForm
from apps.core.api.downloads import csv_download
from apps.core.exceptions import ApplicationError
from apps.providers.choices import Capability, ModelKind
from apps.providers.selectors import (
    access_workspace_provider,
    default_models,
    provider_list,
    usage_csv_rows,
    usage_records,
    usage_summary,
)
from apps.providers.services import (
    default_model_set,
    model_create,
    provider_create,
    provider_verify,
    usage_context,
)
from apps.users.choices import Role
from apps.users.selectors import access_api_key, access_workspace, api_key_list, member_list
from apps.users.services import api_key_create, api_key_revoke, member_add

USAGE_DAYS = 30


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


NEW_KEY_SESSION_KEY = "console_new_api_key"


@console_view
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    """The workspace's keys. A created key's secret is shown once: it is handed to the
    next page through the session (post/redirect/get, so a reload cannot create a second
    key) and removed from the session as that page renders."""
    actor = request.actor  # type: ignore[attr-defined]
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _, secret = api_key_create(actor=actor, name=form.cleaned_data["name"], ip=_ip(request))
        except ApplicationError as exc:
            form.add_error(None, error_message(exc))
        else:
            request.session[NEW_KEY_SESSION_KEY] = secret
            return redirect("console:api_keys")
    secret = request.session.pop(NEW_KEY_SESSION_KEY, "") if request.method == "GET" else ""
    keys = list(api_key_list(actor=actor).select_related("user").order_by("-created_at"))
    response = render(
        request,
        "console/settings/keys.html",
        {"form": form, "keys": keys, "secret": secret},
        status=400 if form.errors else 200,
    )
    response["Cache-Control"] = "no-store"  # the secret must not stay in a cache
    return response


@console_view
@require_POST
def api_key_revoke_view(request: HttpRequest, api_key_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    key = access_api_key(actor=actor, api_key_id=api_key_id)
    try:
        api_key_revoke(actor=actor, key=key, ip=_ip(request))
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, f"Key “{key.name}” revoked.")
    return redirect("console:api_keys")


@console_view
@require_http_methods(["GET", "POST"])
def providers(request: HttpRequest) -> HttpResponse:
    """Model providers (admins add them: a provider, its chat model and optionally an
    embedding model; the first ones become the workspace defaults)."""
    actor = request.actor  # type: ignore[attr-defined]
    form = ProviderForm(request.POST or None)
    if request.method == "POST":
        actor.require_role(Role.ADMIN)
        if form.is_valid():
            data = form.cleaned_data
            try:
                with transaction.atomic():
                    provider = provider_create(
                        workspace=actor.workspace,
                        actor=actor.user,
                        name=data["name"],
                        kind=data["kind"],
                        base_url=data["base_url"],
                        api_keys=[data["api_key"]] if data["api_key"] else [],
                    )
                    defaults = {d.kind: d for d in default_models(actor=actor)}
                    # Tool calling is assumed (the API's probe can refine it).
                    chat = model_create(
                        provider=provider, name=data["model"], capabilities=[Capability.TOOLS]
                    )
                    if defaults[ModelKind.CHAT].model is None:
                        default_model_set(
                            workspace=actor.workspace, kind=ModelKind.CHAT, model=chat
                        )
                    if data["embedding_model"]:
                        embed = model_create(
                            provider=provider,
                            name=data["embedding_model"],
                            kind=ModelKind.EMBEDDING,
                        )
                        if defaults[ModelKind.EMBEDDING].model is None:
                            default_model_set(
                                workspace=actor.workspace, kind=ModelKind.EMBEDDING, model=embed
                            )
            except ApplicationError as exc:
                form.add_error(None, error_message(exc))
            else:
                messages.success(request, f"Provider “{provider.name}” added.")
                return redirect("console:providers")
    rows = list(
        provider_list(actor=actor).prefetch_related("models").order_by("workspace_id", "name")
    )
    context = {"form": form, "providers": rows, "defaults": default_models(actor=actor)}
    return render(
        request, "console/settings/providers.html", context, status=400 if form.errors else 200
    )


@console_view
@require_POST
def provider_verify_view(request: HttpRequest, provider_id: uuid.UUID) -> HttpResponse:
    """One real round trip to the provider; the result replaces the button (htmx)."""
    actor = request.actor  # type: ignore[attr-defined]
    provider = access_workspace_provider(actor=actor, provider_id=provider_id)
    try:
        result: Any = provider_verify(provider=provider, usage=usage_context(actor=actor))
    except ApplicationError as exc:
        return render(request, "console/settings/_verify.html", {"error": error_message(exc)})
    return render(request, "console/settings/_verify.html", {"result": result})


@console_view
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    membership = access_workspace(actor=actor, workspace_id=actor.workspace_id)
    roles = [(r.value, r.label) for r in Role]
    form = MemberForm(request.POST or None, roles=roles)
    if request.method == "POST" and form.is_valid():
        try:
            member_add(
                membership=membership,
                email=form.cleaned_data["email"],
                role=Role(form.cleaned_data["role"]),
            )
        except ApplicationError as exc:
            form.add_error("email", error_message(exc))
        else:
            messages.success(request, f"{form.cleaned_data['email']} added.")
            return redirect("console:members")
    rows = list(member_list(membership=membership).order_by("created_at"))
    return render(
        request,
        "console/settings/members.html",
        {"form": form, "members": rows, "can_manage": actor.has_role(Role.ADMIN)},
        status=400 if form.errors else 200,
    )


def _usage_window() -> tuple[dt.date, dt.date]:
    end = timezone.now().date()
    return end - dt.timedelta(days=USAGE_DAYS - 1), end


@console_view
@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    """Calls, tokens and cost per day (a bar chart), per agent and per model, by name."""
    actor = request.actor  # type: ignore[attr-defined]
    start, end = _usage_window()
    records = usage_records(actor=actor, start=start, end=end)
    by_model = usage_summary(records=records, group_by="model")
    by_agent = usage_summary(records=records, group_by="agent")["groups"]
    names = {
        str(a.id): a.name
        for a in agent_list(actor=actor).filter(id__in=[g["key"] for g in by_agent if g["key"]])
    }
    for group in by_agent:
        group["label"] = names.get(
            group["key"] or "",
            "Without an agent" if not group["key"] else "Agent no longer visible",
        )
    days: dict[dt.date, dict[str, Any]] = {row["date"]: row for row in by_model["series"]}
    series = []
    for i in range(USAGE_DAYS):
        day = start + dt.timedelta(days=i)
        row = days.get(day, {"calls": 0, "input_tokens": 0, "output_tokens": 0})
        series.append(
            {
                "date": day,
                "calls": row["calls"],
                "tokens": row["input_tokens"] + row["output_tokens"],
            }
        )
    peak = max((s["tokens"] for s in series), default=0) or 1
    for s in series:
        s["height"] = round(100 * s["tokens"] / peak)
    context = {
        "totals": by_model["totals"],
        "series": series,
        "by_model": by_model["groups"],
        "by_agent": by_agent,
        "start": start,
        "end": end,
    }
    return render(request, "console/settings/usage.html", context)


@console_view
@require_GET
def usage_csv(request: HttpRequest) -> StreamingHttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    start, end = _usage_window()
    records = usage_records(actor=actor, start=start, end=end)
    return csv_download(request, usage_csv_rows(records=records), filename="usage.csv")

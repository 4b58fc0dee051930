"""Workspace security pages for admins: the MFA policy (admins and owners must have MFA)
and the audit trail (paginated, filtered by action and by who acted)."""

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from apps.console.access import console_view, error_message
from apps.console.forms import AuditFilterForm, SecurityPolicyForm
from apps.users.choices import Role
from apps.users.exceptions import MfaRequired
from apps.users.selectors import audit_event_list, user_has_mfa, workspace_requires_admin_mfa
from apps.users.services import workspace_security_update

AUDIT_PAGE_SIZE = 50


@console_view
@require_http_methods(["GET", "POST"])
def security(request: HttpRequest) -> HttpResponse:
    """The workspace's MFA policy: everyone sees it, admins change it."""
    actor = request.actor  # type: ignore[attr-defined]
    required = workspace_requires_admin_mfa(workspace_id=actor.workspace_id)
    # An unticked box posts nothing: a POST is bound even when empty.
    data = request.POST if request.method == "POST" else None
    form = SecurityPolicyForm(data, initial={"require_admin_mfa": required})
    if request.method == "POST" and form.is_valid():
        try:
            workspace_security_update(
                actor=actor,
                require_admin_mfa=form.cleaned_data["require_admin_mfa"],
                ip=request.META.get("REMOTE_ADDR"),
            )
        except MfaRequired as exc:  # a lower role's PermissionDenied is the 403 page
            form.add_error("require_admin_mfa", error_message(exc))
        else:
            messages.success(request, "Security policy saved.")
            return redirect("console:security")
    context: dict[str, Any] = {
        "form": form,
        "required": required,
        "can_manage": actor.has_role(Role.ADMIN),
        "has_mfa": user_has_mfa(user=actor.user),
    }
    return render(
        request, "console/settings/security.html", context, status=400 if form.errors else 200
    )


@console_view
@require_GET
def audit(request: HttpRequest) -> HttpResponse:
    """The workspace's audit trail, newest first (admins only)."""
    actor = request.actor  # type: ignore[attr-defined]
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    events = audit_event_list(
        actor=actor,
        action=filters.get("action", ""),
        user_email=filters.get("user", ""),
    ).select_related("actor_user")
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode()}
    return render(
        request, "console/settings/audit.html", context, status=400 if form.errors else 200
    )

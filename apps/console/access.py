"""How a console request becomes an Actor: the browser session, in the workspace the
person picked with the switcher (kept in the session), through the same `actor_resolve`
as the API. Domain errors become pages: not found is a 404, never a 403."""

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponseBase, QueryDict
from django.shortcuts import render

from apps.core.exceptions import ApplicationError, NotFound, PermissionDenied
from apps.users.actors import SESSION_CREDENTIAL, Actor, actor_resolve
from apps.users.choices import Role
from apps.users.exceptions import MfaRequired, WorkspaceNotFound
from apps.users.models import User
from apps.users.selectors import user_has_mfa, workspace_policy_requires_mfa

WORKSPACE_SESSION_KEY = "console_workspace_id"

View = Callable[..., HttpResponseBase]


def console_actor(request: HttpRequest) -> Actor:
    """The signed-in user acting in the workspace chosen in this session (else their
    first). A workspace they left falls back to their default one."""
    user = request.user
    assert isinstance(user, User)
    chosen = request.session.get(WORKSPACE_SESSION_KEY)
    try:
        return actor_resolve(
            user=user, credential=SESSION_CREDENTIAL, requested_workspace_id=chosen
        )
    except WorkspaceNotFound:
        request.session.pop(WORKSPACE_SESSION_KEY, None)
        return actor_resolve(user=user, credential=SESSION_CREDENTIAL, requested_workspace_id=None)


def _require_admin_mfa(actor: Actor) -> None:
    """The workspace's MFA policy, as the API applies it: an admin or owner without MFA
    in a workspace that requires it may not act (MfaRequired). No query unless the
    policy is on (the actor's workspace comes with its security row)."""
    if (
        actor.has_role(Role.ADMIN)
        and workspace_policy_requires_mfa(actor.workspace)
        and not user_has_mfa(user=actor.user)
    ):
        raise MfaRequired()


def console_view(view: View) -> View:
    """Signed-in only (others go to sign-in); sets `request.actor`; renders domain errors:
    NotFound as 404, PermissionDenied as a 403 page saying why (an admin without MFA in
    a workspace requiring it included)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        try:
            request.actor = console_actor(request)  # type: ignore[attr-defined]
        except WorkspaceNotFound as exc:
            raise Http404("You belong to no workspace.") from exc
        try:
            _require_admin_mfa(request.actor)  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except PermissionDenied as exc:
            return render(
                request, "console/error.html", {"title": "Not allowed", "error": exc}, status=403
            )

    return wrapped


def error_message(exc: ApplicationError) -> str:
    """A domain error as one readable line, with the fields it names."""
    fields = [d["message"] for d in exc.details if d.get("message") and d["message"] != exc.message]
    return " ".join([exc.message, *fields])


def writes_need(role: Role) -> Callable[[View], View]:
    """Inside `console_view`: a POST by a role below `role` gets the 403 page saying why
    before its form is read (the services check the same role again)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method == "POST":
                request.actor.require_role(role)  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def posted(request: HttpRequest) -> QueryDict | None:
    """A POST's data, even empty (a form posted without a field is bound, so it says what
    is missing), None for any other method."""
    return request.POST if request.method == "POST" else None

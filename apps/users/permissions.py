"""DRF permissions of the API (WorkspaceActor is the default of every view)."""

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from apps.users.actors import Actor, Credential, get_actor
from apps.users.choices import Role
from apps.users.exceptions import MfaRequired
from apps.users.selectors import user_has_mfa, workspace_policy_requires_mfa

__all__ = ["PlatformAdmin", "SignedIn", "WorkspaceActor"]


def _general_scope_allows(request: Request) -> bool:
    credential = request.auth
    scopes = credential.scopes if isinstance(credential, Credential) else None
    if scopes is None:
        return True
    return "write" in scopes or (request.method in SAFE_METHODS and "read" in scopes)


class SignedIn(BasePermission):
    """Any authenticated, active user, whatever workspace (for `/me` endpoints). Reading
    needs no particular scope; changing needs the general `write` scope."""

    message = "This credential's scopes do not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        return _general_scope_allows(request)


class PlatformAdmin(BasePermission):
    """A platform administrator (`is_staff`); a key or token needs the general
    `read` (safe methods) or `write` scope."""

    message = "This needs a platform administrator."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        return _general_scope_allows(request)


class WorkspaceActor(BasePermission):
    """Resolves the actor (404 for a workspace that is not the caller's) and checks the
    credential's scopes against the view's `scope_area` (read for safe methods)."""

    message = "This credential's scopes do not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        actor = get_actor(request)
        if actor.has_role(Role.ADMIN):
            _require_admin_mfa(actor)
        area = getattr(view, "scope_area", "")
        # A view may declare more methods that only read its area (e.g. /mcp's POST).
        read_methods = getattr(view, "scope_read_methods", SAFE_METHODS)
        return actor.allows(area, write=request.method not in read_methods)


def _require_admin_mfa(actor: Actor) -> None:
    """Raises MfaRequired when the workspace requires MFA of its admins and the acting
    admin has none."""
    if workspace_policy_requires_mfa(actor.workspace) and not user_has_mfa(user=actor.user):
        raise MfaRequired()

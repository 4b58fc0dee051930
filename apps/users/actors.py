"""Who is acting: a user, through one credential, in one workspace, with a role.

Every credential (browser session, API key, OAuth2 token) resolves to an `Actor`, and
every selector and service takes one, so all three pass exactly the same checks.
"""

import uuid
from dataclasses import dataclass, field
from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from apps.core.exceptions import PermissionDenied
from apps.users.choices import CredentialKind, Role
from apps.users.exceptions import WorkspaceNotFound
from apps.users.models import Membership, User, Workspace

WORKSPACE_HEADER = "X-Workspace-ID"


@dataclass(frozen=True)
class Credential:
    """What an authentication class knows about the credential it accepted.

    `workspace_id` binds the credential to one workspace (API keys, OAuth2 tokens);
    `scopes` limits what it may do (None: everything the member's role allows).
    `membership`: the bound workspace and the user's role in it, when the authentication
    read them with the credential (same query, same request), so resolving the actor in
    that workspace costs no second lookup.
    """

    kind: CredentialKind
    pk: str = ""
    workspace_id: uuid.UUID | None = None
    scopes: frozenset[str] | None = None
    obj: object | None = field(default=None, compare=False)
    membership: tuple[Workspace, Role] | None = field(default=None, compare=False, repr=False)

    @property
    def rate_limit_kind(self) -> str:
        # A browser session is counted as its user; keys and tokens each on their own.
        return "user" if self.kind == CredentialKind.SESSION else str(self.kind)


SESSION_CREDENTIAL = Credential(kind=CredentialKind.SESSION)


@dataclass(frozen=True)
class Actor:
    """A user acting in one workspace through one credential."""

    user: User
    workspace: Workspace
    role: Role
    credential: Credential = SESSION_CREDENTIAL

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.workspace.id

    def has_role(self, role: Role) -> bool:
        return self.role.at_least(role)

    def require_role(self, role: Role) -> None:
        """Raises PermissionDenied unless the actor's role is at least `role`."""
        if not self.has_role(role):
            raise PermissionDenied(f"This needs the {role.label.lower()} role or higher.")

    def allows(self, area: str, *, write: bool) -> bool:
        """Whether the credential's scopes cover reading (or writing) `area`.

        Scopes: `read`, `write` (everything), or `<area>:read` / `<area>:write`;
        a write scope includes the matching read.
        """
        scopes = self.credential.scopes
        if scopes is None:
            return True
        wanted = ["write", f"{area}:write"]
        if not write:
            wanted += ["read", f"{area}:read"]
        return any(scope in scopes for scope in wanted)


def actor_resolve(
    *, user: User, credential: Credential, requested_workspace_id: str | None
) -> Actor:
    """The actor for `user` using `credential`, in the requested workspace, else the one
    the credential is bound to, else the user's personal workspace.

    Raises WorkspaceNotFound (404) for a workspace the user is not a member of, a
    malformed id, or one other than the credential's own.
    """
    workspace_id: uuid.UUID | None = credential.workspace_id
    if requested_workspace_id:
        try:
            requested = uuid.UUID(requested_workspace_id)
        except ValueError as exc:
            raise WorkspaceNotFound() from exc
        if workspace_id is not None and requested != workspace_id:
            raise WorkspaceNotFound()
        workspace_id = requested
    if credential.membership is not None and workspace_id == credential.workspace_id:
        workspace, role = credential.membership
        return Actor(user=user, workspace=workspace, role=role, credential=credential)
    memberships = Membership.objects.select_related("workspace", "workspace__security").filter(
        user=user
    )
    if workspace_id is not None:
        membership = memberships.filter(workspace_id=workspace_id).first()
    else:
        membership = memberships.order_by("-workspace__is_personal", "created_at").first()
    if membership is None:
        raise WorkspaceNotFound()
    return Actor(
        user=user,
        workspace=membership.workspace,
        role=Role(membership.role),
        credential=credential,
    )


def request_user(request: Request) -> User:
    """The authenticated user of a request that passed WorkspaceActor."""
    user = request.user
    assert isinstance(user, User), "request_user() needs an authenticated request"
    return user


def get_actor(request: Request) -> Actor:
    """The request's Actor; resolved once by WorkspaceActor and cached on the request."""
    actor = getattr(request._request, "actor", None)
    if actor is None:
        credential = request.auth if isinstance(request.auth, Credential) else SESSION_CREDENTIAL
        actor = actor_resolve(
            user=request_user(request),
            credential=credential,
            requested_workspace_id=request.headers.get(WORKSPACE_HEADER),
        )
        request._request.actor = actor  # type: ignore[attr-defined]
    return actor


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
    from apps.users.exceptions import MfaRequired
    from apps.users.selectors import user_has_mfa, workspace_policy_requires_mfa

    if workspace_policy_requires_mfa(actor.workspace) and not user_has_mfa(user=actor.user):
        raise MfaRequired()

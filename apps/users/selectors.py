"""Reads of users, workspaces and memberships; every one checks the actor's access."""

import hashlib
import uuid

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.adapter import get_adapter
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest
from oauth2_provider.models import AccessToken

from apps.core.prepared import PreparedQuery
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.exceptions import (
    ApiKeyNotFound,
    MemberNotFound,
    OAuthApplicationNotFound,
    UserNotFound,
    WorkspaceNotFound,
)
from apps.users.models import (
    ApiKey,
    AuditEvent,
    Membership,
    OAuthClient,
    User,
    Workspace,
    WorkspaceSecurity,
)


def workspace_memberships(*, actor: Actor) -> QuerySet[Membership]:
    """The actor's memberships; a workspace-bound credential sees only its workspace."""
    qs = Membership.objects.select_related("workspace").filter(user=actor.user)
    if actor.credential.workspace_id is not None:
        qs = qs.filter(workspace_id=actor.credential.workspace_id)
    return qs


def access_workspace(*, actor: Actor, workspace_id: uuid.UUID) -> Membership:
    """The actor's membership in `workspace_id`. Raises WorkspaceNotFound otherwise."""
    membership = workspace_memberships(actor=actor).filter(workspace_id=workspace_id).first()
    if membership is None:
        raise WorkspaceNotFound()
    return membership


def member_list(*, membership: Membership) -> QuerySet[Membership]:
    """Members of the workspace `membership` belongs to."""
    return Membership.objects.select_related("user").filter(workspace_id=membership.workspace_id)


def access_member(*, membership: Membership, user_id: uuid.UUID) -> Membership:
    """A member of the caller's workspace. Raises MemberNotFound."""
    found = member_list(membership=membership).filter(user_id=user_id).first()
    if found is None:
        raise MemberNotFound()
    return found


def workspace_owner_count(*, workspace_id: uuid.UUID) -> int:
    return Membership.objects.filter(workspace_id=workspace_id, role=Role.OWNER).count()


# --- Credentials ----------------------------------------------------------------------


def api_key_hash(secret: str) -> str:
    """The stored form of an API key: SHA-256 (the key is 256 random bits)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _api_key_by_hash(key_hash: str) -> QuerySet[ApiKey]:
    member_role = Membership.objects.filter(
        user_id=OuterRef("user_id"), workspace_id=OuterRef("workspace_id")
    ).values("role")[:1]
    return (
        ApiKey.objects.select_related("user", "workspace", "workspace__security")
        .annotate(member_role=Subquery(member_role))
        .filter(key_hash=key_hash)
    )


# Compiled once per process: building and compiling this queryset cost several times
# the SQL itself (a unique-index lookup), on every API-key request.
_API_KEY_BY_HASH = PreparedQuery(_api_key_by_hash, key_hash=ApiKey._meta.get_field("key_hash"))


def api_key_for_secret(*, secret: str) -> ApiKey | None:
    """The usable key with this secret: not revoked or expired, its user active and still
    a member of its workspace. None otherwise.

    One query: the key, its user, its workspace (with its security policy) and the user's
    role there (`member_role`), so the request's actor needs no second lookup."""
    key = _API_KEY_BY_HASH.first(key_hash=api_key_hash(secret))
    if key is None or not key.is_usable() or not key.user.is_active:
        return None
    if key.member_role is None:  # type: ignore[attr-defined]
        return None
    return key


def oauth_access_token_for_secret(*, secret: str) -> tuple[AccessToken, User, uuid.UUID] | None:
    """(token, acting user, workspace) for a valid OAuth2 access token, or None.

    A client-credentials token acts as the user who registered the application. The user
    must be active and still a member of the token's workspace.
    """
    checksum = hashlib.sha256(secret.encode()).hexdigest()
    token = (
        AccessToken.objects.select_related("application", "user", "workspace_binding")
        .filter(token_checksum=checksum)
        .first()
    )
    if token is None or token.is_expired():
        return None
    binding = getattr(token, "workspace_binding", None)
    if binding is None:
        return None
    user = token.user
    if user is None and token.application is not None:
        user = token.application.user
    if user is None or not user.is_active:
        return None
    if not Membership.objects.filter(user=user, workspace_id=binding.workspace_id).exists():
        return None
    return token, user, binding.workspace_id


def api_key_list(*, actor: Actor) -> QuerySet[ApiKey]:
    """Keys of the actor's workspace: all of them for admins, their own for others."""
    qs = ApiKey.objects.filter(workspace=actor.workspace)
    if not actor.has_role(Role.ADMIN):
        qs = qs.filter(user=actor.user)
    return qs


def access_api_key(*, actor: Actor, api_key_id: uuid.UUID) -> ApiKey:
    """One key visible to the actor. Raises ApiKeyNotFound."""
    key = api_key_list(actor=actor).filter(pk=api_key_id).first()
    if key is None:
        raise ApiKeyNotFound()
    return key


def audit_event_list(
    *, actor: Actor, action: str = "", user_email: str = ""
) -> QuerySet[AuditEvent]:
    """The audit trail of the actor's workspace (admins only: PermissionDenied), newest
    first; `action` keeps actions starting with it, `user_email` those whose actor's
    email contains it."""
    actor.require_role(Role.ADMIN)
    qs = AuditEvent.objects.filter(workspace_id=actor.workspace.id)
    if action:
        qs = qs.filter(action__startswith=action)
    if user_email:
        qs = qs.filter(actor_email__icontains=user_email)
    return qs


def oauth_client_list(*, actor: Actor) -> QuerySet[OAuthClient]:
    """OAuth2 applications registered in the actor's workspace (admins only)."""
    actor.require_role(Role.ADMIN)
    return OAuthClient.objects.select_related("application").filter(workspace=actor.workspace)


def access_oauth_client(*, actor: Actor, application_id: uuid.UUID) -> OAuthClient:
    """One application of the actor's workspace. Raises OAuthApplicationNotFound."""
    found = (
        OAuthClient.objects.select_related("application")
        .filter(workspace=actor.workspace, pk=application_id)
        .first()
    )
    if found is None:
        raise OAuthApplicationNotFound()
    actor.require_role(Role.ADMIN)
    return found


def workspace_requires_admin_mfa(*, workspace_id: uuid.UUID) -> bool:
    return WorkspaceSecurity.objects.filter(
        workspace_id=workspace_id, require_admin_mfa=True
    ).exists()


def workspace_policy_requires_mfa(workspace: Workspace) -> bool:
    """Like workspace_requires_admin_mfa, for a workspace loaded with
    select_related("security") (no query)."""
    try:
        return bool(workspace.security.require_admin_mfa)
    except WorkspaceSecurity.DoesNotExist:
        return False


def user_has_mfa(*, user: User) -> bool:
    """Whether the user has an MFA authenticator (TOTP) set up."""
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def user_email_verified(*, user: User) -> bool:
    return EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()


def user_search(*, query: str = "", is_active: bool | None = None) -> QuerySet[User]:
    """Every user (platform admins only; the view checks), filtered by email/name."""
    qs = User.objects.all().order_by("email")
    if query:
        qs = qs.filter(Q(email__icontains=query) | Q(name__icontains=query))
    if is_active is not None:
        qs = qs.filter(is_active=is_active)
    return qs


def access_user(*, user_id: uuid.UUID) -> User:
    """A user by id (platform admins only). Raises UserNotFound."""
    found = User.objects.filter(pk=user_id).first()
    if found is None:
        raise UserNotFound()
    return found


def oauth_authorizations(*, user: User) -> QuerySet[AccessToken]:
    """The user's live OAuth2 access tokens (one per authorization)."""
    return AccessToken.objects.select_related("application", "workspace_binding").filter(user=user)


def users_with_mfa(*, user_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these users have TOTP set up (one query)."""
    return set(
        Authenticator.objects.filter(
            user_id__in=user_ids, type=Authenticator.Type.TOTP
        ).values_list("user_id", flat=True)
    )


def provider_list(*, request: HttpRequest) -> list[dict[str, str]]:
    """Upstream sign-in providers configured in the admin (allauth social apps)."""
    out = []
    for app in get_adapter().list_apps(request):
        out.append(
            {
                "id": app.provider_id or app.provider,
                "name": app.name,
                "provider": app.provider,
                "client_id": app.client_id,
            }
        )
    return out

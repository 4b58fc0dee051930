"""Writes of users, workspaces and memberships."""

import ipaddress
import os
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, Application, RefreshToken

from apps.core.exceptions import PermissionDenied, ValidationFailed
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.exceptions import (
    AlreadyMember,
    CannotDeleteSelf,
    ClientRegistrationError,
    LastOwner,
    MfaRequired,
)
from apps.users.models import (
    ApiKey,
    AuditEvent,
    DynamicClientRegistration,
    Membership,
    OAuthClient,
    User,
    Workspace,
    WorkspaceSecurity,
)
from apps.users.scopes import API_SCOPES, OAUTH2_SCOPES
from apps.users.selectors import api_key_hash, user_has_mfa, workspace_owner_count


def require_membership_role(*, membership: Membership, role: Role) -> None:
    """Raises PermissionDenied unless `membership` has at least `role`."""
    if not Role(membership.role).at_least(role):
        raise PermissionDenied(f"This needs the {role.label.lower()} role or higher.")


def user_create(*, email: str, password: str | None = None, name: str = "", **extra: Any) -> User:
    """Create a user and their personal workspace (they own it)."""
    email = BaseUserManager.normalize_email(email).strip()
    if not email:
        raise ValidationFailed("An email address is required.", field="email")
    return User.objects.create_user(email, password, name=name, **extra)


def workspace_create(*, user: User, name: str, is_personal: bool = False) -> Workspace:
    """Create a workspace owned by `user`."""
    with transaction.atomic():
        workspace = Workspace.objects.create(name=name, is_personal=is_personal, created_by=user)
        Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    return workspace


def workspace_rename(*, membership: Membership, name: str) -> Workspace:
    """Rename the membership's workspace. Needs admin."""
    require_membership_role(membership=membership, role=Role.ADMIN)
    workspace = membership.workspace
    workspace.name = name
    workspace.save(update_fields=["name", "updated_at"])
    return workspace


def member_add(*, membership: Membership, email: str, role: Role) -> Membership:
    """Add an existing user by email. Needs admin; granting owner needs owner.

    Raises ValidationFailed for an unknown email, AlreadyMember for a member.
    """
    require_membership_role(membership=membership, role=Role.ADMIN)
    if role == Role.OWNER:
        require_membership_role(membership=membership, role=Role.OWNER)
    user = User.objects.filter(email__iexact=email.strip(), is_active=True).first()
    if user is None:
        raise ValidationFailed("No active user has this email address.", field="email")
    with transaction.atomic():
        if Membership.objects.filter(workspace_id=membership.workspace_id, user=user).exists():
            raise AlreadyMember()
        added = Membership.objects.create(
            workspace_id=membership.workspace_id, user=user, role=role
        )
        audit_record(
            action="member.add",
            actor_user=membership.user,
            workspace_id=membership.workspace_id,
            target_type="user",
            target_id=str(user.id),
            metadata={"email": user.email, "role": str(role)},
        )
        return added


def member_change_role(*, membership: Membership, target: Membership, role: Role) -> Membership:
    """Change `target`'s role. Needs admin; touching an owner or granting owner needs
    owner; the last owner cannot be demoted (LastOwner)."""
    require_membership_role(membership=membership, role=Role.ADMIN)
    if role == Role.OWNER or target.role == Role.OWNER:
        require_membership_role(membership=membership, role=Role.OWNER)
    with transaction.atomic():
        _lock_workspace(target.workspace_id)
        if (
            target.role == Role.OWNER
            and role != Role.OWNER
            and workspace_owner_count(workspace_id=target.workspace_id) <= 1
        ):
            raise LastOwner()
        previous = target.role
        target.role = role
        target.save(update_fields=["role", "updated_at"])
        audit_record(
            action="member.role_change",
            actor_user=membership.user,
            workspace_id=target.workspace_id,
            target_type="user",
            target_id=str(target.user_id),
            metadata={"from": str(previous), "to": str(role)},
        )
    return target


def member_remove(*, membership: Membership, target: Membership) -> None:
    """Remove `target` from the workspace. Anyone may leave; removing others needs admin
    (owner to remove an owner); the last owner cannot go (LastOwner)."""
    if target.pk != membership.pk:
        require_membership_role(membership=membership, role=Role.ADMIN)
        if target.role == Role.OWNER:
            require_membership_role(membership=membership, role=Role.OWNER)
    with transaction.atomic():
        _lock_workspace(target.workspace_id)
        if (
            target.role == Role.OWNER
            and workspace_owner_count(workspace_id=target.workspace_id) <= 1
        ):
            raise LastOwner()
        audit_record(
            action="member.remove",
            actor_user=membership.user,
            workspace_id=target.workspace_id,
            target_type="user",
            target_id=str(target.user_id),
            metadata={"role": str(target.role)},
        )
        target.delete()


def _lock_workspace(workspace_id: Any) -> None:
    """Serialize membership changes of one workspace (a row lock on PostgreSQL; SQLite
    transactions are already serial)."""
    Workspace.objects.select_for_update().filter(pk=workspace_id).first()


def personal_workspace_ensure(*, user: User) -> Workspace:
    """The user's personal workspace, created (owned by them) if they have none.
    Idempotent; used for accounts allauth creates (sign-up, upstream sign-in)."""
    membership = (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace__is_personal=True, role=Role.OWNER)
        .first()
    )
    if membership is not None:
        return membership.workspace
    label = user.name or user.email.split("@")[0]
    return workspace_create(user=user, name=f"{label}'s workspace", is_personal=True)


# --- Audit ------------------------------------------------------------------------------


def audit_record(
    *,
    action: str,
    actor_user: User | None,
    workspace_id: uuid.UUID | None,
    target_type: str = "",
    target_id: str = "",
    metadata: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one security-relevant event to the audit trail (never updated afterwards).

    `action` is a lowercase dotted name (`api_key.create`, `login.failed`, ...);
    `metadata` must hold no secret.
    """
    return AuditEvent.objects.create(
        action=action,
        actor_user=actor_user,
        actor_email=actor_user.email if actor_user is not None else "",
        workspace_id=workspace_id,
        target_type=target_type,
        target_id=str(target_id)[:64],
        metadata=metadata or {},
        ip=_valid_ip(ip),
    )


def _valid_ip(ip: str | None) -> str | None:
    """The address if it is one (proxies and test clients may give "unknown")."""
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


# --- API keys ---------------------------------------------------------------------------

API_KEY_PREFIX = "ak_"


def _validate_scopes(scopes: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(scopes))
    unknown = [scope for scope in wanted if scope not in API_SCOPES]
    if unknown:
        raise ValidationFailed(f"Unknown scopes: {', '.join(unknown)}.", field="scopes")
    if not wanted:
        raise ValidationFailed("Give at least one scope.", field="scopes")
    return wanted


def api_key_create(
    *,
    actor: "Actor",
    name: str,
    scopes: Iterable[str] = ("read", "write"),
    expires_at: datetime | None = None,
    ip: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key acting as `actor.user` in `actor.workspace`. Returns the key and its
    plaintext, which is never available again. Needs the member role; a key made with a
    scoped credential cannot get more scopes than that credential has."""
    actor.require_role(Role.MEMBER)
    wanted = _validate_scopes(scopes)
    held = actor.credential.scopes
    if held is not None:
        beyond = [s for s in wanted if not _scope_covered(s, held)]
        if beyond:
            raise PermissionDenied(f"Your credential cannot grant: {', '.join(beyond)}.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("The expiry must be in the future.", field="expires_at")
    prefix = f"{API_KEY_PREFIX}{secrets.token_hex(4)}"
    plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            workspace=actor.workspace,
            user=actor.user,
            name=name,
            prefix=prefix,
            key_hash=api_key_hash(plaintext),
            scopes=wanted,
            expires_at=expires_at,
        )
        audit_record(
            action="api_key.create",
            actor_user=actor.user,
            workspace_id=actor.workspace.id,
            target_type="api_key",
            target_id=str(key.id),
            metadata={"name": name, "prefix": prefix, "scopes": wanted},
            ip=ip,
        )
    return key, plaintext


def _scope_covered(scope: str, held: frozenset[str]) -> bool:
    if scope in held or "write" in held:
        return True
    area, _, mode = scope.partition(":")
    if not mode:  # "read" or "write" wanted
        return scope == "read" and "read" in held
    return mode == "read" and ("read" in held or f"{area}:write" in held)


def api_key_revoke(*, actor: "Actor", key: ApiKey, ip: str | None = None) -> ApiKey:
    """Revoke `key` (idempotent). Its owner may revoke it; others need the admin role."""
    if key.user_id != actor.user.id:
        actor.require_role(Role.ADMIN)
    if key.revoked_at is not None:
        return key
    with transaction.atomic():
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
        audit_record(
            action="api_key.revoke",
            actor_user=actor.user,
            workspace_id=key.workspace_id,
            target_type="api_key",
            target_id=str(key.id),
            metadata={"name": key.name, "prefix": key.prefix},
            ip=ip,
        )
    return key


def api_key_touch(*, key: ApiKey) -> None:
    """Record that `key` was used (at most one write a minute per key)."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


# --- Workspace security ---------------------------------------------------------------


def workspace_security_update(
    *, actor: "Actor", require_admin_mfa: bool, ip: str | None = None
) -> WorkspaceSecurity:
    """Set whether the actor's workspace requires MFA of its admins. Needs admin; turning
    it on needs MFA on the caller's own account (MfaRequired), so nobody locks themselves
    out."""
    actor.require_role(Role.ADMIN)
    if require_admin_mfa and not user_has_mfa(user=actor.user):
        raise MfaRequired()
    with transaction.atomic():
        policy, _ = WorkspaceSecurity.objects.get_or_create(workspace=actor.workspace)
        if policy.require_admin_mfa != require_admin_mfa:
            policy.require_admin_mfa = require_admin_mfa
            policy.save(update_fields=["require_admin_mfa", "updated_at"])
            audit_record(
                action="workspace.mfa_policy",
                actor_user=actor.user,
                workspace_id=actor.workspace.id,
                target_type="workspace",
                target_id=str(actor.workspace.id),
                metadata={"require_admin_mfa": require_admin_mfa},
                ip=ip,
            )
    return policy


# --- OAuth2 applications --------------------------------------------------------------


def validate_redirect_uri(uri: str) -> str:
    """An https URI, or a loopback http URI for native apps (RFC 8252): http://127.0.0.1
    or http://[::1], any port. No fragment, no wildcard. Raises ValidationFailed."""
    parsed = urlsplit(uri)
    ok = bool(parsed.hostname) and not parsed.fragment and "*" not in uri
    if parsed.scheme == "http":
        ok = ok and parsed.hostname in LOOPBACK_HOSTS
    elif parsed.scheme != "https":
        ok = False
    if not ok:
        raise ValidationFailed(
            f"{uri!r} is not allowed: use https, or http://127.0.0.1 / http://[::1] for "
            "native apps, without a fragment.",
            field="redirect_uris",
        )
    return uri


LOOPBACK_HOSTS = ("127.0.0.1", "::1")


def oauth_application_create(
    *,
    actor: "Actor",
    name: str,
    client_type: str,
    grant_type: str,
    redirect_uris: Iterable[str] = (),
    ip: str | None = None,
) -> tuple[OAuthClient, str]:
    """Register an OAuth2 application in the actor's workspace. Needs admin.

    `client_type`: `confidential` or `public` (native/SPA: no secret, PKCE only);
    `grant_type`: `authorization-code` or `client-credentials` (confidential only).
    Returns the client and its plaintext secret ("" for public clients), shown once.
    """
    actor.require_role(Role.ADMIN)
    uris = [validate_redirect_uri(uri) for uri in redirect_uris]
    if grant_type == Application.GRANT_AUTHORIZATION_CODE and not uris:
        raise ValidationFailed("Give at least one redirect URI.", field="redirect_uris")
    if grant_type == Application.GRANT_CLIENT_CREDENTIALS and client_type != "confidential":
        raise ValidationFailed(
            "Client credentials need a confidential client.", field="client_type"
        )
    secret = generate_client_secret() if client_type == "confidential" else ""
    with transaction.atomic():
        application = Application.objects.create(
            name=name,
            user=actor.user,
            client_type=client_type,
            authorization_grant_type=grant_type,
            redirect_uris=" ".join(uris),
            client_secret=secret,
            hash_client_secret=True,
            algorithm=Application.RS256_ALGORITHM,
            skip_authorization=False,
        )
        client = OAuthClient.objects.create(application=application, workspace=actor.workspace)
        audit_record(
            action="oauth_application.create",
            actor_user=actor.user,
            workspace_id=actor.workspace.id,
            target_type="oauth_application",
            target_id=str(client.id),
            metadata={"name": name, "client_id": application.client_id},
            ip=ip,
        )
    return client, secret


def oauth_application_update(
    *,
    actor: "Actor",
    client: OAuthClient,
    name: str | None = None,
    redirect_uris: Iterable[str] | None = None,
) -> OAuthClient:
    """Rename an application or replace its redirect URIs. Needs admin."""
    actor.require_role(Role.ADMIN)
    application = client.application
    if name is not None:
        application.name = name
    if redirect_uris is not None:
        uris = [validate_redirect_uri(uri) for uri in redirect_uris]
        if (
            application.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE
            and not uris
        ):
            raise ValidationFailed("Give at least one redirect URI.", field="redirect_uris")
        application.redirect_uris = " ".join(uris)
    application.save(update_fields=["name", "redirect_uris", "updated"])
    return client


def oauth_application_delete(*, actor: "Actor", client: OAuthClient, ip: str | None = None) -> None:
    """Delete an application and every token it holds. Needs admin."""
    actor.require_role(Role.ADMIN)
    with transaction.atomic():
        audit_record(
            action="oauth_application.delete",
            actor_user=actor.user,
            workspace_id=client.workspace_id,
            target_type="oauth_application",
            target_id=str(client.id),
            metadata={"name": client.application.name, "client_id": client.application.client_id},
            ip=ip,
        )
        client.application.delete()


def oauth_authorization_revoke(*, user: User, application_id: int, ip: str | None = None) -> int:
    """Revoke the user's consent to an application: every access and refresh token it
    holds for them. Returns how many access tokens were revoked (0: nothing to do)."""
    with transaction.atomic():
        tokens = list(
            AccessToken.objects.select_related("workspace_binding").filter(
                user=user, application_id=application_id
            )
        )
        workspaces = {
            t.workspace_binding.workspace_id for t in tokens if hasattr(t, "workspace_binding")
        }
        for token in tokens:
            token.revoke()
        for refresh in RefreshToken.objects.filter(
            user=user, application_id=application_id, revoked__isnull=True
        ):
            refresh.revoke()
        for workspace_id in workspaces or {None}:
            audit_record(
                action="oauth.revoke",
                actor_user=user,
                workspace_id=workspace_id,
                target_type="oauth_application",
                target_id=str(application_id),
                ip=ip,
            )
    return len(tokens)


# --- Dynamic client registration (RFC 7591) ---------------------------------------------

DCR_MAX_REDIRECT_URIS = 5
DCR_MAX_REDIRECT_URI_LENGTH = 512
DCR_MAX_NAME_LENGTH = 100
DCR_MAX_SOFTWARE_FIELD_LENGTH = 100
DCR_GRANT_TYPES = ("authorization_code", "refresh_token")
DCR_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# RFC 8252 §7.1: a private-use scheme is a reverse domain name, so it holds a period
# (which also keeps out javascript:, data:, file: and every other single-word scheme).
_PRIVATE_USE_SCHEME = re.compile(r"^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+$")
_NEVER_SCHEMES = ("javascript", "data", "vbscript", "file", "about", "blob", "ftp", "ws", "wss")


def _dcr_invalid(field: str, message: str) -> ClientRegistrationError:
    return ClientRegistrationError("invalid_client_metadata", f"{field}: {message}", field=field)


def _dcr_redirect_invalid(uri: str, message: str) -> ClientRegistrationError:
    return ClientRegistrationError(
        "invalid_redirect_uri", f"redirect_uris: {uri!r} {message}", field="redirect_uris"
    )


def validate_dynamic_redirect_uri(uri: str) -> str:
    """A redirect URI a dynamically registered (public, unverified) client may use:
    http on a loopback host (127.0.0.1, [::1], localhost; any port), a private-use
    scheme (`com.example.app:/callback`, RFC 8252 §7.1), or https on a host the operator
    listed in OAUTH2_DYNAMIC_REGISTRATION_HTTPS_HOSTS. No fragment, no wildcard, no
    credentials, no whitespace. Raises ClientRegistrationError (invalid_redirect_uri)."""
    if not uri:
        raise _dcr_redirect_invalid(uri, "is empty.")
    if len(uri) > DCR_MAX_REDIRECT_URI_LENGTH:
        raise _dcr_redirect_invalid(
            uri[:40] + "…", f"is longer than {DCR_MAX_REDIRECT_URI_LENGTH} characters."
        )
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in uri):
        raise _dcr_redirect_invalid(uri, "holds whitespace, control or non-ASCII characters.")
    if "#" in uri:
        raise _dcr_redirect_invalid(uri, "has a fragment.")
    if "*" in uri:
        raise _dcr_redirect_invalid(uri, "has a wildcard.")
    try:
        parsed = urlsplit(uri)
        parsed.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise _dcr_redirect_invalid(uri, "is not a valid URI.") from None
    scheme = parsed.scheme.lower()
    if "@" in parsed.netloc:
        raise _dcr_redirect_invalid(uri, "carries credentials.")
    if not scheme or scheme in _NEVER_SCHEMES:
        raise _dcr_redirect_invalid(uri, "uses a scheme that is never allowed.")
    if scheme == "http":
        if parsed.hostname not in DCR_LOOPBACK_HOSTS:
            raise _dcr_redirect_invalid(
                uri, "must use a loopback host (127.0.0.1, [::1] or localhost) with http."
            )
        return uri
    if scheme == "https":
        allowed = {h.lower() for h in settings.OAUTH2_DYNAMIC_REGISTRATION_HTTPS_HOSTS}
        if not parsed.hostname or parsed.hostname.lower() not in allowed:
            raise _dcr_redirect_invalid(
                uri,
                "is refused: dynamically registered clients redirect to a loopback address "
                "or a private-use scheme; this https host is not allowed by the operator.",
            )
        return uri
    if not _PRIVATE_USE_SCHEME.match(parsed.scheme):
        raise _dcr_redirect_invalid(
            uri,
            "uses a scheme that is not a private-use scheme: use a reverse domain name "
            "such as com.example.app:/callback (RFC 8252).",
        )
    return uri


def _dcr_string(metadata: Mapping[str, Any], field: str, *, max_length: int) -> str:
    value = metadata.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _dcr_invalid(field, "must be a string.")
    value = "".join(c for c in value if c.isprintable()).strip()
    if len(value) > max_length:
        raise _dcr_invalid(field, f"must be at most {max_length} characters.")
    return value


def _dcr_string_list(metadata: Mapping[str, Any], field: str) -> list[str] | None:
    value = metadata.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _dcr_invalid(field, "must be an array of strings.")
    return list(dict.fromkeys(value))


@dataclass(frozen=True)
class DynamicClient:
    """A client just registered: its application and the metadata the server accepted."""

    application: Application
    registration: DynamicClientRegistration
    metadata: dict[str, Any]


def dynamic_client_register(
    *, metadata: Mapping[str, Any], ip: str | None = None, user_agent: str = ""
) -> DynamicClient:
    """Register a public OAuth2 client from RFC 7591 metadata, anonymously: authorization
    code + PKCE (and refresh), `token_endpoint_auth_method` `none`, redirect URIs that
    stay on the user's device (validate_dynamic_redirect_uri). The consent page is never
    skipped for it. Audited as `oauth_client.register`.

    Raises ClientRegistrationError naming the field at fault, or `temporarily_unavailable`
    when OAUTH2_DYNAMIC_CLIENTS_PENDING_MAX registrations already wait for a first use.
    """
    uris = _dcr_string_list(metadata, "redirect_uris")
    if not uris:
        raise ClientRegistrationError(
            "invalid_redirect_uri",
            "redirect_uris: give at least one redirect URI.",
            field="redirect_uris",
        )
    if len(uris) > DCR_MAX_REDIRECT_URIS:
        raise ClientRegistrationError(
            "invalid_redirect_uri",
            f"redirect_uris: at most {DCR_MAX_REDIRECT_URIS} redirect URIs.",
            field="redirect_uris",
        )
    uris = [validate_dynamic_redirect_uri(uri) for uri in uris]

    grant_types = _dcr_string_list(metadata, "grant_types")
    if grant_types is None:
        grant_types = list(DCR_GRANT_TYPES)
    unsupported = [g for g in grant_types if g not in DCR_GRANT_TYPES]
    if unsupported:
        raise _dcr_invalid(
            "grant_types",
            f"{', '.join(unsupported)} not supported; use authorization_code (and refresh_token).",
        )
    if "authorization_code" not in grant_types:
        raise _dcr_invalid("grant_types", "must include authorization_code.")

    response_types = _dcr_string_list(metadata, "response_types")
    if response_types is None:
        response_types = ["code"]
    if response_types != ["code"]:
        raise _dcr_invalid("response_types", 'only "code" is supported.')

    # Omitted (or null) means "none" here: RFC 7591's default, client_secret_basic, is
    # not offered to anonymous registrants.
    auth_method = metadata.get("token_endpoint_auth_method") or "none"
    if auth_method != "none":
        raise _dcr_invalid(
            "token_endpoint_auth_method",
            'only "none" (a public client using PKCE) can register itself; a client with a '
            "secret is registered by a workspace admin (POST /api/v1/oauth-applications).",
        )

    scope = _dcr_string(metadata, "scope", max_length=1000)
    scopes = list(dict.fromkeys(scope.split()))
    unknown = [s for s in scopes if s not in OAUTH2_SCOPES]
    if unknown:
        raise _dcr_invalid("scope", f"unknown scopes: {', '.join(unknown)}.")

    name = _dcr_string(metadata, "client_name", max_length=DCR_MAX_NAME_LENGTH)
    software_id = _dcr_string(metadata, "software_id", max_length=DCR_MAX_SOFTWARE_FIELD_LENGTH)
    software_version = _dcr_string(
        metadata, "software_version", max_length=DCR_MAX_SOFTWARE_FIELD_LENGTH
    )

    cutoff = timezone.now() - timedelta(seconds=settings.OAUTH2_DYNAMIC_CLIENT_UNUSED_SECONDS)
    pending = DynamicClientRegistration.objects.filter(
        first_used_at__isnull=True, created_at__gt=cutoff
    ).count()
    if pending >= settings.OAUTH2_DYNAMIC_CLIENTS_PENDING_MAX:
        raise ClientRegistrationError(
            "temporarily_unavailable",
            "Too many clients registered recently have not been used yet; try again later.",
            status=503,
        )

    with transaction.atomic():
        application = Application.objects.create(
            name=name or "Unnamed client",
            user=None,
            client_type=Application.CLIENT_PUBLIC,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=" ".join(uris),
            client_secret="",
            hash_client_secret=True,
            algorithm=Application.RS256_ALGORITHM,
            skip_authorization=False,
            registration_source=Application.RegistrationSource.DCR,
        )
        registration = DynamicClientRegistration.objects.create(
            application=application,
            client_name=name,
            redirect_uris=uris,
            scope=" ".join(scopes),
            software_id=software_id,
            software_version=software_version,
            ip=_valid_ip(ip),
            user_agent=user_agent[:255],
        )
        audit_record(
            action="oauth_client.register",
            actor_user=None,
            workspace_id=None,
            target_type="oauth_application",
            target_id=application.client_id,
            metadata={
                "client_name": name,
                "redirect_uris": uris,
                "scope": " ".join(scopes),
                "software_id": software_id,
                "user_agent": user_agent[:255],
            },
            ip=ip,
        )
    accepted: dict[str, Any] = {
        "client_id": application.client_id,
        "client_id_issued_at": int(application.created.timestamp()),
        "client_name": application.name,
        "redirect_uris": uris,
        "grant_types": grant_types,
        "response_types": response_types,
        "token_endpoint_auth_method": "none",
    }
    if scopes:
        accepted["scope"] = " ".join(scopes)
    if software_id:
        accepted["software_id"] = software_id
    if software_version:
        accepted["software_version"] = software_version
    return DynamicClient(application=application, registration=registration, metadata=accepted)


def dynamic_client_mark_used(*, application: Application) -> None:
    """Record the first token issued to a dynamically registered client (idempotent; one
    UPDATE, matching nothing for other clients or once recorded)."""
    if application.registration_source != Application.RegistrationSource.DCR:
        return
    DynamicClientRegistration.objects.filter(
        application=application, first_used_at__isnull=True
    ).update(first_used_at=timezone.now())


def dynamic_clients_purge_unused(*, now: datetime | None = None) -> int:
    """Delete dynamically registered clients that got no token within
    OAUTH2_DYNAMIC_CLIENT_UNUSED_SECONDS of registering (with their grants). Idempotent;
    returns how many went. Their `oauth_client.register` audit events stay."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.OAUTH2_DYNAMIC_CLIENT_UNUSED_SECONDS)
    stale = Application.objects.filter(
        registration_source=Application.RegistrationSource.DCR,
        dynamic_registration__first_used_at__isnull=True,
        dynamic_registration__created_at__lte=cutoff,
    )
    count = 0
    for application in stale.iterator():
        application.delete()
        count += 1
    return count


# --- User administration (platform admins) ------------------------------------------


def admin_user_create(
    *, admin: User, email: str, name: str = "", password: str | None = None, is_staff: bool = False
) -> User:
    """Create a user (with their personal workspace and a verified email). Raises
    ValidationFailed for a taken email or a password the validators refuse."""
    if User.objects.filter(email__iexact=email.strip()).exists():
        raise ValidationFailed("A user with this email already exists.", field="email")
    if password:
        try:
            validate_password(password, User(email=email, name=name))
        except DjangoValidationError as exc:
            raise ValidationFailed(" ".join(exc.messages), field="password") from exc
    with transaction.atomic():
        user = user_create(email=email, password=password, name=name, is_staff=is_staff)
        EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
        audit_record(
            action="user.create",
            actor_user=admin,
            workspace_id=None,
            target_type="user",
            target_id=str(user.id),
            metadata={"email": user.email},
        )
    return user


def admin_user_set_active(*, admin: User, user: User, is_active: bool) -> User:
    """Disable or re-enable a user. A disabled user is refused with every credential
    (session, app JWT, API keys, OAuth2 tokens) on their next request."""
    if user.pk == admin.pk and not is_active:
        raise CannotDeleteSelf()
    if user.is_active != is_active:
        with transaction.atomic():
            user.is_active = is_active
            user.save(update_fields=["is_active"])
            audit_record(
                action="user.enable" if is_active else "user.disable",
                actor_user=admin,
                workspace_id=None,
                target_type="user",
                target_id=str(user.id),
                metadata={"email": user.email},
            )
    return user


def admin_user_delete(*, admin: User, user: User) -> None:
    """Delete a user. Their personal workspace and every workspace where they are the only
    member go with them (with all resources). Shared workspaces they do not solely own
    stay. Raises LastOwner when they are the last owner of a workspace that has other
    members (transfer ownership first)."""
    if user.pk == admin.pk:
        raise CannotDeleteSelf()
    with transaction.atomic():
        doomed: list[uuid.UUID] = []
        for membership in Membership.objects.filter(user=user).select_related("workspace"):
            workspace_id = membership.workspace_id
            members = Membership.objects.filter(workspace_id=workspace_id).count()
            if membership.workspace.is_personal or members == 1:
                doomed.append(workspace_id)
            elif (
                membership.role == Role.OWNER
                and workspace_owner_count(workspace_id=workspace_id) <= 1
            ):
                raise LastOwner(
                    f"{user.email} is the last owner of {membership.workspace.name!r}, which "
                    "has other members; make someone else owner first."
                )
        audit_record(
            action="user.delete",
            actor_user=admin,
            workspace_id=None,
            target_type="user",
            target_id=str(user.id),
            metadata={"email": user.email, "deleted_workspaces": [str(w) for w in doomed]},
        )
        Workspace.objects.filter(pk__in=doomed).delete()
        user.delete()


def admin_user_reset_mfa(*, admin: User, user: User) -> int:
    """Remove every MFA authenticator of the user (TOTP, recovery codes, keys), so they
    can sign in with their password and set MFA up again. Returns how many were removed."""
    with transaction.atomic():
        removed, _ = Authenticator.objects.filter(user=user).delete()
        audit_record(
            action="mfa.reset",
            actor_user=admin,
            workspace_id=None,
            target_type="user",
            target_id=str(user.id),
            metadata={"email": user.email, "removed": removed},
        )
    return removed


# --- the first administrator (make run) ------------------------------------------------


@dataclass(frozen=True)
class AdminAccount:
    """The first administrator as `ensure_admin` found or created it."""

    email: str
    password: str | None  # None: not known here (an existing account, or ADMIN_PASSWORD)
    created: bool


def mark_email_verified(user: User) -> None:
    """The administrator signs in at once: their address counts as verified (allauth's
    mandatory verification would otherwise ask for a code first)."""
    EmailAddress.objects.update_or_create(
        user=user,
        email__iexact=user.email,
        defaults={"email": user.email, "verified": True, "primary": True},
    )


def ensure_admin() -> AdminAccount:
    """The first superuser: created from ADMIN_EMAIL / ADMIN_PASSWORD (or a generated
    password) unless one exists. Idempotent."""
    existing = User.objects.filter(is_superuser=True).order_by("date_joined").first()
    if existing is not None:
        return AdminAccount(email=existing.email, password=None, created=False)
    email = os.environ.get("ADMIN_EMAIL", "admin@example.com")
    given = os.environ.get("ADMIN_PASSWORD")
    password = given or secrets.token_urlsafe(16)
    with transaction.atomic():
        user = user_create(email=email, password=password, is_staff=True, is_superuser=True)
        mark_email_verified(user)
    return AdminAccount(email=email, password=None if given else password, created=True)

"""Audit trail of sign-in and MFA events, which happen inside Django and allauth.

These receivers only record; they never change the outcome of what they observe.
"""

from typing import Any

from allauth.mfa import signals as mfa_signals
from django.contrib.auth import signals as auth_signals
from django.dispatch import receiver
from django.http import HttpRequest

from apps.core.api.ratelimit import client_address
from apps.users.models import User
from apps.users.services import audit_record


def _ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None

    return client_address(request) or None


@receiver(auth_signals.user_logged_in, dispatch_uid="users.audit_login")
def _audit_login(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    audit_record(action="login.success", actor_user=user, workspace_id=None, ip=_ip(request))


@receiver(auth_signals.user_login_failed, dispatch_uid="users.audit_login_failed")
def _audit_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    email = str(credentials.get("email") or credentials.get("username") or "")
    user = User.objects.filter(email__iexact=email).first() if email else None
    audit_record(
        action="login.failed",
        actor_user=user,
        workspace_id=None,
        metadata={"email": email[:254]},
        ip=_ip(request),
    )


def _audit_authenticator(
    action: str, request: HttpRequest | None, user: User, authenticator: Any, **metadata: Any
) -> None:
    audit_record(
        action=action,
        actor_user=user,
        workspace_id=None,
        target_type="authenticator",
        target_id=str(authenticator.pk),
        metadata=metadata or None,
        ip=_ip(request),
    )


@receiver(mfa_signals.authenticator_added, dispatch_uid="users.audit_mfa_added")
def _audit_mfa_added(
    sender: Any, request: HttpRequest | None, user: User, authenticator: Any, **kwargs: Any
) -> None:
    _audit_authenticator("mfa.add", request, user, authenticator, type=str(authenticator.type))


@receiver(mfa_signals.authenticator_removed, dispatch_uid="users.audit_mfa_removed")
def _audit_mfa_removed(
    sender: Any, request: HttpRequest | None, user: User, authenticator: Any, **kwargs: Any
) -> None:
    _audit_authenticator("mfa.remove", request, user, authenticator, type=str(authenticator.type))


@receiver(mfa_signals.authenticator_reset, dispatch_uid="users.audit_mfa_reset")
def _audit_mfa_reset(
    sender: Any, request: HttpRequest | None, user: User, authenticator: Any, **kwargs: Any
) -> None:
    _audit_authenticator("mfa.recovery_codes_reset", request, user, authenticator)


@receiver(mfa_signals.authentication_failed, dispatch_uid="users.audit_mfa_failed")
def _audit_mfa_failed(
    sender: Any, request: HttpRequest | None, user: User, authenticator: Any = None, **kwargs: Any
) -> None:
    audit_record(
        action="mfa.failed",
        actor_user=user,
        workspace_id=None,
        metadata={"type": str(getattr(authenticator, "type", ""))},
        ip=_ip(request),
    )

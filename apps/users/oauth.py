"""django-oauth-toolkit integration: the validator that binds every grant and token to
the workspace chosen on the consent page, and the OIDC claims."""

import hashlib
import logging
from datetime import timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.db.models import Min
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from apps.users.models import (
    DynamicClientRegistration,
    Membership,
    OAuthClient,
    OAuthCodeUse,
    OAuthWorkspaceBinding,
)
from apps.users.services import audit_record, dynamic_client_mark_used

logger = logging.getLogger(__name__)


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class PlatformOAuth2Validator(OAuth2Validator):
    """OAuth2Validator that carries the workspace binding from the consent page to the
    authorization code, from the code to the tokens, and across refresh rotations.

    `request.workspace_id` holds the binding while a request is processed.
    """

    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "email_verified": "email"}

    # --- authorization code ------------------------------------------------------------
    def _create_authorization_code(self, request: Any, code: Any, expires: Any = None) -> Grant:
        workspace_id = getattr(request, "workspace_id", None)
        if (
            workspace_id is None
            or not Membership.objects.filter(user=request.user, workspace_id=workspace_id).exists()
        ):
            raise errors.AccessDeniedError(
                description="Choose one of your workspaces.", request=request
            )
        grant = super()._create_authorization_code(request, code, expires)
        OAuthWorkspaceBinding.objects.create(grant=grant, workspace_id=workspace_id)
        return grant

    def validate_code(
        self, client_id: Any, code: Any, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        valid = super().validate_code(client_id, code, client, request, *args, **kwargs)
        if not valid:
            _revoke_tokens_of_replayed_code(code=code, client=client)
        if valid:
            binding = OAuthWorkspaceBinding.objects.filter(
                grant__code=code, grant__application=client
            ).first()
            if binding is None:
                return False
            request.workspace_id = binding.workspace_id
        return bool(valid)

    # --- refresh -----------------------------------------------------------------------
    def validate_refresh_token(
        self, refresh_token: Any, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        rt: RefreshToken = request.refresh_token_instance
        # An absolute lifetime: counted from the first token of the rotation family.
        lifetime = oauth2_settings.REFRESH_TOKEN_EXPIRE_SECONDS
        if lifetime and rt.token_family:
            started = RefreshToken.objects.filter(token_family=rt.token_family).aggregate(
                first=Min("created")
            )["first"]
            if started and started + timedelta(seconds=lifetime) <= timezone.now():
                return False
        binding = OAuthWorkspaceBinding.objects.filter(refresh_token=rt).first()
        if binding is None:
            return False
        request.workspace_id = binding.workspace_id
        return True

    # --- scopes ------------------------------------------------------------------------
    def validate_scopes(
        self, client_id: Any, scopes: Any, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        if not super().validate_scopes(client_id, scopes, client, request, *args, **kwargs):
            return False
        # A dynamically registered client that named its scopes asks for no others.
        if client is not None and client.registration_source == Application.RegistrationSource.DCR:
            registered = (
                DynamicClientRegistration.objects.filter(application=client)
                .values_list("scope", flat=True)
                .first()
            )
            if registered:
                return set(scopes).issubset(registered.split())
        return True

    # --- client credentials ------------------------------------------------------------
    def validate_grant_type(
        self, client_id: Any, grant_type: Any, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        if not super().validate_grant_type(client_id, grant_type, client, request, *args, **kwargs):
            return False
        if grant_type == "client_credentials":
            platform_client = OAuthClient.objects.filter(application=client).first()
            if platform_client is None:
                return False
            request.workspace_id = platform_client.workspace_id
        return True

    # --- token storage -----------------------------------------------------------------
    def _create_access_token(
        self, expires: Any, request: Any, token: Any, source_refresh_token: Any = None
    ) -> AccessToken:
        access_token = super()._create_access_token(expires, request, token, source_refresh_token)
        dynamic_client_mark_used(application=request.client)
        code = getattr(request, "code", None)
        if request.grant_type == "authorization_code" and code:
            OAuthCodeUse.objects.create(
                code_hash=_code_hash(code), application=request.client, access_token=access_token
            )
        workspace_id = getattr(request, "workspace_id", None)
        if workspace_id is not None:
            OAuthWorkspaceBinding.objects.create(
                access_token=access_token, workspace_id=workspace_id
            )
        return access_token

    def _create_refresh_token(
        self, request: Any, refresh_token_code: Any, access_token: Any, previous_refresh_token: Any
    ) -> RefreshToken:
        refresh_token = super()._create_refresh_token(
            request, refresh_token_code, access_token, previous_refresh_token
        )
        workspace_id = getattr(request, "workspace_id", None)
        if workspace_id is not None:
            OAuthWorkspaceBinding.objects.create(
                refresh_token=refresh_token, workspace_id=workspace_id
            )
        return refresh_token

    # --- OpenID Connect ----------------------------------------------------------------
    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        return {
            "email": user.email,
            "email_verified": _email_verified(user),
            "name": user.name,
        }


def _revoke_tokens_of_replayed_code(*, code: str, client: Any) -> None:
    """A code presented after it was exchanged: someone else may hold it, so the tokens
    its first use gave (and every refresh rotation since) are revoked and audited."""
    uses = list(
        OAuthCodeUse.objects.filter(code_hash=_code_hash(code), application=client)
        .select_related("access_token__user")
        .prefetch_related("access_token__workspace_binding")
    )
    for use in uses:
        access_token = use.access_token
        families = set(
            RefreshToken.objects.filter(access_token=access_token).values_list(
                "token_family", flat=True
            )
        )
        for refresh_token in RefreshToken.objects.filter(
            token_family__in=[f for f in families if f is not None], revoked__isnull=True
        ):
            refresh_token.revoke()
        binding = getattr(access_token, "workspace_binding", None)
        audit_record(
            action="oauth.code_replayed",
            actor_user=access_token.user,
            workspace_id=binding.workspace_id if binding else None,
            target_type="oauth_application",
            target_id=str(client.client_id),
            metadata={"revoked_access_token": str(access_token.id)},
        )
        logger.warning("authorization code replayed; its tokens are revoked")
        AccessToken.objects.filter(pk=access_token.pk).delete()


def _email_verified(user: Any) -> bool:
    return EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()

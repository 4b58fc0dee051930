"""HTML views of the identity app: the OAuth2 consent page and the OIDC discovery."""

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django import forms
from django.http import HttpResponse, JsonResponse
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.forms import AllowForm
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import AuthorizationView, ConnectDiscoveryInfoView
from oauthlib.oauth2.rfc6749.errors import InvalidRequestError

from apps.users.choices import Role
from apps.users.models import Membership, OAuthWorkspaceBinding
from apps.users.services import LOOPBACK_HOSTS, audit_record


class ConsentForm(AllowForm):
    workspace = forms.UUIDField(required=False)


def _is_loopback_http(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


class ConsentView(AuthorizationView):
    """The authorization endpoint: a consent page naming the app, its scopes and the
    workspace the token will act in (one of the user's; viewers cannot be chosen)."""

    template_name = "oauth2_provider/authorize.html"
    form_class = ConsentForm

    def validate_authorization_request(self, request: Any) -> Any:
        scopes, credentials = super().validate_authorization_request(request)
        # PKCE with S256 only: refuse "plain" before showing a consent page for it.
        if credentials.get("code_challenge_method") != "S256":
            raise OAuthToolkitError(
                error=InvalidRequestError(
                    description='PKCE is required with code_challenge_method "S256".',
                    state=credentials.get("state"),
                ),
                redirect_uri=credentials["redirect_uri"],
            )
        return scopes, credentials

    def _workspaces(self) -> list[Membership]:
        return list(
            Membership.objects.select_related("workspace")
            .filter(user=self.request.user)
            .exclude(role=Role.VIEWER)
            .order_by("-workspace__is_personal", "workspace__name")
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["memberships"] = self._workspaces()
        context["scope_pairs"] = list(
            zip(kwargs.get("scopes", []), kwargs.get("scopes_descriptions", []), strict=False)
        )
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        self._workspace_id = None
        if form.cleaned_data.get("allow"):
            chosen = form.cleaned_data.get("workspace")
            allowed = {m.workspace_id for m in self._workspaces()}
            if chosen not in allowed:
                form.add_error("workspace", "Choose one of your workspaces.")
                return self.form_invalid(form)
            self._workspace_id = chosen
        return super().form_valid(form)

    def create_authorization_response(
        self, request: Any, scopes: Any, credentials: Any, allow: Any
    ) -> Any:
        workspace_id = getattr(self, "_workspace_id", None)
        if workspace_id is None and allow:
            # Remembered consent (approval_prompt=auto): the workspace of the earlier grant.
            binding = (
                OAuthWorkspaceBinding.objects.filter(
                    access_token__user=request.user,
                    access_token__application__client_id=credentials["client_id"],
                )
                .order_by("-created_at")
                .first()
            )
            workspace_id = binding.workspace_id if binding else None
        credentials["workspace_id"] = workspace_id
        result = super().create_authorization_response(
            request=request, scopes=scopes, credentials=credentials, allow=allow
        )
        if allow and workspace_id is not None:
            audit_record(
                action="oauth.authorize",
                actor_user=request.user,
                workspace_id=workspace_id,
                target_type="oauth_application",
                target_id=str(credentials["client_id"]),
                metadata={"scopes": scopes if isinstance(scopes, str) else " ".join(scopes)},
                ip=request.META.get("REMOTE_ADDR"),
            )
        return result

    def redirect(self, redirect_to: str, application: Any) -> HttpResponse:
        # https everywhere, plus plain http to a loopback address for native apps
        # (RFC 8252 §7.3); the redirect URI itself was matched exactly beforehand.
        schemes = ["https"] + (["http"] if _is_loopback_http(redirect_to) else [])
        # RFC 9207: every authorization response carries `iss`, errors too (a refused
        # consent, a refused PKCE method): django-oauth-toolkit adds it to successes only.
        issuer = oauth2_settings.oauth2_authorization_server_issuer(self.request)
        return OAuth2ResponseRedirect(_with_iss(redirect_to, issuer), schemes)


def _with_iss(uri: str, issuer: str) -> str:
    """`uri` with the `iss` query parameter set (kept if already there)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "iss" for name, _ in query):
        return uri
    return urlunsplit(parts._replace(query=urlencode([*query, ("iss", issuer)])))


# What an ID token and the userinfo endpoint actually say (PlatformOAuth2Validator).
OIDC_CLAIMS = ["sub", "iss", "aud", "exp", "iat", "auth_time", "email", "email_verified", "name"]


class DiscoveryView(ConnectDiscoveryInfoView):
    """OpenID Connect discovery, true to what the server does: the grant types it
    accepts (the default when omitted would imply implicit), the claims it issues, and
    RS256 alone for ID tokens (HS256 would sign with a client's secret, which public
    clients do not have)."""

    def get(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, *args, **kwargs)
        data = json.loads(response.content)
        data["grant_types_supported"] = list(oauth2_settings.OAUTH2_GRANT_TYPES_SUPPORTED)
        data["claims_supported"] = OIDC_CLAIMS
        data["id_token_signing_alg_values_supported"] = ["RS256"]
        out = JsonResponse(data)
        out["Access-Control-Allow-Origin"] = "*"
        return out

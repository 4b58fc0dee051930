"""Non-API views of the identity app: the OAuth2 consent page, the discovery documents
and RFC 7591 dynamic client registration."""

import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.forms import AllowForm
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.models import Application
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import (
    AuthorizationView,
    ConnectDiscoveryInfoView,
    OAuthProtectedResourceMetadataView,
)
from oauthlib.oauth2.rfc6749.errors import InvalidRequestError

from apps.core.api.ratelimit import client_address, rate_hit
from apps.users.choices import Role
from apps.users.exceptions import ClientRegistrationError
from apps.users.models import Membership, OAuthWorkspaceBinding
from apps.users.services import (
    DCR_LOOPBACK_HOSTS,
    audit_record,
    dynamic_client_register,
)


class ConsentForm(AllowForm):
    workspace = forms.UUIDField(required=False)


def _is_loopback_http(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in DCR_LOOPBACK_HOSTS


def _is_dynamic(application: Any) -> bool:
    return bool(
        application is not None
        and application.registration_source == Application.RegistrationSource.DCR
    )


class ConsentView(AuthorizationView):
    """The authorization endpoint: a consent page naming the app, its scopes and the
    workspace the token will act in (one of the user's; viewers cannot be chosen)."""

    template_name = "oauth2_provider/authorize.html"
    form_class = ConsentForm

    def get(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        # A client that registered itself is unverified: the user consents every time,
        # whatever `approval_prompt` it sends (no silent re-authorization).
        client_id = request.GET.get("client_id")
        if (
            client_id
            and Application.objects.filter(
                client_id=client_id, registration_source=Application.RegistrationSource.DCR
            ).exists()
        ):
            request.GET = request.GET.copy()
            request.GET["approval_prompt"] = "force"
        return super().get(request, *args, **kwargs)

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
        application = kwargs.get("application")
        context["dynamic_client"] = _is_dynamic(application)
        if context["dynamic_client"]:
            target = urlsplit(kwargs.get("redirect_uri", ""))
            context["redirect_target"] = (
                f"{target.scheme}://{target.netloc}" if target.netloc else f"{target.scheme}:"
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
        # (RFC 8252 §7.3) and a private-use scheme the application registered (§7.1);
        # the redirect URI itself was matched exactly against the registered ones before.
        schemes = ["https"] + (["http"] if _is_loopback_http(redirect_to) else [])
        scheme = urlsplit(redirect_to).scheme
        if (
            scheme not in ("http", "https")
            and application is not None
            and scheme in {urlsplit(u).scheme for u in application.redirect_uris.split()}
        ):
            schemes.append(scheme)
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
        if oauth2_settings.DCR_ENABLED:
            # The same endpoint the RFC 8414 document names (OIDC Discovery §3).
            # Built like the other endpoints (on OIDC_ISSUER's host when it is set).
            data["registration_endpoint"] = self._get_endpoint_url(request, "dcr-register")
        out = JsonResponse(data)
        out["Access-Control-Allow-Origin"] = "*"
        return out


# What `/mcp` checks (McpView.scope_area): reading conversations lists the tools, writing
# them calls one. An MCP client asks for exactly these (the SDK requests every scope its
# resource's metadata lists), not for the whole API.
MCP_SCOPES = ["conversations:read", "conversations:write"]


class ProtectedResourceMetadataView(OAuthProtectedResourceMetadataView):
    """RFC 9728 metadata of `/api/v1` (every scope) and of `/mcp` (the scopes it checks)."""

    def get(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        self._is_mcp = request.path.rstrip("/").endswith("/mcp")
        return super().get(request, *args, **kwargs)  # type: ignore[no-any-return]

    def get_scopes_supported(self) -> list[str]:
        if self._is_mcp:
            return list(MCP_SCOPES)
        return super().get_scopes_supported()  # type: ignore[no-any-return]


# Metadata larger than this is not a client registration.
REGISTRATION_MAX_BYTES = 16 * 1024


def _registration_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@method_decorator(csrf_exempt, name="dispatch")
class ClientRegistrationView(View):
    """RFC 7591 dynamic client registration: anyone may register a public client (PKCE,
    redirects to the user's own device), limited per address, unless the operator turned
    registration off (OAUTH2_DYNAMIC_REGISTRATION). Errors per RFC 7591 §3.2.2."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        if not oauth2_settings.DCR_ENABLED:
            return _registration_error(
                404, "not_found", "Dynamic client registration is turned off on this server."
            )
        state = rate_hit(kind="oauth_register", ident=client_address(request))
        limits = {
            "X-RateLimit-Limit": str(state.limit),
            "X-RateLimit-Remaining": str(state.remaining),
            "X-RateLimit-Reset": str(state.reset),
        }
        if state.exceeded:
            wait = max(state.reset - int(time.time()), 1)
            return _registration_error(
                429,
                "too_many_requests",
                f"Too many client registrations from this address; retry in {wait} s.",
                {**limits, "Retry-After": str(wait)},
            )
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > REGISTRATION_MAX_BYTES:
            return _registration_error(
                400,
                "invalid_client_metadata",
                f"The client metadata is larger than {REGISTRATION_MAX_BYTES} bytes.",
                limits,
            )
        try:
            metadata = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return _registration_error(
                400, "invalid_client_metadata", "The body must be a JSON object.", limits
            )
        if not isinstance(metadata, dict):
            return _registration_error(
                400, "invalid_client_metadata", "The body must be a JSON object.", limits
            )
        try:
            client = dynamic_client_register(
                metadata=metadata,
                ip=client_address(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            )
        except ClientRegistrationError as refused:
            return _registration_error(refused.status, refused.error, refused.description, limits)
        response = JsonResponse(client.metadata, status=201)
        response["Cache-Control"] = "no-store"
        for name, value in limits.items():
            response[name] = value
        return response

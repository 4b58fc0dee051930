"""Non-API routes of the identity app: allauth headless, the OAuth2/OIDC server and its
well-known documents (mounted at the site root; the namespace is the one
django-oauth-toolkit reverses)."""

from django.urls import path, re_path
from oauth2_provider import views as oauth_views

from apps.users.views import (
    ClientRegistrationView,
    ConsentView,
    DiscoveryView,
    ProtectedResourceMetadataView,
)

app_name = "oauth2_provider"

urlpatterns = [
    path("oauth/authorize/", ConsentView.as_view(), name="authorize"),
    path("oauth/token/", oauth_views.TokenView.as_view(), name="token"),
    path("oauth/revoke_token/", oauth_views.RevokeTokenView.as_view(), name="revoke-token"),
    path("oauth/introspect/", oauth_views.IntrospectTokenView.as_view(), name="introspect"),
    path("oauth/userinfo/", oauth_views.UserInfoView.as_view(), name="user-info"),
    # RFC 7591; the name is the one django-oauth-toolkit's RFC 8414 view advertises.
    path("oauth/register/", ClientRegistrationView.as_view(), name="dcr-register"),
    re_path(
        r"^\.well-known/openid-configuration/?$",
        DiscoveryView.as_view(),
        name="oidc-connect-discovery-info",
    ),
    path(".well-known/jwks.json", oauth_views.JwksInfoView.as_view(), name="jwks-info"),
    # RFC 9728, one document per protected resource (path-component form): the REST API
    # at /api/v1 and the MCP endpoint at /mcp. The view derives `resource` from the path.
    re_path(
        r"^\.well-known/oauth-protected-resource/(?:api/v1|mcp)$",
        ProtectedResourceMetadataView.as_view(),
        name="oauth-resource-metadata",
    ),
    path(
        ".well-known/oauth-authorization-server",
        oauth_views.OAuthServerMetadataView.as_view(),
        name="oauth-server-metadata",
    ),
]

"""DRF authentication classes. Each returns (user, Credential).

Order in settings: API key (`Bearer ak_...`), OAuth2 access token (any other opaque
Bearer token), first-party app JWT (allauth headless, a three-part token), browser
session. A Bearer token that none accepts is a 401, never a fall-through to the session.
"""

from typing import Any

from django.http import HttpRequest
from rest_framework import authentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from apps.users.actors import SESSION_CREDENTIAL, Credential
from apps.users.choices import CredentialKind, Role
from apps.users.selectors import api_key_for_secret, oauth_access_token_for_secret
from apps.users.services import api_key_touch

API_KEY_PREFIX = "ak_"
_REALM = 'Bearer realm="api"'


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    return value


def _request_url(request: HttpRequest) -> str:
    """The absolute URL of `request` without its query, or "" when it has no host."""
    if not request.META.get("HTTP_HOST") and not request.META.get("SERVER_NAME"):
        return ""
    return request.build_absolute_uri(request.path)


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer ak_...`: a workspace API key."""

    def authenticate(self, request: Request) -> tuple[Any, Credential] | None:
        token = bearer_token(request._request)
        if token is None or not token.startswith(API_KEY_PREFIX):
            return None
        key = api_key_for_secret(secret=token)
        if key is None:
            raise AuthenticationFailed("Invalid, expired or revoked API key.")
        api_key_touch(key=key)
        credential = Credential(
            kind=CredentialKind.API_KEY,
            pk=str(key.id),
            workspace_id=key.workspace_id,
            scopes=frozenset(key.scopes),
            obj=key,
            membership=(key.workspace, Role(key.member_role)),  # type: ignore[attr-defined]
        )
        return key.user, credential

    def authenticate_header(self, request: Request) -> str:
        return _REALM


class OAuth2Authentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`: an OAuth2 access token (django-oauth-toolkit)."""

    def authenticate(self, request: Request) -> tuple[Any, Credential] | None:
        token = bearer_token(request._request)
        if token is None or token.startswith(API_KEY_PREFIX) or _is_jwt(token):
            return None
        found = oauth_access_token_for_secret(secret=token)
        if found is None:
            raise AuthenticationFailed("Invalid or expired access token.")
        access_token, user, workspace_id = found
        # RFC 8707: a token issued for one resource (`resource=https://host/mcp`, as MCP
        # clients ask) works there only. Outside an HTTP request (a WebSocket) there is
        # no URL to compare, so a restricted token is refused.
        if access_token.resource and not access_token.allows_audience(
            _request_url(request._request)
        ):
            raise AuthenticationFailed("This access token was issued for another resource.")
        credential = Credential(
            kind=CredentialKind.OAUTH2,
            pk=str(access_token.id),
            workspace_id=workspace_id,
            scopes=frozenset(access_token.scope.split()),
            obj=access_token,
        )
        return user, credential

    def authenticate_header(self, request: Request) -> str:
        return _REALM


class AppJwtAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <jwt>`: the access token allauth headless gives first-party
    apps (`/_allauth/app/v1/...`). It acts like the browser session of that user."""

    def authenticate(self, request: Request) -> tuple[Any, Credential] | None:
        token = bearer_token(request._request)
        if token is None or not _is_jwt(token):
            return None
        from allauth.headless.tokens.strategies.jwt.internal import validate_access_token

        payload = validate_access_token(token)
        if payload is None:
            raise AuthenticationFailed("Invalid or expired access token.")
        user, _ = payload
        if not user.is_active:
            raise AuthenticationFailed("This account is disabled.")
        return user, SESSION_CREDENTIAL

    def authenticate_header(self, request: Request) -> str:
        return _REALM


class SessionAuthentication(authentication.SessionAuthentication):
    """The browser session (allauth login), with CSRF enforced for unsafe methods."""

    def authenticate(self, request: Request) -> tuple[Any, Credential] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        return user, SESSION_CREDENTIAL

    def authenticate_header(self, request: Request) -> str:
        # A header here makes DRF answer 401 (not 403) to requests with no credentials.
        return _REALM


BEARER_AUTHENTICATORS = (ApiKeyAuthentication, OAuth2Authentication, AppJwtAuthentication)


def authenticate_bearer(authorization: str) -> tuple[Any, Credential]:
    """The (user, Credential) of an `Authorization` header value, for transports outside
    DRF (WebSockets): the same API keys, OAuth2 tokens and app JWTs as the REST API.
    Raises AuthenticationFailed."""
    django_request = HttpRequest()
    django_request.META["HTTP_AUTHORIZATION"] = authorization
    request = Request(django_request)
    if bearer_token(django_request) is None:
        raise AuthenticationFailed("Expected `Authorization: Bearer <token>`.")
    for authenticator in BEARER_AUTHENTICATORS:
        result = authenticator().authenticate(request)
        if result is not None:
            return result
    raise AuthenticationFailed("Invalid or expired token.")

"""DRF authentication classes. Each returns (user, Credential)."""

from typing import Any

from rest_framework import authentication
from rest_framework.request import Request

from apps.users.actors import SESSION_CREDENTIAL, Credential


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
        return 'Bearer realm="api"'

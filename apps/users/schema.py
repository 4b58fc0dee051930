"""How the API's credentials appear in the OpenAPI schema."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from apps.users.scopes import OAUTH2_SCOPES


class SessionScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apps.users.authentication.SessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "Browser session from the sign-in flow; unsafe methods need the "
            "CSRF token in X-CSRFToken.",
        }


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apps.users.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "ak_…",
            "description": "A workspace API key (`Authorization: Bearer ak_…`), limited by "
            "its scopes. See docs/auth.md.",
        }


class OAuth2Scheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apps.users.authentication.OAuth2Authentication"
    name = "oauth2"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "oauth2",
            "description": "OAuth2 access token of a third-party app, bound to one workspace.",
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": "/oauth/authorize/",
                    "tokenUrl": "/oauth/token/",
                    "refreshUrl": "/oauth/token/",
                    "scopes": OAUTH2_SCOPES,
                },
                "clientCredentials": {"tokenUrl": "/oauth/token/", "scopes": OAUTH2_SCOPES},
            },
        }

    def get_security_requirement(self, auto_schema: Any) -> dict[str, list[str]]:
        area = getattr(auto_schema.view, "scope_area", "")
        write = auto_schema.method not in ("GET", "HEAD", "OPTIONS")
        mode = "write" if write else "read"
        if not area:
            return {self.name: []}
        return {self.name: [f"{area}:{mode}"]}


class AppJwtScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apps.users.authentication.AppJwtAuthentication"
    name = "appJwt"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Access token a first-party app got from /_allauth/app/v1/auth/… "
            "(acts like the user's browser session).",
        }

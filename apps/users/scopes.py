"""The scopes of API keys and OAuth2 tokens (one list for both; see docs/auth.md).

`read` / `write` cover every area; `<area>:read` / `<area>:write` one area. A write scope
includes the matching read. Views declare their area with `scope_area`.
"""

SCOPE_AREAS = (
    "workspaces",
    "agents",
    "conversations",
    "knowledge",
    "tools",
    "providers",
    "tasks",
    "usage",
)

API_SCOPES: dict[str, str] = {
    "read": "Read everything in the workspace",
    "write": "Read and change everything in the workspace",
}
for _area in SCOPE_AREAS:
    API_SCOPES[f"{_area}:read"] = f"Read {_area}"
    API_SCOPES[f"{_area}:write"] = f"Read and change {_area}"

# OpenID Connect scopes: identity only, no API access.
OIDC_SCOPES: dict[str, str] = {
    "openid": "Know who you are (OpenID Connect)",
    "profile": "See your name",
    "email": "See your email address",
}

OAUTH2_SCOPES: dict[str, str] = {**API_SCOPES, **OIDC_SCOPES}

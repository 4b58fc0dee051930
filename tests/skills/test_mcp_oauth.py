"""MCP OAuth 2.1 through the SDK's client auth, against the test server's embedded
authorization server (dynamic registration, PKCE, code exchange, refresh)."""

import os
import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from apps.skills.models import McpServer, Tool
from tests.helpers import assert_error
from tests.mcp_server.fixtures import run_mcp_server

pytestmark = pytest.mark.slow
SERVERS = "/api/v1/mcp/servers"
REDIRECT = "https://platform.example/api/v1/mcp/oauth/callback"


@pytest.fixture
def oauth_server(allow_loopback):
    os.environ["TEST_MCP_ACCESS_TTL"] = "3"
    try:
        with run_mcp_server("http", oauth=True) as server:
            yield server
    finally:
        os.environ.pop("TEST_MCP_ACCESS_TTL", None)


def authorize(api, server_id):
    response = api.post(
        f"{SERVERS}/{server_id}/oauth/start", {"redirect_uri": REDIRECT}, format="json"
    )
    assert response.status_code == 200, response.content
    url = response.json()["data"]["authorization_url"]
    # The user's browser visits the authorization server, which approves at once and
    # redirects back to the platform's callback with the code.
    answer = httpx.get(url, follow_redirects=False)
    assert answer.status_code in (302, 307), answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT)
    params = parse_qs(urlparse(location).query)
    return url, params["state"][0], params["code"][0]


def test_oauth_server_connects_after_authorization_and_refreshes_tokens(
    api, workspace, oauth_server, close_pool
):
    response = api.post(
        SERVERS,
        {
            "name": "secure",
            "transport": "streamable_http",
            "url": oauth_server.url,
            "auth_type": "oauth",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["status"] == "needs_authorization"
    assert data["oauth_authorized"] is False
    server_id = data["id"]

    url, state, code = authorize(api, server_id)
    query = parse_qs(urlparse(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [REDIRECT]
    # A wrong state is refused and changes nothing.
    assert_error(
        api.get("/api/v1/mcp/oauth/callback", {"state": "forged", "code": code}),
        400,
        "mcp_oauth_failed",
    )
    response = api.get("/api/v1/mcp/oauth/callback", {"state": state, "code": code})
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["status"] == "connected"
    assert data["oauth_authorized"] is True
    assert data["tool_count"] == 9
    server = McpServer.objects.get(id=server_id)
    assert server.oauth_pending == ""
    stored = server.oauth_tokens
    assert "access_token" in stored  # decrypted by the field
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT oauth_tokens FROM skills_mcpserver")
        raw = cursor.fetchone()[0]
    assert "access_token" not in raw  # encrypted at rest
    # The state cannot be replayed.
    assert_error(
        api.get("/api/v1/mcp/oauth/callback", {"state": state, "code": code}),
        400,
        "mcp_oauth_failed",
    )
    stats = httpx.get(f"{oauth_server.base}/test/stats").json()
    assert stats == {"by_code": 1, "by_refresh": 0, "registered": 1}

    # The access token lives 3 s: after that the SDK refreshes it before calling.
    time.sleep(3.5)
    echo = Tool.objects.get(mcp_server_id=server_id, remote_name="echo")
    response = api.post(
        f"/api/v1/tools/{echo.id}/exec", {"arguments": {"text": "hi"}}, format="json"
    )
    assert response.json()["data"] == {
        "content": "echo: hi",
        "is_error": False,
        "data": {"structured": {"result": "echo: hi"}},
    }
    stats = httpx.get(f"{oauth_server.base}/test/stats").json()
    assert stats == {"by_code": 1, "by_refresh": 1, "registered": 1}
    server.refresh_from_db()
    assert server.oauth_tokens != stored


def test_oauth_server_without_authorization_fails_the_call_cleanly(
    api, workspace, oauth_server, close_pool
):
    server = McpServer.objects.create(
        workspace=workspace,
        name="s",
        transport="streamable_http",
        url=oauth_server.url,
        auth_type="oauth",
    )
    Tool.objects.create(
        workspace=workspace,
        name="s_echo",
        source="mcp",
        mcp_server=server,
        remote_name="echo",
        parameters={"type": "object"},
    )
    from asgiref.sync import async_to_sync

    from apps.core.tools import ToolContext
    from apps.skills.selectors import tool_specs_for

    spec = tool_specs_for(workspace_id=workspace.id, tool_ids=[Tool.objects.get().id])[0]
    result = async_to_sync(spec.execute)(
        {"text": "x"}, ToolContext(workspace_id=workspace.id, user_id=None)
    )
    assert result.is_error is True
    assert result.content == (
        "The MCP server needs OAuth authorization: a workspace member must authorize it first."
    )
    stats = httpx.get(f"{oauth_server.base}/test/stats").json()
    assert stats == {"by_code": 0, "by_refresh": 0, "registered": 0}

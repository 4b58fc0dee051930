"""The official MCP SDK's OAuth client (`OAuthClientProvider`) against the running
platform, with nothing registered beforehand: a bare 401 from /mcp leads it to the
protected resource metadata, then to the authorization server metadata; it registers
itself (RFC 7591), sends the user's browser (here an httpx client carrying a signed-in
session) to the consent page, exchanges the code with PKCE, and calls an agent."""

import time
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import httpx2
import pytest
from bs4 import BeautifulSoup
from django.conf import settings
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from oauth2_provider.models import AccessToken, Application, RefreshToken

from apps.conversations.models import Conversation
from apps.users.models import AuditEvent, DynamicClientRegistration
from tests.users.oauth_helpers import session_cookie_for

pytestmark = pytest.mark.slow

CALLBACK = "http://127.0.0.1:33418/callback"


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class SignedInBrowser:
    """The user's browser: opens the authorization URL with their session, reads the
    consent page, approves it for `workspace_id`, and keeps where it was redirected."""

    def __init__(self, base_url: str, user, workspace_id) -> None:
        self.base_url = base_url
        self.cookie = session_cookie_for(user)
        self.workspace_id = workspace_id
        self.pages: list[str] = []
        self.authorization_urls: list[str] = []
        self.location = ""

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        async with httpx.AsyncClient(
            base_url=self.base_url,
            cookies={settings.SESSION_COOKIE_NAME: self.cookie},
            follow_redirects=False,
            timeout=30,
        ) as browser:
            page = await browser.get(authorization_url)
            assert page.status_code == 200, page.text[:500]
            self.pages.append(page.text)
            form = BeautifulSoup(page.text, "html.parser").find("form", id="authorizationForm")
            data = {
                field["name"]: field.get("value", "")
                for field in form.find_all("input", type="hidden")
                if field.get("name")
            }
            data.update(workspace=str(self.workspace_id), allow="Authorize")
            answer = await browser.post(
                str(page.url), data=data, headers={"Referer": str(page.url)}
            )
            assert answer.status_code == 302, answer.text[:500]
            self.location = answer.headers["Location"]

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.location.startswith(CALLBACK + "?"), self.location
        query = parse_qs(urlsplit(self.location).query)
        return AuthorizationCodeResult(
            code=query["code"][0], state=query["state"][0], iss=query["iss"][0]
        )


def test_the_mcp_sdk_oauth_client_registers_itself_and_calls_an_agent(
    live, user, workspace, chat_agent, scripted_llm
):
    url = f"{live.url}/mcp"
    storage = MemoryStorage()
    browser = SignedInBrowser(live.url, user, workspace.id)
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="SDK test client",
            redirect_uris=[CALLBACK],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    scripted_llm.push("Answer over OAuth.", "Title")

    async def session():
        http = httpx2.AsyncClient(auth=provider, timeout=30)
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            tools = await client.list_tools()
            answer = await client.call_tool("ask_helper", {"question": "Hello with OAuth"})
            return tools, answer

    tools, answer = anyio.run(session)

    assert [t.name for t in tools.tools] == ["ask_helper"]
    assert answer.is_error is False
    assert answer.content[0].text == "Answer over OAuth."
    assert scripted_llm.requests[0]["messages"][-1]["content"] == "Hello with OAuth"

    # It registered itself through the advertised endpoint, as a public client.
    app = Application.objects.get()
    assert app.registration_source == "dcr"
    assert app.client_type == "public"
    assert app.name == "SDK test client"
    assert storage.client_info.client_id == app.client_id
    assert storage.client_info.token_endpoint_auth_method == "none"
    assert storage.client_info.client_secret is None
    registration = DynamicClientRegistration.objects.get()
    assert registration.ip == "127.0.0.1"
    assert registration.first_used_at is not None
    assert AuditEvent.objects.filter(
        action="oauth_client.register", target_id=app.client_id, ip="127.0.0.1"
    ).exists()

    # The user saw the consent page, marked unverified, and asked for the /mcp scopes only.
    assert len(browser.pages) == 1
    assert "registered itself dynamically" in browser.pages[0]
    query = parse_qs(urlsplit(browser.authorization_urls[0]).query)
    assert query["scope"] == ["conversations:read conversations:write"]
    assert query["resource"] == [url]
    assert query["code_challenge_method"] == ["S256"]

    # The token acts for the user in the chosen workspace, for /mcp only (RFC 8707).
    token = AccessToken.objects.get()
    assert token.user_id == user.id
    assert token.application_id == app.id
    assert token.resource == [url]
    assert token.workspace_binding.workspace_id == workspace.id
    assert sorted(token.scope.split()) == ["conversations:read", "conversations:write"]
    conversation = Conversation.objects.get()
    assert conversation.workspace_id == workspace.id
    api = httpx.get(
        f"{live.url}/api/v1/me", headers={"Authorization": f"Bearer {storage.tokens.access_token}"}
    )
    assert api.status_code == 401

    # Expired: the SDK refreshes (with `resource` again) without asking the user; the
    # refresh token rotates and the new token keeps the workspace and the audience.
    first = storage.tokens
    provider.context.token_expiry_time = time.time() - 1

    async def list_again():
        http = httpx2.AsyncClient(auth=provider, timeout=30)
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            return await client.list_tools()

    assert [t.name for t in anyio.run(list_again).tools] == ["ask_helper"]
    assert len(browser.pages) == 1
    assert storage.tokens.access_token != first.access_token
    assert storage.tokens.refresh_token != first.refresh_token
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1
    fresh = AccessToken.objects.exclude(pk=token.pk).get()
    assert fresh.resource == [url]
    assert fresh.workspace_binding.workspace_id == workspace.id

"""The platform's own MCP endpoint, used by the official `mcp` SDK client."""

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.agents.factories import make_agent
from tests.users.factories import make_api_key

pytestmark = pytest.mark.slow


async def _session(url, key, action):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        return await action(client)


def _run(url, key, action):
    return anyio.run(_session, url, key, action)


def test_agents_are_tools_and_answer(live, user, workspace, chat_agent, scripted_llm, outsider):
    make_agent(workspace=workspace, user=user, name="Second", slug="second-one")
    _, key = make_api_key(user=user, workspace=workspace)
    url = f"{live.url}/mcp"

    async def list_tools(client):
        return await client.list_tools()

    tools = _run(url, key, list_tools).tools
    assert sorted(t.name for t in tools) == ["ask_helper", "ask_second_one"]
    assert tools[0].input_schema["required"] == ["question"]

    scripted_llm.push("MCP answer.", "Title")

    async def ask(client):
        return await client.call_tool("ask_helper", {"question": "Hello over MCP"})

    result = _run(url, key, ask)
    assert result.is_error is False
    assert result.content[0].text == "MCP answer."
    assert result.structured_content["answer"] == "MCP answer."
    assert scripted_llm.requests[0]["messages"][-1]["content"] == "Hello over MCP"


def test_mcp_needs_a_credential_and_hides_other_workspaces(live, user, workspace, chat_agent):
    import httpx

    r = httpx.post(
        f"{live.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 401
    from apps.users.models import Membership
    from tests.users.factories import UserFactory

    mallory = UserFactory(email="mallory2@example.com")
    ws = Membership.objects.get(user=mallory).workspace
    make_agent(workspace=ws, user=mallory, name="Theirs", slug="theirs")
    _, key = make_api_key(user=mallory, workspace=ws)

    async def list_tools(client):
        return await client.list_tools()

    assert [t.name for t in _run(f"{live.url}/mcp", key, list_tools).tools] == ["ask_theirs"]


def test_a_read_scope_lists_tools_but_cannot_call_them(live, user, workspace, chat_agent):
    _, key = make_api_key(user=user, workspace=workspace, scopes=("conversations:read",))

    async def both(client):
        listed = await client.list_tools()
        called = await client.call_tool("ask_helper", {"question": "hi"})
        return listed, called

    listed, called = _run(f"{live.url}/mcp", key, both)
    assert [t.name for t in listed.tools] == ["ask_helper"]
    assert called.is_error is True
    assert "scopes" in called.content[0].text
    from apps.conversations.models import Conversation

    assert Conversation.objects.count() == 0


def test_a_scope_of_another_area_is_refused(live, user, workspace, chat_agent):
    import httpx

    _, key = make_api_key(user=user, workspace=workspace, scopes=("knowledge:read",))
    r = httpx.post(
        f"{live.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 403

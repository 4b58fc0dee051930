"""An agent run (the agents app's engine, the scripted model server over real HTTP) that
calls an MCP tool on the real test server, and one that loads a skill."""

import asyncio
import io
import json

import pytest
from asgiref.sync import async_to_sync

from apps.agents.engine import run_turn
from apps.core.tools import ToolContext
from apps.providers.scripted import Reply, ToolCall
from apps.providers.types import UsageContext
from apps.skills.mcp_client import POOL
from apps.skills.models import Tool
from tests.agents.test_engine import MemoryHooks, make_agent, user_message
from tests.providers.factories import make_scripted_provider
from tests.skills.factories import SKILL_MD, skill_zip

pytestmark = pytest.mark.slow


def run(agent, text):
    hooks = MemoryHooks()

    async def go():
        try:
            return await run_turn(
                agent=agent,
                history=[user_message(text)],
                hooks=hooks,
                context=ToolContext(
                    workspace_id=agent.workspace_id, user_id=None, agent_id=agent.agent_id
                ),
                cancel=asyncio.Event(),
                usage=UsageContext(workspace_id=agent.workspace_id, agent_id=agent.agent_id),
            )
        finally:
            await POOL.aclose()

    return async_to_sync(go)(), hooks


def tool_messages(request):
    return [m for m in request["messages"] if m["role"] == "tool"]


def test_agent_run_calls_an_mcp_tool(api, workspace, scripted_llm, mcp_http):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    server_id = api.post(
        "/api/v1/mcp/servers",
        {"name": "demo", "transport": "streamable_http", "url": mcp_http.url},
        format="json",
    ).json()["data"]["id"]
    add = Tool.objects.get(mcp_server_id=server_id, remote_name="add")
    agent = make_agent(workspace, builtin_tools=(), tool_ids=(add.id,))
    scripted_llm.push(Reply(tool_calls=[ToolCall("demo_add", {"a": 20, "b": 22})]), "It is 42.")
    outcome, hooks = run(agent, "What is 20 + 22?")
    requests = [r for r in scripted_llm.requests if "messages" in r]
    assert [t["function"]["name"] for t in requests[0]["tools"]] == ["demo_add"]
    assert requests[0]["tools"][0]["function"]["parameters"]["required"] == ["a", "b"]
    results = tool_messages(requests[1])
    assert [m["content"] for m in results] == ["42"]
    assert hooks.of("tool.result")[0]["is_error"] is False
    assert outcome.status == "completed", outcome


def test_agent_run_survives_a_dead_mcp_server(api, workspace, scripted_llm, mcp_http):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    server_id = api.post(
        "/api/v1/mcp/servers",
        {"name": "demo", "transport": "streamable_http", "url": mcp_http.url},
        format="json",
    ).json()["data"]["id"]
    echo = Tool.objects.get(mcp_server_id=server_id, remote_name="echo")
    mcp_http.stop()
    agent = make_agent(workspace, builtin_tools=(), tool_ids=(echo.id,))
    scripted_llm.push(Reply(tool_calls=[ToolCall("demo_echo", {"text": "hi"})]), "Sorry.")
    outcome, hooks = run(agent, "Echo hi")
    requests = [r for r in scripted_llm.requests if "messages" in r]
    assert [m["content"] for m in tool_messages(requests[1])] == [
        "MCP server unavailable: Could not connect to the server."
    ]
    assert hooks.of("tool.result")[0]["is_error"] is True
    assert outcome.status == "completed", outcome


def test_agent_run_loads_a_skill(api, workspace, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    upload = io.BytesIO(skill_zip())
    upload.name = "s.zip"
    version = api.post("/api/v1/skills/upload", {"file": upload}, format="multipart").json()["data"]
    agent = make_agent(workspace, builtin_tools=(), skill_ids=(version["id"],))
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("load_skill", {"name": "pdf-tools"})]),
        Reply(
            tool_calls=[
                ToolCall("read_skill_file", {"skill": "pdf-tools", "path": "reference/tables.md"})
            ]
        ),
        "Use camelot.",
    )
    outcome, hooks = run(agent, "How do I get tables out of a PDF?")
    requests = [r for r in scripted_llm.requests if "messages" in r]
    system = requests[0]["messages"][0]["content"]
    assert "- pdf-tools: Extract text and tables from PDF files." in system
    assert "Use `scripts/extract.py`" not in system  # progressive disclosure
    assert sorted(t["function"]["name"] for t in requests[0]["tools"]) == [
        "load_skill",
        "read_skill_file",
    ]
    loaded = tool_messages(requests[1])[0]["content"]
    assert loaded.startswith(SKILL_MD)
    assert tool_messages(requests[2])[-1]["content"] == "# Tables\nUse camelot.\n"
    assert outcome.status == "completed", outcome
    assert json.dumps(hooks.of("tool.result")[0])  # serialisable events

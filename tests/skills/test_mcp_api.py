import pytest

from apps.core.tools import ToolContext
from apps.skills.choices import McpStatus
from apps.skills.models import McpServer, StdioCommand, Tool
from apps.skills.selectors import tool_specs_for
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.skills.factories import stdio_command

pytestmark = pytest.mark.slow

SERVERS = "/api/v1/mcp/servers"
ALL_TOOLS = [
    "add",
    "crash",
    "echo",
    "enable_extra",
    "fail",
    "picture",
    "slow",
    "structured",
    "wipe",
]


def register(api, **data):
    return api.post(
        SERVERS, {"name": "demo", "transport": "streamable_http", **data}, format="json"
    )


def test_register_streamable_http_server_discovers_tools(api, workspace, mcp_http):
    response = register(api, url=mcp_http.url, headers={"X-Team": "secret-team-header-value"})
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["status"] == "connected"
    assert data["status_reason"] == ""
    assert data["server_info"]["name"] == "test-mcp"
    assert data["tool_count"] == 9
    assert data["headers"] == {"X-Team": "…alue"}
    assert [p["name"] for p in data["prompts"]] == ["greet"]
    assert [r["uri"] for r in data["resources"]] == ["test://readme"]
    server = McpServer.objects.get(id=data["id"])
    assert sorted(t.remote_name for t in server.tools.all()) == ALL_TOOLS
    echo = server.tools.get(remote_name="echo")
    assert echo.name == "demo_echo"
    assert echo.parameters["required"] == ["text"]
    # The header is stored encrypted, never in clear in the column.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT headers FROM skills_mcpserver WHERE id = %s",
            [server.id.hex if connection.vendor == "sqlite" else server.id],
        )
        raw = cursor.fetchone()[0]
    assert "secret-team-header-value" not in raw


def test_mcp_tool_call_through_tool_specs(api, workspace, mcp_http, close_pool):
    response = register(api, url=mcp_http.url)
    server_id = response.json()["data"]["id"]
    tools = Tool.objects.filter(mcp_server_id=server_id)
    specs = {
        s.name: s for s in tool_specs_for(workspace_id=workspace.id, tool_ids=[t.id for t in tools])
    }
    ctx = ToolContext(workspace_id=workspace.id, user_id=None)
    from asgiref.sync import async_to_sync

    async def calls():
        from apps.skills.mcp_client import POOL

        try:
            return [
                await specs["demo_echo"].execute({"text": "hi"}, ctx),
                await specs["demo_structured"].execute({"city": "Paris"}, ctx),
                await specs["demo_picture"].execute({}, ctx),
                await specs["demo_fail"].execute({"reason": "nope"}, ctx),
                await specs["demo_add"].execute({"a": "x"}, ctx),
            ]
        finally:
            await POOL.aclose()

    echo, structured, picture, fail, invalid = async_to_sync(calls)()
    assert (echo.content, echo.is_error) == ("echo: hi", False)
    assert structured.data["structured"] == {"city": "Paris", "temperature_c": 21}
    assert structured.is_error is False
    assert picture.content == "a pixel\n[image image/png]"
    assert picture.data["content"][0] == {
        "type": "image",
        "mimeType": "image/png",
        "data": picture.data["content"][0]["data"],
    }
    assert fail.is_error is True
    assert "failed on purpose: nope" in fail.content
    assert invalid.is_error is True
    assert invalid.content.startswith("Invalid arguments:")


def test_refresh_discovers_a_tool_the_server_added(api, workspace, mcp_http):
    server_id = register(api, url=mcp_http.url).json()["data"]["id"]
    echo = Tool.objects.get(mcp_server_id=server_id, remote_name="enable_extra")
    response = api.post(f"/api/v1/tools/{echo.id}/exec", {"arguments": {}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["content"] == "multiply added"
    assert not Tool.objects.filter(mcp_server_id=server_id, remote_name="multiply").exists()
    response = api.post(f"{SERVERS}/{server_id}/refresh")
    assert response.status_code == 200
    assert response.json()["data"]["tool_count"] == 10
    multiply = Tool.objects.get(mcp_server_id=server_id, remote_name="multiply")
    assert multiply.name == "demo_multiply"
    assert multiply.description == "Multiply two integers."


def test_server_that_dies_mid_call_fails_the_call_not_the_caller(
    api, workspace, mcp_http, close_pool
):
    server_id = register(api, url=mcp_http.url).json()["data"]["id"]
    crash = Tool.objects.get(mcp_server_id=server_id, remote_name="crash")
    echo = Tool.objects.get(mcp_server_id=server_id, remote_name="echo")
    specs = {
        s.name: s for s in tool_specs_for(workspace_id=workspace.id, tool_ids=[crash.id, echo.id])
    }
    ctx = ToolContext(workspace_id=workspace.id, user_id=None)
    from asgiref.sync import async_to_sync

    async def calls():
        from apps.skills.mcp_client import POOL

        try:
            first = await specs["demo_crash"].execute({}, ctx)
            second = await specs["demo_echo"].execute({"text": "still there?"}, ctx)
            return first, second
        finally:
            await POOL.aclose()

    first, second = async_to_sync(calls)()
    assert first.is_error is True
    # How the dying connection surfaces depends on timing (the stream closing, or the
    # transport failing first): either way the call fails with a connection error.
    assert first.content.startswith("MCP server connection failed: "), first.content
    # The next call tries to reconnect, fails cleanly, and says so.
    assert second.is_error is True
    assert second.content.startswith("MCP server unavailable: "), second.content
    # The refresh reports the dead server as an error status with a reason.
    response = api.post(f"{SERVERS}/{server_id}/refresh")
    data = response.json()["data"]
    assert data["status"] == McpStatus.ERROR
    assert data["status_reason"]


def test_stdio_server_from_operator_registry(api, workspace, close_pool):
    stdio_command()
    response = api.get("/api/v1/mcp/commands")
    assert [c["name"] for c in response.json()["data"]] == ["test-server"]
    assert "command" not in response.json()["data"][0]
    response = api.post(
        SERVERS,
        {"name": "local", "transport": "stdio", "stdio_command": "test-server"},
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["status"] == "connected", data
    assert data["stdio_command"] == "test-server"
    tool = Tool.objects.get(mcp_server_id=data["id"], remote_name="add")
    response = api.post(
        f"/api/v1/tools/{tool.id}/exec", {"arguments": {"a": 2, "b": 3}}, format="json"
    )
    assert response.json()["data"]["content"] == "5"
    assert response.json()["data"]["is_error"] is False


@pytest.mark.parametrize(
    "payload",
    [
        {"transport": "stdio", "command": "bash", "args": ["-c", "id"]},
        {"transport": "stdio", "stdio_command": "test-server", "env": {"LD_PRELOAD": "x"}},
        {"transport": "stdio", "stdio_command": "test-server", "args": ["--evil"]},
        {"transport": "stdio", "stdio_command": "not-in-registry"},
    ],
)
def test_user_cannot_register_a_stdio_command(api, workspace, payload):
    stdio_command()
    before = (McpServer.objects.count(), StdioCommand.objects.count())
    response = api.post(SERVERS, {"name": "x", **payload}, format="json")
    code = "stdio_command_not_found" if "not-in-registry" in str(payload) else "validation_error"
    status = 404 if code == "stdio_command_not_found" else 400
    assert_error(response, status, code)
    assert (McpServer.objects.count(), StdioCommand.objects.count()) == before


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/mcp",
        "http://169.254.169.254/latest",
        "http://10.0.0.8/mcp",
        "http://[::1]:8080/mcp",
    ],
)
def test_mcp_url_to_private_address_is_refused(api, workspace, url):
    response = register(api, url=url)
    assert_error(response, 400, "url_not_allowed")
    assert McpServer.objects.count() == 0


def test_sse_server(api, workspace, mcp_sse, close_pool):
    response = api.post(
        SERVERS, {"name": "legacy", "transport": "sse", "url": mcp_sse.url}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["data"]["status"] == "connected", response.json()
    tool = Tool.objects.get(mcp_server_id=response.json()["data"]["id"], remote_name="echo")
    response = api.post(
        f"/api/v1/tools/{tool.id}/exec", {"arguments": {"text": "sse"}}, format="json"
    )
    assert response.json()["data"]["content"] == "echo: sse"


def test_outsiders_get_404_on_mcp_endpoints(api, workspace, outsider):
    server = McpServer.objects.create(
        workspace=workspace, name="x", transport="streamable_http", url="https://example.com/mcp"
    )
    base = f"{SERVERS}/{server.id}"
    assert_outsiders_get_404(method="get", url=base, outsider=outsider, obj=server)
    assert_outsiders_get_404(
        method="patch", url=base, outsider=outsider, obj=server, data={"name": "y"}
    )
    assert_outsiders_get_404(method="delete", url=base, outsider=outsider, obj=server)
    assert_outsiders_get_404(method="post", url=f"{base}/refresh", outsider=outsider, obj=server)
    assert_outsiders_get_404(
        method="post", url=f"{base}/oauth/start", outsider=outsider, obj=server, data={}
    )


def test_secrets_are_masked_and_url_changes_are_guarded(api, workspace, mcp_http):
    response = register(
        api, url=mcp_http.url, auth_type="bearer", bearer_token="tok-abcdefghijkl-9876"
    )
    data = response.json()["data"]
    assert data["bearer_token"] == "…9876"
    assert "tok-abcdefghijkl-9876" not in response.content.decode()
    assert "tok-abcdefghijkl-9876" not in api.get(f"{SERVERS}/{data['id']}").content.decode()
    server = McpServer.objects.get(id=data["id"])
    before = (server.url, server.updated_at)
    response = api.patch(
        f"{SERVERS}/{data['id']}", {"url": "http://169.254.169.254/mcp"}, format="json"
    )
    assert_error(response, 400, "url_not_allowed")
    server.refresh_from_db()
    assert (server.url, server.updated_at) == before
    response = api.patch(f"{SERVERS}/{data['id']}", {"command": "sh"}, format="json")
    assert_error(response, 400, "validation_error")


def test_viewer_cannot_register_servers(workspace, client_for):
    from apps.users.choices import Role
    from tests.users.factories import add_member

    viewer = add_member(workspace=workspace, role=Role.VIEWER).user
    response = client_for(viewer).post(
        SERVERS,
        {"name": "x", "transport": "streamable_http", "url": "https://example.com/mcp"},
        format="json",
        HTTP_X_WORKSPACE_ID=str(workspace.id),
    )
    assert_error(response, 403, "forbidden")
    assert McpServer.objects.count() == 0


def test_pooled_session_is_reused_and_reconnects_after_a_server_restart(
    api, workspace, allow_loopback
):
    from asgiref.sync import async_to_sync

    from apps.skills.mcp_client import POOL
    from tests.mcp_server.fixtures import run_mcp_server

    with run_mcp_server("http") as first:
        port = first.port
        server_id = register(api, url=first.url).json()["data"]["id"]
        echo = Tool.objects.get(mcp_server_id=server_id, remote_name="echo")
        spec = tool_specs_for(workspace_id=workspace.id, tool_ids=[echo.id])[0]
        ctx = ToolContext(workspace_id=workspace.id, user_id=None)

        async def scenario():
            try:
                one = await spec.execute({"text": "1"}, ctx)
                session = POOL._loop_sessions()[echo.mcp_server_id]
                two = await spec.execute({"text": "2"}, ctx)
                reused = POOL._loop_sessions()[echo.mcp_server_id] is session
                first.stop()
                with run_mcp_server("http", port=port):
                    three = await spec.execute({"text": "3"}, ctx)
                    replaced = POOL._loop_sessions()[echo.mcp_server_id] is not session
                return one, two, reused, three, replaced
            finally:
                await POOL.aclose()

        one, two, reused, three, replaced = async_to_sync(scenario)()
    assert [one.content, two.content, three.content] == ["echo: 1", "echo: 2", "echo: 3"]
    assert reused is True
    # Over streamable HTTP the calls are plain requests: the same pooled session reaches
    # the restarted server (the stdio test below shows a dead session being replaced).
    assert replaced is False


def test_pooled_stdio_session(workspace, close_pool):
    from asgiref.sync import async_to_sync

    from apps.skills.mcp_client import POOL
    from apps.skills.services import mcp_server_create
    from tests.agents.factories import actor_for
    from tests.skills.factories import stdio_command as make_command

    make_command()
    server = mcp_server_create(
        actor=actor_for(user=workspace.created_by, workspace=workspace),
        name="local",
        transport="stdio",
        stdio_command="test-server",
    )
    assert server.status == "connected"
    tools = Tool.objects.filter(mcp_server=server, remote_name__in=["add", "crash"])
    specs = {
        s.name: s for s in tool_specs_for(workspace_id=workspace.id, tool_ids=[t.id for t in tools])
    }
    ctx = ToolContext(workspace_id=workspace.id, user_id=None)

    async def calls():
        try:
            out = [
                (await specs["local_add"].execute({"a": i, "b": 1}, ctx)).content for i in range(2)
            ]
            first = POOL._loop_sessions()[server.id]
            crashed = await specs["local_crash"].execute({}, ctx)
            out.append(crashed.content)
            out.append((await specs["local_add"].execute({"a": 5, "b": 1}, ctx)).content)
            return out, POOL._loop_sessions()[server.id] is not first
        finally:
            await POOL.aclose()

    results, replaced = async_to_sync(calls)()
    assert results == ["1", "2", "MCP server connection failed: MCP error: Connection closed", "6"]
    assert replaced is True  # the dead subprocess' session was replaced by a new one


def test_two_tools_of_a_new_server_in_one_turn_share_the_connecting_session(
    api, workspace, mcp_http, close_pool
):
    """A model asking for two tools of the same server at once: the second caller waits
    for the session the first is opening instead of replacing (and closing) it."""
    from asgiref.sync import async_to_sync

    from apps.skills.mcp_client import POOL

    server_id = register(api, url=mcp_http.url).json()["data"]["id"]
    tools = Tool.objects.filter(mcp_server_id=server_id, remote_name__in=["echo", "add"])
    specs = {
        s.name: s for s in tool_specs_for(workspace_id=workspace.id, tool_ids=[t.id for t in tools])
    }
    ctx = ToolContext(workspace_id=workspace.id, user_id=None)

    async def one_turn():
        import asyncio

        try:
            results = await asyncio.gather(
                specs["demo_echo"].execute({"text": "hi"}, ctx),
                specs["demo_add"].execute({"a": 2, "b": 3}, ctx),
            )
            return results, len(POOL._loop_sessions())
        finally:
            await POOL.aclose()

    (echo, add), open_sessions = async_to_sync(one_turn)()
    assert (echo.content, echo.is_error) == ("echo: hi", False)
    assert (add.content, add.is_error) == ("5", False)
    assert open_sessions == 1


def test_destructive_annotation_is_stored_by_its_mcp_name_and_requires_approval(
    api, workspace, mcp_http
):
    server_id = register(api, url=mcp_http.url).json()["data"]["id"]
    wipe = Tool.objects.get(mcp_server_id=server_id, remote_name="wipe")
    assert wipe.annotations == {"destructiveHint": True, "idempotentHint": True}
    assert wipe.requires_approval is True
    echo = Tool.objects.get(mcp_server_id=server_id, remote_name="echo")
    assert (echo.annotations, echo.requires_approval) == ({}, False)


def test_migration_recomputes_rows_stored_in_snake_case(workspace):
    import importlib

    from django.apps import apps as registry

    migration = importlib.import_module("apps.skills.migrations.0002_mcp_annotations_by_alias")
    server = McpServer.objects.create(
        workspace=workspace, name="old", transport="streamable_http", url="https://x.test/mcp"
    )
    rows = {
        name: Tool.objects.create(
            workspace=workspace,
            name=f"old_{name}",
            source="mcp",
            mcp_server=server,
            remote_name=name,
            annotations=annotations,
            requires_approval=False,
        )
        for name, annotations in {
            "destroy": {"destructive_hint": True, "open_world_hint": False, "title": "Destroy"},
            "read": {"destructive_hint": True, "read_only_hint": True},
            "plain": {},
        }.items()
    }
    migration.annotations_by_alias(registry, None)
    for row in rows.values():
        row.refresh_from_db()
    assert rows["destroy"].annotations == {
        "destructiveHint": True,
        "openWorldHint": False,
        "title": "Destroy",
    }
    assert rows["destroy"].requires_approval is True
    assert rows["read"].annotations == {"destructiveHint": True, "readOnlyHint": True}
    assert rows["read"].requires_approval is False
    assert (rows["plain"].annotations, rows["plain"].requires_approval) == ({}, False)

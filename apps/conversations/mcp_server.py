"""The platform as an MCP server (streamable HTTP, official `mcp` SDK, stateless with JSON
responses, so any process can answer any request): every agent the credential may use is
a tool `ask_<slug>` taking a question (and optionally the conversation to continue).

`McpView` (api/mcp.py) authenticates the request with the API's credentials (API key,
OAuth token, session), then hands the connection to the SDK's own ASGI application
(`asgi_app`, its session manager's `handle_request`), which answers on the event loop.
A tool call starts a run through the run service (`message_send`) and awaits its end on
the event loop by reading the run's events, like any stream.
"""

import asyncio
import re
from collections.abc import MutableMapping
from typing import Any

import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from apps.agents.selectors import agents_usable_by
from apps.conversations.choices import ConversationSource, RunStatus
from apps.conversations.models import Run
from apps.conversations.selectors import access_conversation, run_result
from apps.conversations.services import conversation_create, message_send
from apps.conversations.streaming import run_events
from apps.core.db import db_sync_to_async
from apps.core.exceptions import ApplicationError
from apps.users.actors import Actor

ACTOR_SCOPE_KEY = "platform.actor"
_NAME_RE = re.compile(r"[^a-zA-Z0-9_]")


def tool_name(slug: str) -> str:
    return ("ask_" + _NAME_RE.sub("_", slug))[:64]


def _actor(ctx: Any) -> Actor:
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None) or {}
    actor = scope.get(ACTOR_SCOPE_KEY)
    if actor is None:
        raise PermissionError("no authenticated actor")
    return actor  # type: ignore[no-any-return]


def _usable_agents_sync(actor: Actor) -> list[Any]:
    return list(agents_usable_by(actor=actor).order_by("slug"))


async def _list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    agents = await db_sync_to_async(_usable_agents_sync)(_actor(ctx))
    return types.ListToolsResult(
        tools=[
            types.Tool(
                name=tool_name(a.slug),
                description=(f"Ask the agent “{a.name}”. {a.description}").strip(),
                input_schema={
                    "type": "object",
                    "properties": {
                        "question": {"type": "string", "description": "What to ask."},
                        "conversation_id": {
                            "type": "string",
                            "description": "Continue this conversation (returned by a "
                            "previous call) instead of starting a new one.",
                        },
                    },
                    "required": ["question"],
                },
            )
            for a in agents
        ]
    )


def _start_sync(actor: Actor, name: str, question: str, conversation_id: str | None) -> Run:
    agent = next((a for a in _usable_agents_sync(actor) if tool_name(a.slug) == name), None)
    if agent is None:
        raise LookupError(f"Unknown tool {name}.")
    if conversation_id:
        conv = access_conversation(actor=actor, conversation_id=conversation_id)
        if conv.agent_id != agent.id:
            raise LookupError("That conversation belongs to another agent.")
    else:
        conv = conversation_create(actor=actor, agent=agent, source=ConversationSource.MCP)
    return message_send(actor=actor, conversation=conv, content=question, stream=True)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


async def _call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    actor = _actor(ctx)
    args = params.arguments or {}
    question = args.get("question")
    if not isinstance(question, str) or not question.strip():
        return _error("`question` is required.")
    if not actor.allows("conversations", write=True):
        return _error("This credential's scopes do not allow starting a conversation.")
    try:
        run = await db_sync_to_async(_start_sync)(
            actor, params.name, question, args.get("conversation_id") or None
        )
    except (LookupError, ApplicationError) as exc:
        return _error(str(exc))
    async for _ in run_events(run):
        pass  # the run's events up to its end
    run, text = await db_sync_to_async(run_result)(run_id=run.id)
    if run.status != RunStatus.COMPLETED:
        detail = run.error_message or run.status
        return _error(f"The agent did not answer ({run.status}): {detail}")
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content={"answer": text, "conversation_id": str(run.conversation_id)},
    )


server: Server[Any] = Server(
    "agent-platform",
    instructions="Each tool asks one of the platform's agents a question.",
    on_list_tools=_list_tools,
    on_call_tool=_call_tool,
)

_manager: StreamableHTTPSessionManager | None = None
_ready: asyncio.Event | None = None
_loop: asyncio.AbstractEventLoop | None = None
_holder: set[asyncio.Task[None]] = set()


async def _ensure_manager() -> StreamableHTTPSessionManager:
    """One session manager per process, kept running for the life of the event loop."""
    global _manager, _ready, _loop
    loop = asyncio.get_running_loop()
    if _manager is None or _loop is not loop:  # (tests start several servers in one process)
        _loop = loop
        _manager = StreamableHTTPSessionManager(
            app=server,
            stateless=True,
            json_response=True,
            # Django's ALLOWED_HOSTS already checked the Host header.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        _ready = asyncio.Event()
        manager, ready = _manager, _ready

        async def keep() -> None:
            async with manager.run():
                ready.set()
                await asyncio.Event().wait()

        task = asyncio.get_running_loop().create_task(keep())
        _holder.add(task)
    assert _ready is not None
    await _ready.wait()
    return _manager


async def asgi_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """The official SDK's streamable-HTTP ASGI application; `McpView` hands it the
    authenticated request (the actor in the scope under `ACTOR_SCOPE_KEY`)."""
    manager = await _ensure_manager()
    await manager.handle_request(scope, receive, send)

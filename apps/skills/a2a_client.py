"""Calling remote A2A agents with the official `a2a-sdk` client.

Every request goes through the outbound guard (`async_outbound_httpx_client`: each
connection's address checked, bodies capped, no redirects). The card is fetched when the
agent is registered or refreshed and kept on the row; a delegation sends one message
(streamed when the card says the agent streams), reports each status and artifact update
through `on_update`, and returns the answer (the text of the task's artifacts, or of the
agent's direct reply). Cancelled while waiting (the parent run was cancelled), it asks the
remote agent to cancel its task.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.client.card_resolver import parse_agent_card
from a2a.client.errors import A2AClientError, AgentCardResolutionError
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskState,
)
from a2a.utils.errors import A2AError
from google.protobuf.json_format import MessageToDict

from apps.core.events import RemoteAgentUpdate
from apps.core.outbound import OutboundError, async_outbound_httpx_client
from apps.core.tools import Citation, ToolContext, ToolResult

logger = logging.getLogger(__name__)

CARD_MAX_BYTES = 256 * 1024
STREAM_MAX_BYTES = 5 * 1024 * 1024
ANSWER_MAX_CHARS = 50_000
CANCEL_TIMEOUT_SECONDS = 5.0

TERMINAL = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}

UpdateCallback = Callable[[str, str, str], Awaitable[None]]  # (task_id, state, text)


class RemoteAgentError(Exception):
    """The remote agent could not be reached or answered with an error (readable text)."""


@dataclass(frozen=True)
class RemoteConfig:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 300.0
    card: dict[str, Any] = field(default_factory=dict)


@dataclass
class Delegation:
    task_id: str = ""
    context_id: str = ""
    state: str = "submitted"
    answer: str = ""
    status_text: str = ""


def state_name(state: int) -> str:
    """`TASK_STATE_INPUT_REQUIRED` -> `input_required`."""
    return TaskState.Name(state).removeprefix("TASK_STATE_").lower()  # type: ignore[arg-type]


def _card_location(url: str) -> tuple[str, str | None]:
    """(base URL, card path) for the resolver: a URL ending in .json is the card itself."""
    parts = urlsplit(url)
    if parts.path.endswith(".json"):
        return f"{parts.scheme}://{parts.netloc}", parts.path
    return url.rstrip("/"), None


def describe(exc: BaseException) -> str:
    if isinstance(exc, AgentCardResolutionError) and exc.status_code:
        return f"The agent card could not be fetched (HTTP {exc.status_code})."
    if isinstance(exc, OutboundError):
        return exc.message
    text = str(exc) or type(exc).__name__
    return text[:500]


async def fetch_card(config: RemoteConfig) -> dict[str, Any]:
    """The remote agent's card (as JSON). Raises RemoteAgentError, OutboundBlocked."""
    base, path = _card_location(config.url)
    async with async_outbound_httpx_client(
        timeout=min(config.timeout, 30.0), max_bytes=CARD_MAX_BYTES, headers=config.headers
    ) as http:
        try:
            card = await A2ACardResolver(http, base).get_agent_card(relative_card_path=path)
        except (A2AClientError, OutboundError) as exc:
            raise RemoteAgentError(describe(exc)) from exc
    if not card.supported_interfaces:
        raise RemoteAgentError("The agent card names no interface (supportedInterfaces).")
    return MessageToDict(card, preserving_proto_field_name=False)


def _texts(parts: Any) -> list[str]:
    return [p.text for p in parts if p.WhichOneof("content") == "text" and p.text]


class _Collector:
    """The answer as artifacts arrive (appended chunks or whole artifacts)."""

    def __init__(self) -> None:
        self.artifacts: dict[str, list[str]] = {}
        self.result = Delegation()

    def take(self, response: StreamResponse) -> tuple[str, str] | None:
        """Record a stream response; (state, text) when it is worth reporting."""
        kind = response.WhichOneof("payload")
        r = self.result
        if kind == "task":
            task = response.task
            r.task_id, r.context_id = task.id, task.context_id
            r.state = state_name(task.status.state)
            for artifact in task.artifacts:
                self.artifacts[artifact.artifact_id] = _texts(artifact.parts)
            if task.status.HasField("message"):
                r.status_text = "\n".join(_texts(task.status.message.parts))
            return r.state, r.status_text
        if kind == "status_update":
            update = response.status_update
            r.task_id = r.task_id or update.task_id
            r.state = state_name(update.status.state)
            text = "\n".join(_texts(update.status.message.parts))
            if text:
                r.status_text = text
            return r.state, text
        if kind == "artifact_update":
            update = response.artifact_update
            texts = _texts(update.artifact.parts)
            key = update.artifact.artifact_id
            if update.append:
                self.artifacts.setdefault(key, []).extend(texts)
            else:
                self.artifacts[key] = texts
            return None
        if kind == "message":
            r.state = "completed"
            r.answer = "\n".join(_texts(response.message.parts))
            return r.state, ""
        return None

    def finish(self) -> Delegation:
        r = self.result
        if not r.answer:
            r.answer = "\n\n".join("".join(chunks) for chunks in self.artifacts.values() if chunks)
        r.answer = r.answer[:ANSWER_MAX_CHARS]
        return r


async def delegate(config: RemoteConfig, text: str, on_update: UpdateCallback) -> Delegation:
    """Send `text` to the remote agent and follow its task to the end (bounded by
    `config.timeout`). Raises RemoteAgentError; re-raises a cancellation after asking the
    remote agent to cancel its task."""
    try:
        card: AgentCard = parse_agent_card(dict(config.card))
    except (ValueError, KeyError, TypeError) as exc:
        raise RemoteAgentError("The stored agent card is invalid: refresh the agent.") from exc
    collector = _Collector()
    async with async_outbound_httpx_client(
        timeout=config.timeout, max_bytes=STREAM_MAX_BYTES, headers=config.headers
    ) as http:
        try:
            client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
        except ValueError as exc:
            raise RemoteAgentError(f"No usable interface on the card: {exc}") from exc
        request = SendMessageRequest(
            message=Message(
                message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=[Part(text=text)]
            )
        )
        try:
            async with asyncio.timeout(config.timeout):
                async for response in client.send_message(request):
                    report = collector.take(response)
                    if report is not None:
                        await on_update(collector.result.task_id, *report)
        except TimeoutError as exc:
            await _cancel_quietly(client, collector.result.task_id)
            raise RemoteAgentError(
                f"The remote agent did not finish within {config.timeout:g} seconds."
            ) from exc
        except asyncio.CancelledError:
            await _cancel_quietly(client, collector.result.task_id)
            raise
        except (A2AClientError, A2AError, OutboundError) as exc:
            raise RemoteAgentError(describe(exc)) from exc
    return collector.finish()


async def _cancel_quietly(client: Any, task_id: str) -> None:
    if not task_id:
        return
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT_SECONDS):
            await client.cancel_task(CancelTaskRequest(id=task_id))
    except (TimeoutError, A2AClientError, A2AError, OutboundError) as exc:
        logger.info("a2a: cancelling remote task %s failed: %r", task_id, exc)


# --- the tool -------------------------------------------------------------------------------

TASK_PARAMETERS = {
    "type": "object",
    "properties": {
        "task": {
            "type": "string",
            "description": "A complete, self-contained request for the remote agent.",
        }
    },
    "required": ["task"],
    "additionalProperties": False,
}


def remote_executor(
    *, remote_agent_id: uuid.UUID, name: str, config: RemoteConfig
) -> Callable[[dict[str, Any], ToolContext], Awaitable[ToolResult]]:
    """The executor of a remote agent's tool: delegates the task, relays each update to
    the run's stream (`remote_agent.update`) and cites the delegation in its result."""

    async def execute(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        task = args.get("task")
        if not isinstance(task, str) or not task.strip():
            return ToolResult(content="Give the remote agent a task (a string).", is_error=True)

        async def on_update(task_id: str, state: str, text: str) -> None:
            if ctx.emit is not None:
                await ctx.emit(
                    RemoteAgentUpdate(
                        tool_call_id=ctx.tool_call_id,
                        remote_agent_id=str(remote_agent_id),
                        name=name,
                        task_id=task_id,
                        state=state,
                        text=text[:2000],
                    )
                )

        try:
            result = await delegate(config, task, on_update)
        except RemoteAgentError as exc:
            return ToolResult(content=f"The remote agent {name} failed: {exc}", is_error=True)
        data = {"remote_agent_id": str(remote_agent_id), "task_id": result.task_id}
        if result.state != "completed":
            detail = result.status_text or "no reason given"
            return ToolResult(
                content=f"The remote agent {name} ended {result.state}: {detail}",
                is_error=True,
                data=data,
            )
        return ToolResult(
            content=result.answer or "(The remote agent gave an empty answer.)",
            data=data,
            citations=[
                Citation(
                    document_id=f"a2a:{remote_agent_id}",
                    document_name=f"{name} (remote A2A agent)",
                    chunk_id=result.task_id,
                    snippet=result.answer[:300],
                )
            ],
        )

    return execute

"""The platform as A2A agents (Agent2Agent protocol 1.0, official `a2a-sdk`): every agent
the credential may use is an A2A agent with its own card and JSON-RPC endpoint.

`api/a2a.py` authenticates a request like the API (API key, OAuth token, session; scopes;
rate limits; 404 for an agent the credential may not use), then hands the connection to
`asgi_app`: the SDK's own JSON-RPC dispatcher (request parsing, errors, SSE framing),
driving `RunRequestHandler`, which maps the protocol onto the run service:

- `SendMessage` / `SendStreamingMessage`: a message starts a run (`message_send`) in a new
  conversation, or in the conversation named by the message's `contextId`;
- a task is a run (`Task.id` = run id, `contextId` = conversation id): `GetTask`,
  `CancelTask` (`run_cancel`), `SubscribeToTask` (the run's events, replayed from its start);
- the answer is the artifact `answer` (streamed as appended chunks), files the agent wrote
  during the run are artifacts with a short-lived download URL.

Nothing is kept in the SDK's task stores: the runs table is the task store, so any process
can answer any request about any task.
"""

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, MutableMapping
from datetime import datetime
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    Artifact,
    AuthorizationCodeOAuthFlow,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    HTTPAuthSecurityScheme,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    OAuth2SecurityScheme,
    OAuthFlows,
    Part,
    Role,
    SecurityRequirement,
    SecurityScheme,
    SendMessageRequest,
    StringList,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.constants import PROTOCOL_VERSION_1_0, TransportProtocol
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.requests import Request as StarletteRequest

from apps.agents.models import Agent
from apps.agents.selectors import agents_usable_by
from apps.conversations.choices import TERMINAL_STATUSES, ConversationSource, RunStatus
from apps.conversations.exceptions import (
    ConversationNotFound,
    RunNotCancellable,
    RunNotFound,
)
from apps.conversations.models import Run
from apps.conversations.selectors import (
    access_conversation,
    access_run,
    run_result,
    run_user_text,
)
from apps.conversations.services import conversation_create, message_send, run_cancel
from apps.conversations.streaming import events_after, run_events
from apps.core.db import db_sync_to_async
from apps.core.events import (
    AnswerDelta,
    AnswerDone,
    Done,
    Envelope,
    Phase,
    RunRequiresAction,
    RunStarted,
    ToolCall,
    ToolResult,
)
from apps.core.exceptions import ApplicationError
from apps.files.selectors import file_download_token, files_written_by_agent
from apps.users.actors import Actor

logger = logging.getLogger(__name__)

ACTOR_SCOPE_KEY = "platform.actor"
AGENT_SCOPE_KEY = "platform.a2a.agent"  # the agent of a per-agent endpoint (or None)
BASE_URL_SCOPE_KEY = "platform.a2a.base_url"

ANSWER_ARTIFACT = "answer"
MAX_TEXT_CHARS = 100_000  # of a message's text and data parts together
CANCEL_WAIT_SECONDS = 15.0
WRITE_METHODS = frozenset(
    {"SendMessage", "SendStreamingMessage", "CancelTask", "message/send", "message/stream"}
    | {"tasks/cancel"}
)

_STATES: dict[str, int] = {
    RunStatus.QUEUED: TaskState.TASK_STATE_SUBMITTED,
    RunStatus.RUNNING: TaskState.TASK_STATE_WORKING,
    # Paused for a tool approval, decided through the REST API or the console.
    RunStatus.REQUIRES_ACTION: TaskState.TASK_STATE_INPUT_REQUIRED,
    RunStatus.COMPLETED: TaskState.TASK_STATE_COMPLETED,
    RunStatus.FAILED: TaskState.TASK_STATE_FAILED,
    RunStatus.CANCELLED: TaskState.TASK_STATE_CANCELED,
    RunStatus.INTERRUPTED: TaskState.TASK_STATE_FAILED,
}


# --- agent cards ---------------------------------------------------------------------------


def agent_path(agent: Agent) -> str:
    """The agent's base path: its card is `<path>/.well-known/agent-card.json`, its
    JSON-RPC endpoint `<path>/rpc`."""
    return f"/a2a/agents/{agent.slug}"


def _security(base_url: str) -> tuple[dict[str, SecurityScheme], list[SecurityRequirement]]:
    scopes = {
        "conversations:read": "Read conversations and tasks.",
        "conversations:write": "Send messages, cancel tasks.",
    }
    schemes = {
        "bearer": SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="Bearer",
                bearer_format="API key or OAuth2 access token",
                description="An API key of the workspace, or an OAuth2 access token.",
            )
        ),
        "oauth2": SecurityScheme(
            oauth2_security_scheme=OAuth2SecurityScheme(
                description="The platform's OAuth2 authorization server.",
                oauth2_metadata_url=f"{base_url}/.well-known/oauth-authorization-server",
                flows=OAuthFlows(
                    authorization_code=AuthorizationCodeOAuthFlow(
                        authorization_url=f"{base_url}/oauth/authorize/",
                        token_url=f"{base_url}/oauth/token/",
                        refresh_url=f"{base_url}/oauth/token/",
                        scopes=scopes,
                        pkce_required=True,
                    )
                ),
            )
        ),
    }
    requirements = [
        SecurityRequirement(schemes={"bearer": StringList()}),
        SecurityRequirement(schemes={"oauth2": StringList(list=list(scopes))}),
    ]
    return schemes, requirements


def _skills_of(agent: Agent) -> list[AgentSkill]:
    """The agent's skills: answering (its starter questions as examples), and one per
    tool it may call."""
    examples = [q for q in (agent.starter_questions or []) if isinstance(q, str)][:10]
    skills = [
        AgentSkill(
            id=f"{agent.slug}.chat",
            name=agent.name,
            description=agent.description or f"Answers as the agent “{agent.name}”.",
            tags=["chat"],
            examples=examples,
        )
    ]
    tool_names = [*(agent.builtin_tools or []), *(t.name for t in agent.tools.all())]
    for name in tool_names[:50]:
        skills.append(
            AgentSkill(
                id=f"{agent.slug}.tool.{name}",
                name=str(name),
                description=f"Can use the tool {name} while answering.",
                tags=["tool"],
            )
        )
    return skills


def _base_card(*, name: str, description: str, url: str, base_url: str) -> AgentCard:
    schemes, requirements = _security(base_url)
    return AgentCard(
        name=name,
        description=description,
        supported_interfaces=[
            AgentInterface(
                url=url,
                protocol_binding=TransportProtocol.JSONRPC,
                protocol_version=PROTOCOL_VERSION_1_0,
            )
        ],
        provider=AgentProvider(organization="Agent platform", url=base_url),
        version="1",
        documentation_url=f"{base_url}/api/docs/",
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        security_schemes=schemes,
        security_requirements=requirements,
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "text/markdown"],
    )


def agent_card(*, agent: Agent, base_url: str) -> AgentCard:
    """The A2A card of one agent (served at `<agent path>/.well-known/agent-card.json`)."""
    card = _base_card(
        name=agent.name,
        description=agent.description or f"The agent “{agent.name}”.",
        url=base_url + agent_path(agent) + "/rpc",
        base_url=base_url,
    )
    card.version = str(agent.version)
    card.skills.extend(_skills_of(agent))
    return card


def workspace_card(*, workspace_name: str, agents: list[Agent], base_url: str) -> AgentCard:
    """The workspace's card: one skill per agent the credential may use (id = its slug);
    its endpoint (`/a2a`) sends a message to the agent named by the request's `tenant`
    (the SDK client sets it from the interface: one interface per agent)."""
    card = _base_card(
        name=workspace_name,
        description="The agents of this workspace. Each is also an A2A agent of its own "
        "(card at /a2a/agents/<slug>/.well-known/agent-card.json).",
        url=base_url + "/a2a",
        base_url=base_url,
    )
    del card.supported_interfaces[:]
    for agent in agents:
        card.supported_interfaces.append(
            AgentInterface(
                url=base_url + "/a2a",
                protocol_binding=TransportProtocol.JSONRPC,
                protocol_version=PROTOCOL_VERSION_1_0,
                tenant=agent.slug,
            )
        )
        card.skills.append(
            AgentSkill(
                id=agent.slug,
                name=agent.name,
                description=agent.description or f"The agent “{agent.name}”.",
                tags=["agent"],
                examples=[q for q in (agent.starter_questions or []) if isinstance(q, str)][:5],
            )
        )
    return card


def card_to_dict(card: AgentCard) -> dict[str, Any]:
    return MessageToDict(card, preserving_proto_field_name=False)


# --- tasks = runs ----------------------------------------------------------------------------


def _ts(value: datetime | None) -> Timestamp:
    stamp = Timestamp()
    if value is not None:
        stamp.FromDatetime(value)
    return stamp


def _text_message(*, role: int, text: str, run: Run, message_id: str) -> Message:
    return Message(
        message_id=message_id,
        context_id=str(run.conversation_id),
        task_id=str(run.id),
        role=role,  # type: ignore[arg-type]
        parts=[Part(text=text)],
    )


def _file_artifacts(run: Run, base_url: str) -> list[Artifact]:
    files = files_written_by_agent(
        conversation_id=run.conversation_id, since=run.created_at, until=run.finished_at
    )
    return [
        Artifact(
            artifact_id=f"file-{f.id}",
            name=f.path or f.name,
            description="A file the agent wrote (the download URL expires within minutes).",
            parts=[
                Part(
                    url=f"{base_url}/api/v1/files/download/{file_download_token(file=f)}",
                    filename=f.name,
                    media_type=f.content_type,
                )
            ],
        )
        for f in files
    ]


def _status(run: Run) -> TaskStatus:
    status = TaskStatus(state=_STATES[run.status], timestamp=_ts(run.updated_at))  # type: ignore[arg-type]
    if run.status in (RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.CANCELLED):
        reason = run.error_message or f"The run ended {run.status}."
        status.message.CopyFrom(
            _text_message(role=Role.ROLE_AGENT, text=reason, run=run, message_id=f"{run.id}-status")
        )
    elif run.status == RunStatus.REQUIRES_ACTION:
        status.message.CopyFrom(
            _text_message(
                role=Role.ROLE_AGENT,
                text="A tool call waits for a person's approval (REST API or console).",
                run=run,
                message_id=f"{run.id}-status",
            )
        )
    return status


def task_snapshot_sync(*, run_id: Any, base_url: str, history_length: int | None = None) -> Task:
    """The task of a run as it is now: status, history (question, answer) and artifacts."""
    run, answer = run_result(run_id=run_id)
    task = Task(id=str(run.id), context_id=str(run.conversation_id), status=_status(run))
    history = [
        _text_message(
            role=Role.ROLE_USER,
            text=run_user_text(run=run),
            run=run,
            message_id=str(run.message_id or f"{run.id}-user"),
        )
    ]
    if answer:
        history.append(
            _text_message(
                role=Role.ROLE_AGENT,
                text=answer,
                run=run,
                message_id=str(run.answer_message_id),
            )
        )
        task.artifacts.append(
            Artifact(artifact_id=ANSWER_ARTIFACT, name=ANSWER_ARTIFACT, parts=[Part(text=answer)])
        )
    if run.status in TERMINAL_STATUSES:
        task.artifacts.extend(_file_artifacts(run, base_url))
    if history_length is not None:
        history = history[-history_length:] if history_length > 0 else []
    task.history.extend(history)
    return task


def _message_text(message: Message) -> str:
    pieces: list[str] = []
    for part in message.parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            pieces.append(part.text)
        elif kind == "data":
            value = MessageToDict(Struct(fields={"v": part.data}))["v"]
            pieces.append(json.dumps(value, ensure_ascii=False))
        else:
            raise InvalidParamsError(
                message="message.parts: only text and data parts are accepted "
                "(upload files through /api/v1/files and refer to them in the text)."
            )
    text = "\n\n".join(p for p in pieces if p)
    if not text.strip():
        raise InvalidParamsError(message="message.parts: the message has no text.")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidParamsError(
            message=f"message.parts: at most {MAX_TEXT_CHARS} characters of text."
        )
    return text


def _start_sync(actor: Actor, agent: Agent, message: Message) -> Run:
    """Start the run of an incoming message. Raises A2A errors for bad requests."""
    if message.role != Role.ROLE_USER:
        raise InvalidParamsError(message="message.role: must be ROLE_USER.")
    text = _message_text(message)
    if message.task_id:
        _access_task(actor, agent, message.task_id)  # TaskNotFoundError for a stranger's
        raise UnsupportedOperationError(
            message="message.taskId: a task ends with its answer; send the next message "
            "with the task's contextId (and no taskId) to continue the conversation."
        )
    if message.context_id:
        try:
            conv = access_conversation(actor=actor, conversation_id=message.context_id)
        except ConversationNotFound:
            conv = None
        if conv is None or conv.agent_id != agent.id:
            raise InvalidParamsError(message="message.contextId: no such context of this agent.")
    else:
        conv = conversation_create(actor=actor, agent=agent, source=ConversationSource.A2A)
    try:
        return message_send(actor=actor, conversation=conv, content=text, stream=True)
    except ApplicationError as exc:
        raise InvalidParamsError(message=f"{exc.code}: {exc.message}") from exc


def _access_task(actor: Actor, agent: Agent, task_id: str) -> Run:
    try:
        run = access_run(actor=actor, run_id=task_id)
    except RunNotFound:
        raise TaskNotFoundError() from None
    if run.agent_id != agent.id:
        raise TaskNotFoundError()
    return run


def _cancel_sync(actor: Actor, agent: Agent, task_id: str) -> Run:
    run = _access_task(actor, agent, task_id)
    try:
        return run_cancel(actor=actor, run=run)
    except RunNotCancellable:
        raise TaskNotCancelableError() from None


def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return db_sync_to_async(fn)(*args, **kwargs)


class _EventMapper:
    """Our typed events of one run as A2A stream events."""

    def __init__(self, run: Run) -> None:
        self.task_id, self.context_id = str(run.id), str(run.conversation_id)
        self.answer_started = False

    def _status(self, state: int, text: str = "", data: dict[str, Any] | None = None) -> Any:
        status = TaskStatus(state=state, timestamp=_ts(datetime.now().astimezone()))  # type: ignore[arg-type]
        if text or data:
            parts = [Part(text=text)] if text else []
            if data:
                value = Struct()
                value.update(data)
                part = Part()
                part.data.struct_value.CopyFrom(value)
                parts.append(part)
            status.message.CopyFrom(
                Message(
                    message_id=f"{self.task_id}-{len(text)}-{id(status)}",
                    context_id=self.context_id,
                    task_id=self.task_id,
                    role=Role.ROLE_AGENT,
                    parts=parts,
                )
            )
        return TaskStatusUpdateEvent(
            task_id=self.task_id, context_id=self.context_id, status=status
        )

    def _answer(self, text: str, *, last: bool) -> TaskArtifactUpdateEvent:
        append = self.answer_started
        self.answer_started = True
        return TaskArtifactUpdateEvent(
            task_id=self.task_id,
            context_id=self.context_id,
            artifact=Artifact(
                artifact_id=ANSWER_ARTIFACT, name=ANSWER_ARTIFACT, parts=[Part(text=text)]
            ),
            append=append,
            last_chunk=last,
        )

    def map(self, envelope: Envelope) -> list[Any]:
        event = envelope.event
        working = TaskState.TASK_STATE_WORKING
        if isinstance(event, RunStarted):
            return [self._status(working)]
        if isinstance(event, Phase):
            return [self._status(working, data={"phase": event.phase})]
        if isinstance(event, ToolCall):
            return [
                self._status(
                    working,
                    text=f"Calling {event.name}.",
                    data={"tool_call": {"id": event.tool_call_id, "name": event.name}},
                )
            ]
        if isinstance(event, ToolResult):
            return [
                self._status(
                    working,
                    data={
                        "tool_result": {
                            "id": event.tool_call_id,
                            "name": event.name,
                            "is_error": event.is_error,
                        }
                    },
                )
            ]
        if isinstance(event, AnswerDelta) and event.delta:
            return [self._answer(event.delta, last=False)]
        if isinstance(event, AnswerDone):
            if not self.answer_started and event.content:
                return [self._answer(event.content, last=True)]
            return [self._answer("", last=True)] if self.answer_started else []
        return []


class RunRequestHandler(RequestHandler):
    """The A2A request handler over the run service (see the module's docstring)."""

    @staticmethod
    def _who(context: ServerCallContext) -> tuple[Actor, Agent, str]:
        agent = context.state.get("agent")
        if agent is None:
            raise InvalidParamsError(
                message="tenant: name the agent (its slug) on the workspace endpoint /a2a, "
                "or use the agent's own endpoint /a2a/agents/<slug>."
            )
        return context.state["actor"], agent, context.state["base_url"]

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        actor, agent, base_url = self._who(context)
        run = await _in_thread(_access_task, actor, agent, params.id)
        length = params.history_length if params.HasField("history_length") else None
        snapshot: Task = await _in_thread(
            task_snapshot_sync, run_id=run.id, base_url=base_url, history_length=length
        )
        return snapshot

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        raise UnsupportedOperationError(
            message="ListTasks: list the conversation's runs through /api/v1 instead."
        )

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        actor, agent, base_url = self._who(context)
        run: Run = await _in_thread(_cancel_sync, actor, agent, params.id)
        if run.status not in TERMINAL_STATUSES:
            # A running run stops at its next step: wait (on the loop) for its end.
            try:
                async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                    async for _ in events_after(
                        conversation_id=run.conversation_id,
                        after=None,
                        run_id=run.id,
                        stop_at_end=True,
                    ):
                        pass
            except TimeoutError:
                logger.warning("a2a cancel: run %s did not end within the wait", run.id)
        snapshot: Task = await _in_thread(task_snapshot_sync, run_id=run.id, base_url=base_url)
        return snapshot

    async def _start(self, params: SendMessageRequest, context: ServerCallContext) -> Run:
        actor, agent, _ = self._who(context)
        if params.configuration.HasField("task_push_notification_config"):
            raise PushNotificationNotSupportedError()
        run: Run = await _in_thread(_start_sync, actor, agent, params.message)
        return run

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        run = await self._start(params, context)
        events = run_events(run)
        if params.configuration.return_immediately:
            # The run starts once a stream subscribes (or after the stream gate): start it
            # now, in the background, and answer with the submitted task.
            task = asyncio.get_running_loop().create_task(_drain(events))
            _background.add(task)
            task.add_done_callback(_background.discard)
        else:
            await _drain(events)
        snapshot: Task = await _in_thread(
            task_snapshot_sync, run_id=run.id, base_url=context.state["base_url"]
        )
        return snapshot

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        run = await self._start(params, context)
        yield await _in_thread(
            task_snapshot_sync, run_id=run.id, base_url=context.state["base_url"]
        )
        async for item in self._relay(run, run_events(run), context):
            yield item

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        actor, agent, base_url = self._who(context)
        run = await _in_thread(_access_task, actor, agent, params.id)
        if run.status in TERMINAL_STATUSES:
            raise UnsupportedOperationError(
                message="The task has ended; GetTask returns its result."
            )
        snapshot = await _in_thread(task_snapshot_sync, run_id=run.id, base_url=base_url)
        # The answer artifact is streamed again from the run's start below.
        del snapshot.artifacts[:]
        yield snapshot
        events = events_after(
            conversation_id=run.conversation_id, after=None, run_id=run.id, stop_at_end=True
        )
        async for item in self._relay(run, events, context):
            yield item

    async def _relay(
        self, run: Run, events: Any, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        mapper = _EventMapper(run)
        async for item in events:
            if not isinstance(item, Envelope):
                continue  # heartbeats: sse-starlette pings on its own
            if isinstance(item.event, Done | RunRequiresAction):
                # The end, or a pause for a person's approval (input_required) that still
                # holds (a replay passes pauses already decided): the stream ends there;
                # GetTask and SubscribeToTask follow up.
                final = await _in_thread(
                    task_snapshot_sync, run_id=run.id, base_url=context.state["base_url"]
                )
                paused = final.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
                if isinstance(item.event, RunRequiresAction) and not paused:
                    continue
                for artifact in final.artifacts:
                    if artifact.artifact_id != ANSWER_ARTIFACT:
                        yield TaskArtifactUpdateEvent(
                            task_id=final.id,
                            context_id=final.context_id,
                            artifact=artifact,
                            last_chunk=True,
                        )
                yield TaskStatusUpdateEvent(
                    task_id=final.id, context_id=final.context_id, status=final.status
                )
                return
            for out in mapper.map(item):
                yield out

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError()

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError()

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError()

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError()

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError()


_background: set[asyncio.Task[None]] = set()


async def _drain(events: Any) -> None:
    """Read a run's events to its end, or until it pauses for a tool approval."""
    async for item in events:
        if isinstance(item, Envelope) and isinstance(item.event, RunRequiresAction):
            await events.aclose()
            return


def _agent_for_tenant(actor: Actor, tenant: str) -> Agent | None:
    return agents_usable_by(actor=actor).filter(slug=tenant).first()


class _ContextBuilder(DefaultServerCallContextBuilder):
    """Puts the actor and agent the Django view resolved into the SDK's call context."""

    def build(self, request: StarletteRequest) -> ServerCallContext:
        context = super().build(request)
        context.state["actor"] = request.scope[ACTOR_SCOPE_KEY]
        context.state["agent"] = request.scope.get(AGENT_SCOPE_KEY)
        context.state["base_url"] = request.scope[BASE_URL_SCOPE_KEY]
        return context


class _TenantRouting(RunRequestHandler):
    """On the workspace endpoint the request's `tenant` names the agent (slug); an agent
    the credential may not use is `TaskNotFoundError`/`InvalidParamsError`, never shown."""

    async def _resolve(self, params: Any, context: ServerCallContext) -> None:
        if context.state.get("agent") is not None or not getattr(params, "tenant", ""):
            return
        agent = await _in_thread(_agent_for_tenant, context.state["actor"], params.tenant)
        if agent is None:
            raise InvalidParamsError(message="tenant: no agent with this slug.")
        context.state["agent"] = agent

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        await self._resolve(params, context)
        return await super().on_get_task(params, context)

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        await self._resolve(params, context)
        return await super().on_cancel_task(params, context)

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        await self._resolve(params, context)
        return await super().on_message_send(params, context)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        await self._resolve(params, context)
        async for item in super().on_message_send_stream(params, context):
            yield item

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        await self._resolve(params, context)
        async for item in super().on_subscribe_to_task(params, context):
            yield item


dispatcher = JsonRpcDispatcher(
    request_handler=_TenantRouting(),
    context_builder=_ContextBuilder(),
    enable_v0_3_compat=True,
)


async def asgi_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """The SDK's JSON-RPC dispatcher as an ASGI application; `A2aRpcView` hands it the
    authenticated request (actor, agent and base URL in the scope)."""
    response = await dispatcher.handle_requests(StarletteRequest(scope, receive))
    await response(scope, receive, send)

"""The AG-UI protocol (https://docs.ag-ui.com): an agent run from a `RunAgentInput`,
streamed back as AG-UI events, with the official `ag-ui-protocol` types and encoder.

What maps to what (docs/protocols.md "AG-UI"):

- `threadId` -> a conversation: its id when `threadId` is a UUID, else a UUID derived
  from the workspace, the user and `threadId`. An unknown thread is a new conversation
  (source "agui") whose earlier input messages are stored as history; for a known thread
  the stored conversation is the history, and only the input's last message(s) count.
- `runId` -> a run: the run's id when `runId` is a fresh UUID. Our own ids are in
  `RUN_STARTED.metadata` ({"conversationId", "runId"}).
- `tools` (frontend tools) are offered to the model for that run. A call to one ends the
  AG-UI run (`RUN_FINISHED`, outcome success with `pendingToolCallIds`) while our run
  waits (`requires_action`, the engine's approval pause); the client's next input, ending
  with the tool messages, stores the results and resumes that run.
- A call to an agent tool that needs approval ends the AG-UI run with an interrupt
  outcome (interrupt id = tool call id); `resume` entries answer it (resolved: approve).
- `context` and `state` are given to the model as instructions; `state` is echoed as a
  `STATE_SNAPSHOT` (our agents read the state, they do not change it).

Our typed events (apps.core.events) become AG-UI events in one place: `AguiTranslator`.
"""

import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ag_ui.core import (
    AssistantMessage,
    CustomEvent,
    DataSource,
    ImagePart,
    Interrupt,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TextPart,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
    ToolMessage,
    UrlSource,
    UserMessage,
)
from ag_ui.core.events import BaseEvent
from ag_ui.encoder import EventEncoder
from django.db import IntegrityError, transaction
from pydantic import ValidationError

from apps.conversations.choices import ConversationSource, Role
from apps.conversations.exceptions import ConversationNotFound
from apps.conversations.models import Conversation, Run
from apps.conversations.selectors import (
    access_conversation,
    conversation_exists,
    run_exists,
    run_pause_cursor,
    run_paused_of,
)
from apps.conversations.services import (
    content_text,
    conversation_create,
    conversation_history_import,
    message_send,
    run_submit_tool_results,
)
from apps.conversations.streaming import StreamItem, events_after, run_events
from apps.core.events import (
    AnswerDelta,
    AnswerDone,
    AnswerStart,
    End,
    Envelope,
    Event,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunInterrupted,
    RunRequiresAction,
    Step,
    Suggestions,
    Title,
    ToolCall,
    ToolResult,
)
from apps.core.exceptions import ErrorDetail, ValidationFailed

PROTOCOL_VERSION = "1.0"
# Derives conversation ids from thread ids that are not UUIDs (with workspace and user).
THREAD_NAMESPACE = uuid.UUID("5b0f3c86-9f0e-4c52-9a35-6a0d1d0b6a11")
MAX_MESSAGES = 500
MAX_TOOLS = 64
MAX_TOOL_JSON_BYTES = 64_000
MAX_CONTEXT_ITEMS = 32
MAX_CONTEXT_BYTES = 64_000
MAX_STATE_BYTES = 64_000
MAX_RESULT_CHARS = 100_000
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# How long the resumption of a paused run waits for its pause to reach the event log.
PAUSE_LOG_WAIT_SECONDS = 3.0
_NO_STATE = object()


# --- input -----------------------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# The tags of the protocol's discriminated unions (message roles, part and source types):
# pydantic puts the member's tag in an error's location, the client knows no such field.
_UNION_TAGS = frozenset(
    {"developer", "system", "assistant", "user", "tool", "activity", "reasoning"}
    | {"text", "image", "audio", "video", "document", "data", "url", "file"}
)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (
            part in _UNION_TAGS
            and (isinstance(previous, int) or previous in _UNION_TAGS or previous == "source")
        ) or (part == "str" or "[" in part):
            pass  # a union member's tag, or a validator's name
        else:
            out += ("." if out else "") + _camel(part)
        previous = part
    return out or "body"


def _size(value: Any) -> int:
    return len(json.dumps(value, default=str))


def agui_input_parse(data: Any) -> RunAgentInput:
    """The request body as a RunAgentInput, bounded. Raises ValidationFailed naming each
    bad field by its protocol (camelCase) path, e.g. `messages[0].content`."""
    if not isinstance(data, dict):
        raise ValidationFailed("The body is a RunAgentInput JSON object.", field="body")
    try:
        run_input = RunAgentInput.model_validate(data)
    except ValidationError as exc:
        details: list[ErrorDetail] = []
        for error in exc.errors()[:20]:
            where = _path(tuple(error["loc"]))
            if not any(d["field"] == where for d in details):
                details.append({"field": where, "message": error["msg"]})
        raise ValidationFailed(
            "The body is not a valid RunAgentInput: "
            + "; ".join(f"{d['field']}: {d['message']}" for d in details),
            details=details,
        ) from exc
    if not run_input.thread_id.strip() or len(run_input.thread_id) > 200:
        raise ValidationFailed("threadId is 1 to 200 characters.", field="threadId")
    if not run_input.run_id.strip() or len(run_input.run_id) > 200:
        raise ValidationFailed("runId is 1 to 200 characters.", field="runId")
    if not run_input.messages and not run_input.resume:
        raise ValidationFailed("messages is empty.", field="messages")
    if len(run_input.messages) > MAX_MESSAGES:
        raise ValidationFailed(f"At most {MAX_MESSAGES} messages.", field="messages")
    tools = run_input.tools or []
    if len(tools) > MAX_TOOLS:
        raise ValidationFailed(f"At most {MAX_TOOLS} tools.", field="tools")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if not TOOL_NAME.match(tool.name):
            raise ValidationFailed(
                "A tool name is 1 to 64 letters, digits, _ or -.", field=f"tools[{index}].name"
            )
        if tool.name in names:
            raise ValidationFailed("Tool names are unique.", field=f"tools[{index}].name")
        names.add(tool.name)
        params = tool.parameters
        if params is not None and (not isinstance(params, dict) or params.get("type") != "object"):
            raise ValidationFailed(
                'parameters is a JSON Schema with "type": "object".',
                field=f"tools[{index}].parameters",
            )
    if tools and _size([t.model_dump() for t in tools]) > MAX_TOOL_JSON_BYTES:
        raise ValidationFailed(f"tools exceed {MAX_TOOL_JSON_BYTES} bytes.", field="tools")
    context = run_input.context or []
    if len(context) > MAX_CONTEXT_ITEMS:
        raise ValidationFailed(f"At most {MAX_CONTEXT_ITEMS} context items.", field="context")
    if context and _size([c.model_dump() for c in context]) > MAX_CONTEXT_BYTES:
        raise ValidationFailed(f"context exceeds {MAX_CONTEXT_BYTES} bytes.", field="context")
    if "state" in data and _size(run_input.state) > MAX_STATE_BYTES:
        raise ValidationFailed(f"state exceeds {MAX_STATE_BYTES} bytes.", field="state")
    return run_input


def _user_content(message: UserMessage, where: str) -> Any:
    """A user message's content in our (OpenAI) shape: text, or text and image parts."""
    if isinstance(message.content, str):
        return message.content
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(message.content):
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart) and isinstance(part.source, DataSource):
            url = f"data:{part.source.mime_type};base64,{part.source.value}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif isinstance(part, ImagePart) and isinstance(part.source, UrlSource):
            parts.append({"type": "image_url", "image_url": {"url": part.source.value}})
        else:
            raise ValidationFailed(
                "Only text parts and image parts (data or URL) are supported.",
                field=f"{where}.content[{index}]",
            )
    return parts


def _history_message(message: Any, where: str) -> dict[str, Any] | None:
    """An earlier input message in our (OpenAI) shape; None for what the agent does not
    read (system, developer, activity and reasoning messages: the agent has its prompt)."""
    if isinstance(message, UserMessage):
        return {"role": Role.USER, "content": _user_content(message, where)}
    if isinstance(message, AssistantMessage):
        out: dict[str, Any] = {"role": Role.ASSISTANT, "content": message.content or ""}
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in message.tool_calls
            ]
        return out
    if isinstance(message, ToolMessage):
        return {
            "role": Role.TOOL,
            "tool_call_id": message.tool_call_id,
            "content": _tool_content(message),
        }
    return None


def _tool_content(message: ToolMessage) -> str:
    text = (
        message.content
        if isinstance(message.content, str)
        else content_text([p.model_dump() for p in message.content])
    )
    if message.error:
        text = f"{text}\n[error] {message.error}" if text else f"[error] {message.error}"
    return text[:MAX_RESULT_CHARS]


def _client_input(run_input: RunAgentInput, has_state: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if run_input.tools:
        out["tools"] = [
            {"name": t.name, "description": t.description, "parameters": t.parameters}
            for t in run_input.tools
        ]
    if run_input.context:
        out["context"] = [
            {"description": c.description, "value": c.value} for c in run_input.context
        ]
    if has_state:
        out["state"] = run_input.state
    return out


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def thread_conversation_id(*, actor: Any, thread_id: str) -> uuid.UUID:
    """The conversation id of an AG-UI thread: the thread id itself when it is a UUID, else
    derived from the workspace, the user and the thread id (stable, never shared)."""
    return _uuid_or_none(thread_id) or uuid.uuid5(
        THREAD_NAMESPACE, f"{actor.workspace_id}/{actor.user.id}/{thread_id}"
    )


# --- starting a run --------------------------------------------------------------------------


@dataclass
class AguiRun:
    """A run started (or resumed) for one AG-UI request, with what its stream needs."""

    run: Run
    thread_id: str
    run_id: str
    client_tool_names: frozenset[str]
    state: Any = _NO_STATE
    # A resumed run streams its events after this cursor (its pause); a new one from start.
    after: int | None = None
    resumed: bool = False
    conversation_id: uuid.UUID = field(init=False)

    def __post_init__(self) -> None:
        self.conversation_id = self.run.conversation_id


def _thread_conversation(*, actor: Any, agent: Any, thread_id: str) -> Conversation | None:
    conversation_id = thread_conversation_id(actor=actor, thread_id=thread_id)
    if not conversation_exists(conversation_id=conversation_id):
        return None
    conversation = access_conversation(actor=actor, conversation_id=conversation_id)
    if conversation.agent_id != agent.id:
        raise ValidationFailed(
            "This thread is a conversation with another agent.", field="threadId"
        )
    return conversation


def _new_conversation(*, actor: Any, agent: Any, thread_id: str) -> tuple[Conversation, bool]:
    conversation_id = thread_conversation_id(actor=actor, thread_id=thread_id)
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction survives
            conversation = conversation_create(
                actor=actor,
                agent=agent,
                source=ConversationSource.AGUI,
                conversation_id=conversation_id,
            )
    except IntegrityError:
        # Created by a concurrent request of the same thread, or another's: 404 then.
        existing = _thread_conversation(actor=actor, agent=agent, thread_id=thread_id)
        if existing is None:
            raise ConversationNotFound() from None
        return existing, False
    return conversation, True


def _fresh_run_id(run_id: str) -> uuid.UUID | None:
    """Our run's id for the client's runId: itself when it is a UUID no run has."""
    value = _uuid_or_none(run_id)
    if value is not None and run_exists(run_id=value):
        raise ValidationFailed("runId names a run that already exists.", field="runId")
    return value


def _pause_cursor(run: Run) -> int:
    """The cursor of the run's latest pause (`run.requires_action`), waiting briefly for
    it to reach the event log (the pause is recorded before its event is written)."""
    deadline = time.monotonic() + PAUSE_LOG_WAIT_SECONDS
    while True:
        cursor = run_pause_cursor(run=run)
        if cursor is not None or time.monotonic() > deadline:
            return cursor if cursor is not None else -1
        time.sleep(0.05)


def agui_run_start(*, actor: Any, agent: Any, run_input: RunAgentInput, has_state: bool) -> AguiRun:
    """Start the run an AG-UI input asks for (agent already access-checked): a new turn
    when the input ends with a user message, or the resumption of the thread's paused run
    when it ends with the results of its pending client tool calls (and/or carries
    `resume` entries for its approvals). Raises ValidationFailed, ConversationNotFound."""
    messages = list(run_input.messages)
    state = run_input.state if has_state else _NO_STATE
    last = messages[-1] if messages else None
    conversation = _thread_conversation(actor=actor, agent=agent, thread_id=run_input.thread_id)
    client_input = _client_input(run_input, has_state)

    if isinstance(last, UserMessage) and not run_input.resume:
        where = f"messages[{len(messages) - 1}]"
        content = _user_content(last, where)
        if not content_text(content).strip() and not isinstance(content, list):
            raise ValidationFailed("The message is empty.", field=f"{where}.content")
        run_id = _fresh_run_id(run_input.run_id)
        history = [
            h
            for index, m in enumerate(messages[:-1])
            if (h := _history_message(m, f"messages[{index}]")) is not None
        ]
        try:
            if conversation is None:
                # One transaction: a refused message leaves no new conversation behind.
                with transaction.atomic():
                    conversation, created = _new_conversation(
                        actor=actor, agent=agent, thread_id=run_input.thread_id
                    )
                    if created:
                        conversation_history_import(conversation=conversation, messages=history)
                    run = message_send(
                        actor=actor,
                        conversation=conversation,
                        content=content,
                        stream=True,
                        client_input=client_input,
                        run_id=run_id,
                    )
            else:
                paused = run_paused_of(conversation=conversation)
                run = message_send(
                    actor=actor,
                    conversation=conversation,
                    content=content,
                    stream=True,
                    # A new message abandons the tool calls a paused run waits for.
                    running_run_behavior="interrupt" if paused is not None else "queue",
                    client_input=client_input,
                    run_id=run_id,
                )
        except ValidationFailed as exc:
            if exc.details and exc.details[0]["field"] == "content":
                raise ValidationFailed(exc.message, field=f"{where}.content") from exc
            raise
        names = frozenset(t["name"] for t in client_input.get("tools", []))
        return AguiRun(
            run=run,
            thread_id=run_input.thread_id,
            run_id=run_input.run_id,
            client_tool_names=names,
            state=state,
        )

    if isinstance(last, ToolMessage) or run_input.resume:
        paused = run_paused_of(conversation=conversation) if conversation is not None else None
        if paused is None:
            raise ValidationFailed(
                "No run of this thread waits for tool results or approvals.", field="messages"
            )
        results: dict[str, str] = {}
        for message in reversed(messages):
            if not isinstance(message, ToolMessage):
                break
            results.setdefault(message.tool_call_id, _tool_content(message))
        decisions = {
            entry.interrupt_id: entry.status == "resolved"
            and not (isinstance(entry.payload, dict) and entry.payload.get("approved") is False)
            for entry in run_input.resume or []
        }
        after = _pause_cursor(paused)
        run = run_submit_tool_results(actor=actor, run=paused, results=results, decisions=decisions)
        names = frozenset(t.get("name") for t in (run.client_input.get("tools") or []))
        return AguiRun(
            run=run,
            thread_id=run_input.thread_id,
            run_id=run_input.run_id,
            client_tool_names=names,
            state=state,
            after=after,
            resumed=True,
        )

    raise ValidationFailed(
        "The last message is a user message, or the tool messages answering the pending "
        "tool calls of the thread's paused run.",
        field=f"messages[{len(messages) - 1}]",
    )


# --- events ----------------------------------------------------------------------------------


def _ms() -> int:
    return int(time.time() * 1000)


class AguiTranslator:
    """Our typed events of one run -> AG-UI events (the only place that maps them).
    `finished` once a terminal event (RUN_FINISHED or RUN_ERROR) was produced."""

    def __init__(self, agui: AguiRun) -> None:
        self.agui = agui
        self.open_text: str | None = None
        self.step_text: str | None = None  # the text message of the current model call
        self.open_reasoning: str | None = None
        self.finished = False

    def started(self) -> list[BaseEvent]:
        events: list[BaseEvent] = [
            RunStartedEvent(
                thread_id=self.agui.thread_id,
                run_id=self.agui.run_id,
                protocol_version=PROTOCOL_VERSION,
                timestamp=_ms(),
                metadata={
                    "conversationId": str(self.agui.conversation_id),
                    "runId": str(self.agui.run.id),
                },
            )
        ]
        if self.agui.state is not _NO_STATE:
            events.append(StateSnapshotEvent(snapshot=self.agui.state, timestamp=_ms()))
        return events

    def _close_text(self) -> list[BaseEvent]:
        if self.open_text is None:
            return []
        message_id, self.open_text = self.open_text, None
        return [TextMessageEndEvent(message_id=message_id, timestamp=_ms())]

    def _close_reasoning(self) -> list[BaseEvent]:
        if self.open_reasoning is None:
            return []
        message_id, self.open_reasoning = self.open_reasoning, None
        return [
            ReasoningMessageEndEvent(message_id=message_id, timestamp=_ms()),
            ReasoningEndEvent(message_id=message_id, timestamp=_ms()),
        ]

    def _reasoning(self, event: Step) -> list[BaseEvent]:
        """The model's reasoning of one model call: one reasoning message."""
        out: list[BaseEvent] = []
        if self.open_reasoning is None:
            message_id = str(uuid.uuid4())
            self.open_reasoning = message_id
            out += [
                ReasoningStartEvent(message_id=message_id, timestamp=_ms()),
                ReasoningMessageStartEvent(message_id=message_id, timestamp=_ms()),
            ]
        out.append(
            ReasoningMessageContentEvent(
                message_id=self.open_reasoning, delta=event.thinking_delta or "", timestamp=_ms()
            )
        )
        return out

    def _terminal(self, event: BaseEvent) -> list[BaseEvent]:
        self.finished = True
        return [*self._close_reasoning(), *self._close_text(), event]

    def _finished(self, outcome: Any, usage: list[TokenUsage] | None = None) -> list[BaseEvent]:
        return self._terminal(
            RunFinishedEvent(
                thread_id=self.agui.thread_id,
                run_id=self.agui.run_id,
                outcome=outcome,
                usage=usage,
                timestamp=_ms(),
            )
        )

    def translate(self, event: Event) -> list[BaseEvent]:
        if self.finished:
            return []
        if isinstance(event, Step) and event.kind == "thinking" and event.thinking_delta:
            return self._reasoning(event)
        return [*self._close_reasoning(), *self._translate(event)]

    def _translate(self, event: Event) -> list[BaseEvent]:
        if isinstance(event, AnswerStart):
            out = self._close_text()
            self.open_text = self.step_text = event.message_id
            return [
                *out,
                TextMessageStartEvent(
                    message_id=event.message_id, role="assistant", timestamp=_ms()
                ),
            ]
        if isinstance(event, AnswerDelta):
            out = []
            if self.open_text != event.message_id:
                out = self.translate(AnswerStart(message_id=event.message_id))
            if not event.delta:
                return out
            return [
                *out,
                TextMessageContentEvent(
                    message_id=event.message_id, delta=event.delta, timestamp=_ms()
                ),
            ]
        if isinstance(event, AnswerDone):
            if self.open_text == event.message_id:
                return self._close_text()
            if not event.content:
                return []
            return [
                *self.translate(AnswerStart(message_id=event.message_id)),
                *self.translate(AnswerDelta(message_id=event.message_id, delta=event.content)),
                *self._close_text(),
            ]
        if isinstance(event, ToolCall):
            args = event.arguments
            delta = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            return [
                *self._close_text(),
                ToolCallStartEvent(
                    tool_call_id=event.tool_call_id,
                    tool_call_name=event.name,
                    parent_message_id=self.step_text,
                    timestamp=_ms(),
                ),
                ToolCallArgsEvent(tool_call_id=event.tool_call_id, delta=delta, timestamp=_ms()),
                ToolCallEndEvent(tool_call_id=event.tool_call_id, timestamp=_ms()),
            ]
        if isinstance(event, ToolResult):
            return [
                *self._close_text(),
                ToolCallResultEvent(
                    message_id=str(uuid.uuid5(self.agui.run.id, event.tool_call_id)),
                    tool_call_id=event.tool_call_id,
                    content=event.content,
                    role="tool",
                    timestamp=_ms(),
                ),
            ]
        if isinstance(event, RunRequiresAction):
            client = [p for p in event.pending if p.name in self.agui.client_tool_names]
            approvals = [p for p in event.pending if p.name not in self.agui.client_tool_names]
            if approvals:
                return self._finished(
                    RunFinishedInterruptOutcome(
                        interrupts=[
                            Interrupt(
                                id=p.tool_call_id,
                                reason="tool_approval",
                                message=f"Approve the call of the tool {p.name}?",
                                tool_call_id=p.tool_call_id,
                                metadata={"name": p.name, "arguments": p.arguments},
                            )
                            for p in approvals
                        ]
                    )
                )
            return self._finished(
                RunFinishedSuccessOutcome(pending_tool_call_ids=[p.tool_call_id for p in client])
            )
        if isinstance(event, RunCompleted):
            usage = TokenUsage(
                input_tokens=event.usage.input_tokens,
                output_tokens=event.usage.output_tokens,
                total_tokens=event.usage.input_tokens + event.usage.output_tokens,
            )
            return self._finished(RunFinishedSuccessOutcome(), [usage])
        if isinstance(event, RunCancelled):
            return self._finished(RunFinishedCancelledOutcome())
        if isinstance(event, RunFailed):
            return self._terminal(
                RunErrorEvent(
                    message=event.error.message or event.error.code,
                    code=event.error.code,
                    timestamp=_ms(),
                )
            )
        if isinstance(event, RunInterrupted):
            return self._terminal(
                RunErrorEvent(message=event.reason, code="interrupted", timestamp=_ms())
            )
        if isinstance(event, End):
            return self._terminal(
                RunErrorEvent(
                    message="The run ended without a result.", code="run_ended", timestamp=_ms()
                )
            )
        if isinstance(event, Title):
            return [CustomEvent(name="title", value=event.title, timestamp=_ms())]
        if isinstance(event, Suggestions):
            return [CustomEvent(name="suggestions", value=event.suggestions, timestamp=_ms())]
        # run.started/queued, phase, step, compact, subagent, approval.required (its call
        # ends the run above), done: nothing the protocol shows.
        return []

    def stream_ended(self) -> list[BaseEvent]:
        """What closes a stream whose events stopped before the run's end."""
        if self.finished:
            return []
        return self._terminal(
            RunErrorEvent(
                message="The event stream ended early.", code="stream_ended", timestamp=_ms()
            )
        )


async def agui_stream(agui: AguiRun) -> AsyncIterator[bytes]:
    """The SSE body of an AG-UI run: RUN_STARTED at once, then the run's events translated,
    up to its RUN_FINISHED or RUN_ERROR (a paused run's stream ends at the pause)."""
    encoder = EventEncoder()
    translator = AguiTranslator(agui)
    for out in translator.started():
        yield encoder.encode(out).encode()
    events: AsyncIterator[StreamItem]
    if agui.resumed:
        events = events_after(
            conversation_id=agui.conversation_id,
            after=agui.after,
            run_id=agui.run.id,
            stop_at_end=True,
        )
    else:
        events = run_events(agui.run)
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for item in events:
            if not isinstance(item, Envelope):
                yield item.to_sse()  # the heartbeat comment
                continue
            for out in translator.translate(item.event):
                yield encoder.encode(out).encode()
            if translator.finished:
                break
    for out in translator.stream_ended():
        yield encoder.encode(out).encode()


__all__ = [
    "AguiRun",
    "AguiTranslator",
    "agui_input_parse",
    "agui_run_start",
    "agui_stream",
    "thread_conversation_id",
]

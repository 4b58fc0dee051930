"""Every event the platform streams, defined once: one frozen dataclass per event type.

SSE, WebSocket, the durable run-event log, the OpenAI-compatible relay and webhooks all
use these classes; a payload cannot be built by hand elsewhere (`emit` takes only an
`Event`). On the wire an event travels in its `Envelope`:

    {"type": "answer.delta", "cursor": 42, "conversation_id": "…", "run_id": "…",
     "ts": "2026-11-22T16:00:00.000000+00:00", "data": {"message_id": "…", "delta": "Hel"}}

`data` is the event's `to_dict()`: its fields, ids as strings, optional fields (default
None) left out when unset. `cursor` is monotonic per conversation; it is the SSE `id:` and
what a client resumes from. Changing a class here is an API change: the table in
docs/events.md is rendered from this module (`python -m apps.core.events`) and a test
fails when the two differ.
"""

import dataclasses
import sys
import typing
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from types import NoneType, UnionType
from typing import Any, ClassVar, Self

import orjson


class EventType(StrEnum):
    RUN_QUEUED = "run.queued"
    RUN_STARTED = "run.started"
    STEP = "step"
    PHASE = "phase"
    TOOL_CALL = "tool.call"
    TOOL_RESULT = "tool.result"
    APPROVAL_REQUIRED = "approval.required"
    COMPACT = "compact"
    ANSWER_START = "answer.start"
    ANSWER_DELTA = "answer.delta"
    ANSWER_DONE = "answer.done"
    SUBAGENT = "subagent"
    REMOTE_AGENT_UPDATE = "remote_agent.update"
    TITLE = "title"
    SUGGESTIONS = "suggestions"
    RUN_REQUIRES_ACTION = "run.requires_action"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    RUN_INTERRUPTED = "run.interrupted"
    DONE = "done"
    END = "end"


# Events never written to the durable log one by one (they are coalesced per batch).
DELTA_TYPES = frozenset({EventType.ANSWER_DELTA, EventType.STEP})


def _plain(value: Any) -> Any:
    if isinstance(value, Payload):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _load(hint: Any, value: Any) -> Any:
    """A JSON value back into the type a field declares (nested payloads, lists of them)."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not NoneType]
        return _load(args[0], value) if len(args) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return [_load(item, v) for v in value]
    if isinstance(hint, type) and issubclass(hint, Payload):
        return hint.from_dict(value)
    if hint is uuid.UUID and isinstance(value, str):
        return uuid.UUID(value)
    if hint is datetime and isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


class Payload:
    """A JSON object with typed fields (events and the objects nested in them)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: every field, ids as strings; optional fields when set."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The object back from its `to_dict()` (unknown keys are ignored)."""
        hints = _hints(cls)
        kwargs = {
            f.name: _load(hints[f.name], data[f.name])
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.name in data
        }
        return cls(**kwargs)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


# --- objects nested in events ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage(Payload):
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class RunError(Payload):
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class PendingCall(Payload):
    tool_call_id: str
    name: str
    arguments: Any


@dataclass(frozen=True, slots=True)
class ToolCallRef(Payload):
    tool_call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolImage(Payload):
    """An image a tool produced, stored as a workspace file (`url`: its download URL)."""

    file_id: str
    path: str
    url: str


# --- the events ----------------------------------------------------------------------------


class Event(Payload):
    """Base of every streamed event. `type` is its wire name."""

    __slots__ = ()
    type: ClassVar[EventType]


@dataclass(frozen=True, slots=True)
class RunQueued(Event):
    """A message was queued behind the running run (announced by that run within its
    heartbeat interval); `position` 1 is the next to start."""

    type: ClassVar[EventType] = EventType.RUN_QUEUED
    queued_run_id: str
    position: int


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """A run begins (not repeated when it resumes after an approval)."""

    type: ClassVar[EventType] = EventType.RUN_STARTED
    agent_id: str
    message_id: str | None


@dataclass(frozen=True, slots=True)
class Step(Event):
    """The model reasons (`kind` "thinking", `thinking_delta` streams its reasoning) or
    decided to call tools (`kind` "tool_decision", with `tool_calls`)."""

    type: ClassVar[EventType] = EventType.STEP
    step: int
    kind: str
    thinking_delta: str | None = None
    tool_calls: list[ToolCallRef] | None = None


@dataclass(frozen=True, slots=True)
class Phase(Event):
    """The run changes phase: "thinking", "tool_calling", "answering" or "compacting"."""

    type: ClassVar[EventType] = EventType.PHASE
    phase: str


@dataclass(frozen=True, slots=True)
class ToolCall(Event):
    """The model calls a tool (`source`: where it comes from, e.g. builtin, mcp, openapi,
    skill, knowledge, agent)."""

    type: ClassVar[EventType] = EventType.TOOL_CALL
    tool_call_id: str
    name: str
    arguments: Any
    source: str
    requires_approval: bool


@dataclass(frozen=True, slots=True)
class ToolResult(Event):
    """A tool returned (`synthetic`: a result made for a dangling call; `images`: the
    PNG images it produced, e.g. code_interpreter's charts, as workspace files with their
    download URLs)."""

    type: ClassVar[EventType] = EventType.TOOL_RESULT
    tool_call_id: str
    name: str
    content: str
    is_error: bool
    synthetic: bool
    images: list[ToolImage] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ApprovalRequired(Event):
    """A tool call waits for a human decision."""

    type: ClassVar[EventType] = EventType.APPROVAL_REQUIRED
    tool_call_id: str
    name: str
    arguments: Any


@dataclass(frozen=True, slots=True)
class Compact(Event):
    """Old turns were replaced by a summary message."""

    type: ClassVar[EventType] = EventType.COMPACT
    removed_messages: int
    summary_message_id: str


@dataclass(frozen=True, slots=True)
class AnswerStart(Event):
    """The answer message begins."""

    type: ClassVar[EventType] = EventType.ANSWER_START
    message_id: str


@dataclass(frozen=True, slots=True)
class AnswerDelta(Event):
    """A piece of the answer."""

    type: ClassVar[EventType] = EventType.ANSWER_DELTA
    message_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class AnswerDone(Event):
    """The answer is complete (its whole text and its citations)."""

    type: ClassVar[EventType] = EventType.ANSWER_DONE
    message_id: str
    content: str
    citations: list[Any]


@dataclass(frozen=True, slots=True)
class Subagent(Event):
    """A step of a sub-agent working on the parent's tool call: its phase, tool.call,
    tool.result, answer.start and answer.done (not its deltas) as `event: {type, data}`;
    `depth` 1 for the run's own sub-agents, 2 for theirs."""

    type: ClassVar[EventType] = EventType.SUBAGENT
    tool_call_id: str
    agent_id: str
    depth: int
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RemoteAgentUpdate(Event):
    """A remote A2A agent working on the run's tool call: its task's A2A `state`
    (submitted, working, input_required, completed, failed, canceled, rejected) and what it
    said with it (`text`, may be empty); the last update of a call has the final state."""

    type: ClassVar[EventType] = EventType.REMOTE_AGENT_UPDATE
    tool_call_id: str
    remote_agent_id: str
    name: str
    task_id: str
    state: str
    text: str


@dataclass(frozen=True, slots=True)
class Title(Event):
    """The conversation got its automatic title (chat conversations, first exchange)."""

    type: ClassVar[EventType] = EventType.TITLE
    title: str


@dataclass(frozen=True, slots=True)
class Suggestions(Event):
    """Follow-up questions (chat conversations of agents with suggestions on)."""

    type: ClassVar[EventType] = EventType.SUGGESTIONS
    suggestions: list[str]


@dataclass(frozen=True, slots=True)
class RunRequiresAction(Event):
    """The run is paused for approvals; a stream stays open and continues once the
    decisions are posted."""

    type: ClassVar[EventType] = EventType.RUN_REQUIRES_ACTION
    pending: list[PendingCall]


@dataclass(frozen=True, slots=True)
class RunCompleted(Event):
    """The run finished."""

    type: ClassVar[EventType] = EventType.RUN_COMPLETED
    usage: Usage


@dataclass(frozen=True, slots=True)
class RunFailed(Event):
    """The run failed (e.g. `max_loops_exceeded`, `run_timeout`, provider errors)."""

    type: ClassVar[EventType] = EventType.RUN_FAILED
    error: RunError


@dataclass(frozen=True, slots=True)
class RunCancelled(Event):
    """Cancelled (the cancel endpoint or an interrupting message)."""

    type: ClassVar[EventType] = EventType.RUN_CANCELLED
    reason: str


@dataclass(frozen=True, slots=True)
class RunInterrupted(Event):
    """The process executing it stopped (found by its stale heartbeat, or shut down)."""

    type: ClassVar[EventType] = EventType.RUN_INTERRUPTED
    reason: str


@dataclass(frozen=True, slots=True)
class Done(Event):
    """The final result of the run."""

    type: ClassVar[EventType] = EventType.DONE
    status: str
    message_id: str | None
    usage: Usage


@dataclass(frozen=True, slots=True)
class End(Event):
    """Always the last event of a run; a run stream closes after it."""

    type: ClassVar[EventType] = EventType.END


EVENT_CLASSES: dict[str, type[Event]] = {
    str(cls.type): cls
    for cls in (
        RunQueued,
        RunStarted,
        Step,
        Phase,
        ToolCall,
        ToolResult,
        ApprovalRequired,
        Compact,
        AnswerStart,
        AnswerDelta,
        AnswerDone,
        Subagent,
        RemoteAgentUpdate,
        Title,
        Suggestions,
        RunRequiresAction,
        RunCompleted,
        RunFailed,
        RunCancelled,
        RunInterrupted,
        Done,
        End,
    )
}
assert set(EVENT_CLASSES) == {str(t) for t in EventType}, "one class per event type"


def event_from(type: str, data: dict[str, Any]) -> Event:
    """An event from its wire `type` and `data`. Raises KeyError for an unknown type."""
    return EVENT_CLASSES[type].from_dict(data)


# --- the envelope ----------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    # UTF-8 as is (no \uXXXX escapes); anything orjson does not know becomes its str().
    return orjson.dumps(value, default=str)


@dataclass(frozen=True)
class Envelope:
    """One published event: the event with its place in the conversation. `cursor` is
    assigned by the publisher."""

    event: Event
    conversation_id: uuid.UUID | None
    run_id: uuid.UUID | None
    cursor: int = -1
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def type(self) -> EventType:
        return self.event.type

    @cached_property
    def data(self) -> dict[str, Any]:
        return self.event.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": str(self.event.type),
            "cursor": self.cursor,
            "conversation_id": str(self.conversation_id) if self.conversation_id else None,
            "run_id": str(self.run_id) if self.run_id else None,
            "ts": self.ts.isoformat(),
            "data": self.data,
        }

    @cached_property
    def _json(self) -> bytes:
        # Made once per event, however many streams send it (cached_property writes the
        # instance's __dict__ directly, which a frozen dataclass allows).
        return _dumps(self.to_dict())

    def to_json(self) -> str:
        return self._json.decode()

    @cached_property
    def _sse(self) -> bytes:
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (
            self.cursor,
            str(self.event.type).encode(),
            self._json,
        )

    def to_sse(self) -> bytes:
        """The SSE frame: `id` is the cursor, `event` the type, `data` the JSON object."""
        return self._sse

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Envelope":
        return cls(
            event=event_from(raw["type"], raw.get("data") or {}),
            conversation_id=uuid.UUID(raw["conversation_id"])
            if raw.get("conversation_id")
            else None,
            run_id=uuid.UUID(raw["run_id"]) if raw.get("run_id") else None,
            cursor=int(raw.get("cursor", -1)),
            ts=datetime.fromisoformat(raw["ts"]) if raw.get("ts") else datetime.now(UTC),
        )


# --- control frames of a stream (never logged, no cursor) ---------------------------------------


class Frame(Payload):
    """A stream's control frame: `{"type": ..., ...its fields}` on the WebSocket."""

    __slots__ = ()
    type: ClassVar[str]

    def to_json(self) -> str:
        return _dumps({"type": self.type, **self.to_dict()}).decode()


@dataclass(frozen=True, slots=True)
class Heartbeat(Frame):
    """The stream is idle (every 15 s); on SSE the comment `: keep-alive`."""

    type: ClassVar[str] = "heartbeat"

    def to_sse(self) -> bytes:
        return SSE_HEARTBEAT


@dataclass(frozen=True, slots=True)
class StreamError(Frame):
    """WebSocket only: why the stream is refused, sent just before the close code
    (4400 invalid_cursor, 4401 unauthorized, 4403 forbidden, 4404 not found)."""

    type: ClassVar[str] = "error"
    code: str
    message: str


FRAME_CLASSES: tuple[type[Frame], ...] = (Heartbeat, StreamError)
SSE_HEARTBEAT = b": keep-alive\n\n"
HEARTBEAT = Heartbeat()


# --- workflow run events -----------------------------------------------------------------------
#
# A workflow run (apps.workflows) streams its own events, with a cursor monotonic per run,
# written to the run's durable log (`WorkflowEvent`) before they are served. On the wire:
# `{"type", "cursor", "workflow_run_id", "ts", "data": event.to_dict()}`; the SSE `id` is
# the cursor.


class WorkflowEvent(Payload):
    """Base of every workflow run event. `type` is its wire name."""

    __slots__ = ()
    type: ClassVar[str]


@dataclass(frozen=True, slots=True)
class WorkflowRunStarted(WorkflowEvent):
    """A worker started (or resumed: `attempt` > 1) driving the run."""

    type: ClassVar[str] = "workflow.run.started"
    workflow_id: uuid.UUID
    version: int
    attempt: int


@dataclass(frozen=True, slots=True)
class WorkflowStepStarted(WorkflowEvent):
    """A step began executing (`attempt` counts its retries)."""

    type: ClassVar[str] = "workflow.step.started"
    step_id: str
    step_type: str
    attempt: int


@dataclass(frozen=True, slots=True)
class WorkflowStepFinished(WorkflowEvent):
    """A step ended: `status` succeeded, failed or skipped, with `error` when it failed."""

    type: ClassVar[str] = "workflow.step.finished"
    step_id: str
    step_type: str
    status: str
    usage: Usage
    error: RunError | None = None


@dataclass(frozen=True, slots=True)
class WorkflowApprovalRequired(WorkflowEvent):
    """An approval step waits for a member to approve or reject it."""

    type: ClassVar[str] = "workflow.approval.required"
    step_id: str
    message: str


@dataclass(frozen=True, slots=True)
class WorkflowRunFinished(WorkflowEvent):
    """The run ended: `status` succeeded, failed or cancelled (the last event of a run)."""

    type: ClassVar[str] = "workflow.run.finished"
    status: str
    outputs: dict[str, Any]
    usage: Usage
    error_step: str | None = None
    error: RunError | None = None


WORKFLOW_EVENT_CLASSES: dict[str, type[WorkflowEvent]] = {
    cls.type: cls
    for cls in (
        WorkflowRunStarted,
        WorkflowStepStarted,
        WorkflowStepFinished,
        WorkflowApprovalRequired,
        WorkflowRunFinished,
    )
}


# --- outbound events (webhooks) ------------------------------------------------------------
#
# What the platform tells the outside world, one class per webhook event type. They are
# not streamed: `core.outbox.outbox_emit` takes only these, inside the transaction that
# makes them true, and the webhook body is `{"id", "type", "version", "timestamp",
# "workspace_id", "data": event.to_dict()}`. `version` is the class's: a change of shape
# that could break a receiver gets a new version. docs/webhooks.md is rendered from here
# (`python -m apps.core.events webhooks`) and a test fails when the two differ.


class OutboundEvent(Payload):
    """Base of every webhook event. `type` is its wire name, `version` its payload's."""

    __slots__ = ()
    type: ClassVar[str]
    version: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class _RunNotice(OutboundEvent):
    """The fields every run event starts with (not an event itself)."""

    run_id: uuid.UUID
    conversation_id: uuid.UUID
    agent_id: uuid.UUID
    status: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class RunCompletedNotice(_RunNotice):
    """A run ended with an answer (`message_id` null when it has no answer message)."""

    type: ClassVar[str] = "run.completed"
    message_id: uuid.UUID | None
    answer: str


@dataclass(frozen=True, slots=True)
class RunFailedNotice(_RunNotice):
    """A run failed (the `code` is one of the run's error codes, e.g. `run_timeout`)."""

    type: ClassVar[str] = "run.failed"
    error: RunError


@dataclass(frozen=True, slots=True)
class RunRequiresActionNotice(_RunNotice):
    """A run waits for a decision on tool calls that need approval (`pending`); post the
    decisions to `POST /api/v1/runs/{run_id}/approvals`."""

    type: ClassVar[str] = "run.requires_action"
    pending: list[PendingCall]


@dataclass(frozen=True, slots=True)
class _TaskExecutionNotice(OutboundEvent):
    """The fields every task execution event starts with (not an event itself);
    `trigger`: schedule, manual or trigger."""

    task_id: uuid.UUID
    task_name: str
    execution_id: uuid.UUID
    due_at: datetime
    trigger: str
    status: str
    attempts: int
    run_id: uuid.UUID | None
    conversation_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class TaskExecutionCompletedNotice(_TaskExecutionNotice):
    """A scheduled task's execution succeeded (`trigger`: schedule, manual or trigger)."""

    type: ClassVar[str] = "task.execution.completed"
    answer: str


@dataclass(frozen=True, slots=True)
class TaskExecutionFailedNotice(_TaskExecutionNotice):
    """A scheduled task's execution failed for good (after its retries)."""

    type: ClassVar[str] = "task.execution.failed"
    error: RunError


@dataclass(frozen=True, slots=True)
class DocumentIndexedNotice(OutboundEvent):
    """A knowledge base document was indexed and is searchable."""

    type: ClassVar[str] = "document.indexed"
    document_id: uuid.UUID
    knowledge_base_id: uuid.UUID
    name: str
    status: str
    chunk_count: int


@dataclass(frozen=True, slots=True)
class DocumentFailedNotice(OutboundEvent):
    """A knowledge base document could not be indexed (the reason is readable)."""

    type: ClassVar[str] = "document.failed"
    document_id: uuid.UUID
    knowledge_base_id: uuid.UUID
    name: str
    status: str
    error: RunError


@dataclass(frozen=True, slots=True)
class AgentJobCompletedNotice(OutboundEvent):
    """An agent job (agent generation, prompt optimization) ended: `status` succeeded,
    failed or cancelled, with `error` when it failed."""

    type: ClassVar[str] = "agent_job.completed"
    job_id: uuid.UUID
    kind: str
    status: str
    error: RunError | None = None


@dataclass(frozen=True, slots=True)
class WebhookTestNotice(OutboundEvent):
    """Sent on request (`POST …/{id}/test`) to that endpoint only."""

    type: ClassVar[str] = "webhook.test"
    endpoint_id: uuid.UUID
    message: str


@dataclass(frozen=True, slots=True)
class _WorkflowRunNotice(OutboundEvent):
    """The fields every workflow run event starts with (not an event itself)."""

    workflow_id: uuid.UUID
    workflow_run_id: uuid.UUID
    workflow_version: int
    source: str
    status: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class WorkflowRunCompletedNotice(_WorkflowRunNotice):
    """A workflow run succeeded, with the outputs of its end step(s)."""

    type: ClassVar[str] = "workflow.run.completed"
    outputs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WorkflowRunFailedNotice(_WorkflowRunNotice):
    """A workflow run failed (`step_id`: the step that failed it) or was cancelled."""

    type: ClassVar[str] = "workflow.run.failed"
    step_id: str
    error: RunError


@dataclass(frozen=True, slots=True)
class WorkflowRunRequiresActionNotice(_WorkflowRunNotice):
    """A workflow run waits for an approval: post it to
    `POST /api/v1/workflows/runs/{workflow_run_id}/approve` (or `/reject`)."""

    type: ClassVar[str] = "workflow.run.requires_action"
    step_id: str
    message: str


OUTBOUND_EVENT_CLASSES: dict[str, type[OutboundEvent]] = {
    cls.type: cls
    for cls in (
        RunCompletedNotice,
        RunFailedNotice,
        RunRequiresActionNotice,
        TaskExecutionCompletedNotice,
        TaskExecutionFailedNotice,
        DocumentIndexedNotice,
        DocumentFailedNotice,
        AgentJobCompletedNotice,
        WebhookTestNotice,
        WorkflowRunCompletedNotice,
        WorkflowRunFailedNotice,
        WorkflowRunRequiresActionNotice,
    )
}


def outbound_event_from(type: str, data: dict[str, Any]) -> OutboundEvent:
    """A webhook event from its `type` and `data`. Raises KeyError for an unknown type."""
    return OUTBOUND_EVENT_CLASSES[type].from_dict(data)


# --- docs/events.md ----------------------------------------------------------------------------


def _shape(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not NoneType]
        return _shape(args[0]) if len(args) == 1 else ""
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        inner = _shape(item)
        return f"[{inner}]" if inner else ""
    if isinstance(hint, type) and issubclass(hint, Payload):
        return _fields_doc(hint)
    return ""


def _fields_doc(cls: type) -> str:
    hints = _hints(cls)
    parts = []
    for f in dataclasses.fields(cls):
        name = f.name + ("?" if f.default is None else "")
        shape = _shape(hints[f.name])
        parts.append(f"{name}: {shape}" if shape else name)
    return "{" + ", ".join(parts) + "}"


def _doc(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split())


def docs_table() -> str:
    """The tables of docs/events.md: every event and control frame with its fields."""
    lines = ["| type | data | when |", "|---|---|---|"]
    for type_name, cls in EVENT_CLASSES.items():
        lines.append(f"| `{type_name}` | `{_fields_doc(cls)}` | {_doc(cls)} |")
    lines += ["", "| frame | fields | when |", "|---|---|---|"]
    for frame in FRAME_CLASSES:
        lines.append(f"| `{frame.type}` | `{_fields_doc(frame)}` | {_doc(frame)} |")
    return "\n".join(lines) + "\n"


def webhooks_docs_table() -> str:
    """The table of docs/webhooks.md: every webhook event with its version and `data`."""
    lines = ["| type | version | data | when |", "|---|---|---|---|"]
    for type_name, cls in OUTBOUND_EVENT_CLASSES.items():
        lines.append(f"| `{type_name}` | {cls.version} | `{_fields_doc(cls)}` | {_doc(cls)} |")
    return "\n".join(lines) + "\n"


def workflow_docs_table() -> str:
    """The table of docs/workflows.md: every workflow run event with its `data`."""
    lines = ["| type | data | when |", "|---|---|---|"]
    for type_name, cls in WORKFLOW_EVENT_CLASSES.items():
        lines.append(f"| `{type_name}` | `{_fields_doc(cls)}` | {_doc(cls)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # `python -m apps.core.events` prints docs/events.md's tables, `… webhooks` the one of
    # docs/webhooks.md, `… workflows` the one of docs/workflows.md.
    renderers = {"webhooks": webhooks_docs_table, "workflows": workflow_docs_table}
    sys.stdout.write(renderers.get(" ".join(sys.argv[1:]), docs_table)())

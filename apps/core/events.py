"""Every event the platform streams, defined once.

SSE, WebSocket, the durable run-event log and docs/events.md all use these shapes. An event
on the wire is one JSON object:

    {"type": "answer.delta", "cursor": 42, "conversation_id": "…", "run_id": "…",
     "ts": "2026-11-22T16:00:00.000000+00:00", "data": {"message_id": "…", "delta": "Hel"}}

`cursor` is monotonic per conversation; it is the SSE `id:` and what a client resumes from.
Changing a shape here is an API change: update docs/events.md with it.
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any


class EventType(StrEnum):
    RUN_QUEUED = "run.queued"  # {message_id, position}
    RUN_STARTED = "run.started"  # {agent_id, message_id}
    STEP = "step"  # {step, kind: "thinking"|"tool_decision", thinking_delta?}
    PHASE = "phase"  # {phase: "thinking"|"tool_calling"|"answering"|"compacting"}
    TOOL_CALL = "tool.call"  # {tool_call_id, name, arguments, source, requires_approval}
    TOOL_RESULT = "tool.result"  # {tool_call_id, name, content, is_error, synthetic}
    APPROVAL_REQUIRED = "approval.required"  # {tool_call_id, name, arguments}
    COMPACT = "compact"  # {removed_messages, summary_message_id}
    ANSWER_START = "answer.start"  # {message_id}
    ANSWER_DELTA = "answer.delta"  # {message_id, delta}
    ANSWER_DONE = "answer.done"  # {message_id, content, citations}
    SUBAGENT = "subagent"  # {tool_call_id, agent_id, depth, event: {type, data}}
    TITLE = "title"  # {title}
    SUGGESTIONS = "suggestions"  # {suggestions: [str]}
    RUN_REQUIRES_ACTION = "run.requires_action"  # {pending: [{tool_call_id, name, arguments}]}
    RUN_COMPLETED = "run.completed"  # {usage: {input_tokens, output_tokens}}
    RUN_FAILED = "run.failed"  # {error: {code, message}}
    RUN_CANCELLED = "run.cancelled"  # {reason}
    RUN_INTERRUPTED = "run.interrupted"  # {reason}
    DONE = "done"  # {status, message_id, usage}: the final result of the run
    END = "end"  # {}: always the last event of a run's stream


# Events after which a run's stream ends.
TERMINAL_TYPES = frozenset({EventType.END})
# Events never written to the durable log one by one (they are coalesced per batch).
DELTA_TYPES = frozenset({EventType.ANSWER_DELTA, EventType.STEP})


@dataclass(frozen=True)
class Event:
    """One streamed event. `cursor` is assigned by the publisher (-1 until then)."""

    type: EventType
    conversation_id: uuid.UUID | None
    run_id: uuid.UUID | None
    data: dict[str, Any] = field(default_factory=dict)
    cursor: int = -1
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    def with_cursor(self, cursor: int) -> "Event":
        return Event(self.type, self.conversation_id, self.run_id, self.data, cursor, self.ts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": str(self.type),
            "cursor": self.cursor,
            "conversation_id": str(self.conversation_id) if self.conversation_id else None,
            "run_id": str(self.run_id) if self.run_id else None,
            "ts": self.ts.isoformat(),
            "data": self.data,
        }

    @cached_property
    def _json(self) -> str:
        # Made once per event, however many streams send it (cached_property writes the
        # instance's __dict__ directly, which a frozen dataclass allows).
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str)

    def to_json(self) -> str:
        return self._json

    @cached_property
    def _sse(self) -> bytes:
        return f"id: {self.cursor}\nevent: {self.type}\ndata: {self._json}\n\n".encode()

    def to_sse(self) -> bytes:
        """The SSE frame: `id` is the cursor, `event` the type, `data` the JSON object."""
        return self._sse

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Event":
        return cls(
            type=EventType(raw["type"]),
            conversation_id=uuid.UUID(raw["conversation_id"])
            if raw.get("conversation_id")
            else None,
            run_id=uuid.UUID(raw["run_id"]) if raw.get("run_id") else None,
            data=raw.get("data", {}),
            cursor=int(raw.get("cursor", -1)),
            ts=datetime.fromisoformat(raw["ts"]) if raw.get("ts") else datetime.now(UTC),
        )


SSE_HEARTBEAT = b": keep-alive\n\n"

"""The platform's outbound events (webhooks), emitted where they happen.

An app that has something to tell the outside world (a run completed, a document failed
to index, a scheduled execution ended) calls `outbox_emit(OutboundEvent(...))` INSIDE the
transaction that makes it true. Sinks registered here (the tasks app registers the
webhook outbox from its `AppConfig.ready`) write their rows in that same transaction, so
an event is recorded exactly when its cause commits: never lost when a worker or the
broker dies after the commit, never sent for a transaction that rolled back.

This module sits in core so that apps to the left of `tasks` (conversations, knowledge,
agents) can emit without importing `tasks`. Event types and payload shapes are listed in
`EVENT_TYPES` and documented in docs/webhooks.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The event types a webhook endpoint can subscribe to, with what `data` holds.
EVENT_TYPES: dict[str, str] = {
    "run.completed": "A run ended with an answer: run, conversation, agent, answer, usage.",
    "run.failed": "A run failed: run, conversation, agent, error {code, message}.",
    "run.requires_action": "A run waits for approval of tool calls: run, pending calls.",
    "task.execution.completed": "A task execution succeeded: task, execution, run, answer.",
    "task.execution.failed": "A scheduled task's execution failed: task, execution, error.",
    "document.indexed": "A knowledge document was indexed: document, knowledge base.",
    "document.failed": "A knowledge document failed to index: document, error.",
    "agent_job.completed": "An agent job (generate agent, optimize prompt) ended: job, status.",
    "webhook.test": "A test event sent on request from the API.",
}
PAYLOAD_VERSION = 1


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    """One event for the outside world. `data` is JSON-serialisable and holds no secret."""

    type: str
    workspace_id: uuid.UUID
    data: dict[str, Any]
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"Unknown outbound event type {self.type!r}.")

    def payload(self) -> dict[str, Any]:
        """The versioned body a receiver gets (Standard Webhooks: type, timestamp, data)."""
        return {
            "id": str(self.id),
            "type": self.type,
            "version": PAYLOAD_VERSION,
            "timestamp": self.ts.isoformat(),
            "workspace_id": str(self.workspace_id),
            "data": self.data,
        }


Sink = Callable[[OutboundEvent], object]
_sinks: dict[str, Sink] = {}


def outbox_register(name: str, sink: Sink) -> None:
    """Add a sink (idempotent by name). Call from an AppConfig.ready."""
    _sinks[name] = sink


def outbox_emit(event: OutboundEvent) -> None:
    """Hand `event` to every sink, in the caller's transaction (call it inside the
    transaction that makes the event true). A sink error propagates: the caller's
    transaction rolls back rather than commit without its event."""
    for sink in list(_sinks.values()):
        sink(event)

"""The platform's outbound events (webhooks), emitted where they happen.

An app that has something to tell the outside world (a run completed, a document failed
to index, a scheduled execution ended) calls `outbox_emit(<event>, workspace_id=...)`
INSIDE the transaction that makes it true. The event is an instance of one of the typed
classes of `core.events` (`OUTBOUND_EVENT_CLASSES`): nothing else is accepted, so a
payload cannot be built by hand. Sinks registered here (the tasks app registers the
webhook outbox from its `AppConfig.ready`) write their rows in that same transaction, so
an event is recorded exactly when its cause commits: never lost when a worker or the
broker dies after the commit, never sent for a transaction that rolled back.

This module sits in core so that apps to the left of `tasks` (conversations, knowledge,
agents) can emit without importing `tasks`. The event types and their payloads are
documented in docs/webhooks.md, rendered from `core.events`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.core.events import OUTBOUND_EVENT_CLASSES, OutboundEvent

# The event types a webhook endpoint can subscribe to, with what they mean.
EVENT_TYPES: dict[str, str] = {
    type_name: " ".join((cls.__doc__ or "").split())
    for type_name, cls in OUTBOUND_EVENT_CLASSES.items()
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event on its way out: the typed event, the workspace it belongs to, its id
    (the `webhook-id` receivers deduplicate on) and when it happened."""

    event: OutboundEvent
    workspace_id: uuid.UUID
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        _require_outbound(self.event)

    @property
    def type(self) -> str:
        return self.event.type

    def payload(self) -> dict[str, Any]:
        """The versioned body a receiver gets (Standard Webhooks: type, timestamp, data)."""
        return {
            "id": str(self.id),
            "type": self.event.type,
            "version": self.event.version,
            "timestamp": self.ts.isoformat(),
            "workspace_id": str(self.workspace_id),
            "data": self.event.to_dict(),
        }


def _require_outbound(event: object) -> None:
    """Refuse anything but an instance of a registered outbound event class."""
    if not isinstance(event, OutboundEvent) or (
        OUTBOUND_EVENT_CLASSES.get(event.type) is not type(event)
    ):
        raise TypeError(
            f"Outbound events are instances of the classes of core.events "
            f"(OUTBOUND_EVENT_CLASSES), not {type(event).__name__}."
        )


Sink = Callable[[Outgoing], object]
_sinks: dict[str, Sink] = {}


def outbox_register(name: str, sink: Sink) -> None:
    """Add a sink (idempotent by name). Call from an AppConfig.ready."""
    _sinks[name] = sink


def outbox_emit(event: OutboundEvent, *, workspace_id: uuid.UUID) -> Outgoing:
    """Hand `event` (of `workspace_id`) to every sink, in the caller's transaction (call
    it inside the transaction that makes the event true). Raises TypeError for anything
    that is not an outbound event class of core.events. A sink error propagates: the
    caller's transaction rolls back rather than commit without its event."""
    outgoing = Outgoing(event=event, workspace_id=workspace_id)
    for sink in list(_sinks.values()):
        sink(outgoing)
    return outgoing

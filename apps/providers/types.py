"""What the model runtime takes and yields. Plain data: no Django, no SDK types."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class UsageContext:
    """Who a model call is accounted to (one usage row per call)."""

    workspace_id: uuid.UUID
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallRequest:
    """A complete tool call (emitted once its arguments have fully arrived).
    `arguments` is the JSON text the model produced (may be invalid JSON)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Finish:
    reason: str  # "stop" | "tool_calls" | "length" | "error"


ChatEvent = TextDelta | ReasoningDelta | ToolCallRequest | Usage | Finish


@dataclass
class ChatResult:
    text: str
    reasoning: str
    tool_calls: list[ToolCallRequest]
    usage: Usage
    finish_reason: str
    model_id: uuid.UUID


@dataclass(frozen=True)
class RerankResult:
    """The relevance of one document to the query: `index` into the documents sent."""

    index: int
    score: float


@dataclass
class ModelInfo:
    id: uuid.UUID
    provider_id: uuid.UUID
    name: str
    kind: str  # "chat" | "embedding" | "rerank"
    context_window: int | None
    max_output_tokens: int | None
    capabilities: set[str] = field(default_factory=set)
    dimensions: int | None = None

"""The shapes shared by the run engine (apps.agents.engine) and its callers
(apps.conversations): a frozen snapshot of an agent's configuration, the hooks a run
gives the engine, and what one turn produced.

A snapshot is taken once per run, so an agent edited mid-run does not change the run.
"""

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from apps.core.events import Event
from apps.core.tools import Citation


@dataclass(frozen=True)
class AgentSnapshot:
    """An agent's configuration at one version, as the engine needs it."""

    agent_id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    system_prompt: str
    model_id: uuid.UUID | None  # None: the workspace's default chat model
    temperature: float | None
    max_tokens: int | None
    reasoning: bool
    max_loops: int
    wall_clock_seconds: int
    tool_ids: tuple[uuid.UUID, ...]
    skill_ids: tuple[uuid.UUID, ...]  # pinned SkillVersion ids
    knowledge_base_ids: tuple[uuid.UUID, ...]
    subagent_ids: tuple[uuid.UUID, ...]
    builtin_tools: tuple[str, ...]  # e.g. ("current_time", "calculator")
    tools_requiring_approval: frozenset[str]
    suggestions_enabled: bool
    version: int
    # Added by the agents app: "conversation" (pass the history) or "none" (only the
    # current message). A default, so the contract's constructor calls keep working.
    memory_mode: str = "conversation"


class RunHooks(Protocol):
    """What the caller of the engine provides: publishing events and storing messages."""

    async def emit(self, event: Event) -> None:
        """Publish one typed event (apps.core.events)."""
        ...

    async def persist_message(self, message: dict[str, Any]) -> uuid.UUID:
        """Store an OpenAI-format message (plus an optional "metadata" key) and return
        its id."""
        ...


@dataclass
class TurnOutcome:
    """The result of one engine turn."""

    status: str  # "completed" | "requires_action" | "failed" | "cancelled"
    answer_message_id: uuid.UUID | None
    answer_text: str
    input_tokens: int
    output_tokens: int
    error_code: str = ""
    error_message: str = ""
    # [{tool_call_id, name, arguments}]
    pending_approvals: list[dict[str, Any]] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)

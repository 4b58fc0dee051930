"""The shapes every tool shares, whatever app provides it (built-ins in agents, the
registry of HTTP/OpenAPI/MCP tools and skills in skills, knowledge_search in knowledge).

The run engine (apps.agents) gathers ToolSpecs from those apps, offers them to the model
as JSON-Schema functions, and executes a call through the provider of the spec, getting
back a ToolResult. A tool never raises to the engine for a user-visible failure: it
returns ToolResult(is_error=True, content="what went wrong").
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from apps.core.events import Event

ToolSource = str
# "builtin" | "mcp" | "openapi" | "http" | "skill" | "knowledge" | "agent" | "a2a" | "workflow"


@dataclass(frozen=True)
class ToolContext:
    """Who is running the tool and for which run; passed to every execution."""

    workspace_id: uuid.UUID
    user_id: uuid.UUID | None
    agent_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    # Nesting level of agent-as-tool calls (0 for a conversation's own run); the engine
    # stops offering sub-agents at AGENT_MAX_SUBAGENT_DEPTH so they cannot recurse forever.
    depth: int = 0
    # The tool call being executed, and how a long-running tool (a remote A2A agent)
    # reports progress to the run's stream; set by the engine for each call.
    tool_call_id: str = ""
    emit: Callable[[Event], Awaitable[None]] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Citation:
    """A source an answer may cite (filled by knowledge_search)."""

    document_id: str
    document_name: str
    chunk_id: str
    snippet: str
    score: float | None = None
    knowledge_base_id: str | None = None
    position: int | None = None


@dataclass
class ToolResult:
    content: str
    is_error: bool = False
    data: dict[str, Any] = field(default_factory=dict)  # structured content, images, …
    citations: list[Citation] = field(default_factory=list)


ToolExecutor = Callable[[dict[str, Any], ToolContext], Awaitable[ToolResult]]


@dataclass(frozen=True)
class ToolSpec:
    """A function a model may call. `name` is unique among the tools offered to one run
    (^[a-zA-Z0-9_-]{1,64}$, as the model APIs require)."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments (type: object)
    source: ToolSource
    execute: ToolExecutor = field(compare=False, repr=False)
    requires_approval: bool = False
    ref: str = ""  # stable id of the tool in its source (registry id, MCP server + name)

    def as_openai_function(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


# --- executors provided by later apps ------------------------------------------------------------

# A registry Tool row (apps.skills) may be run by an app that skills cannot import (the
# import contracts: workflows come after skills). Such an app registers, from its
# AppConfig.ready, a factory per tool source; skills builds the row's executor through it
# from the row's `operation` (e.g. {"workflow_id": ...}).
ToolExecutorFactory = Callable[[dict[str, Any]], ToolExecutor]
_EXECUTOR_FACTORIES: dict[str, ToolExecutorFactory] = {}


def tool_executor_register(source: ToolSource, factory: ToolExecutorFactory) -> None:
    """Make `factory(operation)` the executor builder of the Tool rows of `source`."""
    _EXECUTOR_FACTORIES[source] = factory


def tool_executor_for(source: ToolSource, operation: dict[str, Any]) -> ToolExecutor | None:
    """The executor of a Tool row of a registered source (None: no app registered it)."""
    factory = _EXECUTOR_FACTORIES.get(source)
    return factory(operation) if factory is not None else None

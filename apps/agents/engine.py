"""The run engine: one agent turn as a ReAct loop (model -> tool calls -> results ->
model ...), plus the conversation helpers around a turn (dangling tool-call repair, title,
follow-up suggestions). docs/engine.md describes it for callers.

The engine knows nothing of runs, conversations or the database: the caller hands it an
AgentSnapshot, the history, and RunHooks (`emit` an event, `persist_message` a message).
It never emits run.* / done / end events. Messages are persisted at step boundaries only
(never per token): the assistant message with its tool calls BEFORE the tools run, each
tool result as it completes, the answer when it is complete.

Every message dict given to `persist_message` carries an `"id"` (a UUID string the engine
already used in events, e.g. `answer.start`): store the message under that id.

Stops (docs/engine.md): more model calls in a turn than `max_loops` -> status "failed",
code `max_loops_exceeded` (the tool calls already made are recorded, nothing is lost);
the wall clock (`wall_clock_seconds`, per call of `run_turn`: waiting for an approval does
not count) -> "failed", code `run_timeout`; `cancel` set -> "cancelled". On every stop, an
answer being streamed is persisted as far as it got (metadata partial=true, reason) and
tool calls without a result get a synthetic one (metadata synthetic=true, reason).
"""

import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
import re
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import asdict, replace
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.urls import reverse

from apps.agents import context as ctx
from apps.agents.builtin_tools import (
    SubAgentInfo,
    attachment_search_spec,
    builtin_tool_specs,
    code_interpreter_spec,
    skill_script_spec,
    subagent_tool_specs,
)
from apps.agents.choices import AgentBuiltinTool
from apps.agents.engine_types import AgentSnapshot, RunHooks, TurnOutcome
from apps.agents.exceptions import AgentNotFound
from apps.agents.models import Agent
from apps.agents.selectors import agent_snapshot_by_id, code_interpreter_policy, skill_scripts
from apps.agents.services import code_execution_arun, code_execution_create
from apps.core.events import (
    AnswerDelta,
    AnswerDone,
    AnswerStart,
    ApprovalRequired,
    Compact,
    Event,
    Phase,
    RemoteAgentUpdate,
    Step,
    Subagent,
    ToolCall,
    ToolCallRef,
    ToolImage,
)
from apps.core.events import ToolResult as ToolResultEvent
from apps.core.exceptions import ApplicationError
from apps.core.tools import Citation, ToolContext, ToolResult, ToolSpec
from apps.knowledge.selectors import knowledge_tool_specs
from apps.providers.choices import Capability
from apps.providers.exceptions import ProviderError
from apps.providers.services import amodel_info, chat_complete, chat_stream
from apps.providers.types import (
    ChatEvent,
    Finish,
    ModelInfo,
    ReasoningDelta,
    TextDelta,
    ToolCallRequest,
    Usage,
    UsageContext,
)
from apps.skills.selectors import skills_prompt, tool_specs_for

logger = logging.getLogger(__name__)

# Sub-agents may call sub-agents down to this nesting level (ToolContext.depth counts the
# levels: 0 for a conversation's own run).
MAX_SUBAGENT_DEPTH = getattr(settings, "AGENT_MAX_SUBAGENT_DEPTH", 2)
# A tool call (other than a sub-agent, bounded by its own wall clock) gets this long.
TOOL_TIMEOUT_SECONDS = getattr(settings, "AGENT_TOOL_TIMEOUT_SECONDS", 120)
# Longest tool result given back to the model (and persisted); the tool.result event
# carries at most EVENT_RESULT_CHARS of it.
MAX_TOOL_RESULT_CHARS = 20_000
EVENT_RESULT_CHARS = 4_000
SUMMARY_MAX_TOKENS = 800
# A history longer than this (characters) is token-counted in a thread.
PRECOUNT_IN_THREAD_CHARS = 50_000

REJECTED_RESULT = "The user rejected this tool call; it was not executed."

# Images produced by these tools (ToolResult.data["images"]) are shown in the chat (the
# tool.result event, the tool message's metadata), at most TOOL_IMAGES_SHOWN a result, and
# given to a model with vision as image parts, at most TOOL_IMAGES_TO_MODEL a turn
# (context.tool_image_parts; the tool's text lists every file either way).
IMAGE_TOOL_REFS = frozenset({"builtin:code_interpreter", "builtin:skill_script_run"})
TOOL_IMAGES_SHOWN = 16
TOOL_IMAGES_TO_MODEL = 4
TOOL_IMAGES_NOTE = "The images the tool calls above produced:"
CLIENT_TOOL_RESULT = (
    "This tool runs in the client application, which did not send its result; it was not executed."
)
SYNTHETIC_RESULTS = {
    "interrupted": ctx.INTERRUPTED_RESULT,
    "cancelled": "The run was cancelled before this tool call returned a result.",
    "timeout": "The run ran out of time before this tool call returned a result.",
    "error": "The run failed before this tool call returned a result.",
}

SUMMARY_PROMPT = (
    "You compact conversations. Summarise the conversation transcript you are given so "
    "that an assistant can continue it without the transcript: the user's goals, facts "
    "and numbers established, decisions, tool results that still matter, and open "
    "questions. Write in the language of the conversation, as short as completeness "
    "allows, as plain prose or bullet points. Reply with the summary only."
)
TITLE_PROMPT = (
    "Write a title for the conversation below: at most six words, in the language of the "
    "user's message, no quotes, no final punctuation. Reply with the title only."
)
SUGGESTIONS_PROMPT = (
    "Suggest three short follow-up questions the user could ask next, in the language of "
    "the conversation, written as the user would ask them. Reply with a JSON array of "
    "three strings and nothing else."
)
TITLE_MAX_CHARS = 80
SUGGESTION_MAX_CHARS = 200
MAX_SUGGESTIONS = 3


# ---------------------------------------------------------------------------------------
# Public entry points


async def run_turn(
    *,
    agent: AgentSnapshot,
    history: list[dict[str, Any]],
    hooks: RunHooks,
    context: ToolContext,
    cancel: asyncio.Event,
    decisions: dict[str, bool] | None = None,
    usage: UsageContext,
    client_tools: Sequence[ToolSpec] = (),
    instructions: str = "",
) -> TurnOutcome:
    """Run one agent turn over `history` (OpenAI-format messages from the latest
    compaction summary on; the latest user message already in it). Returns a TurnOutcome;
    raises only for bugs (model and tool failures are outcomes or tool results).

    After a "requires_action" outcome, call again with the history as stored since (it
    includes the persisted tool-call message and the results of the calls that needed no
    approval) and `decisions` {tool_call_id: approved}: approved calls run, rejected ones
    get a "rejected by the user" result, undecided ones keep the turn paused.

    `client_tools` (from `client_tool_specs`) are offered after the agent's own tools (one
    named like an agent tool is not offered); `instructions` are added to the system
    prompt for this turn (a protocol client's context).

    Stop it with `cancel`; cancelling the task running it abandons the turn without
    recording anything."""
    return await _Turn(
        agent=agent,
        history=history,
        hooks=hooks,
        context=context,
        cancel=cancel,
        decisions=decisions or {},
        usage=usage,
        client_tools=client_tools,
        instructions=instructions,
    ).run()


async def _client_tool_not_here(args: dict[str, Any], context: ToolContext) -> ToolResult:
    return ToolResult(content=CLIENT_TOOL_RESULT, is_error=True)


def client_tool_specs(tools: Sequence[dict[str, Any]]) -> list[ToolSpec]:
    """ToolSpecs (source "client") for the tools a protocol client offers for one run
    (AG-UI frontend tools: [{name, description, parameters}]). A call to one pauses the
    turn like a call that needs approval (`requires_action`): the client executes it, and
    its result, stored as the call's tool message, lets the paused run resume. Approved
    without a result, the call gets an error result saying so."""
    return [
        ToolSpec(
            name=tool["name"],
            description=tool.get("description") or "",
            parameters=tool.get("parameters") or {"type": "object", "properties": {}},
            source="client",
            execute=_client_tool_not_here,
            requires_approval=True,
            ref=f"client:{tool['name']}",
        )
        for tool in tools
    ]


def repair_dangling_tool_calls(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The synthetic tool results (metadata synthetic=true, reason="interrupted") for
    every tool call in `history` that has no result. The caller persists them before the
    next turn (also when abandoning a turn paused for approval); the engine places them
    right after their call whatever their stored position. Idempotent: an empty list when
    nothing dangles."""
    answered = {m.get("tool_call_id") for m in history if m.get("role") == "tool"}
    repairs = []
    for message in history:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or ():
            call_id = call.get("id")
            if not call_id or call_id in answered:
                continue
            answered.add(call_id)
            repairs.append(
                {
                    "id": str(uuid.uuid4()),
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": ctx.INTERRUPTED_RESULT,
                    "metadata": {
                        "synthetic": True,
                        "reason": "interrupted",
                        "tool_name": call.get("function", {}).get("name", ""),
                        "is_error": True,
                    },
                }
            )
    return repairs


async def generate_title(
    *, agent: AgentSnapshot, user_text: str, answer_text: str, usage: UsageContext
) -> str:
    """A short title for a conversation from its first exchange, by the agent's model.
    Never raises for a model failure: falls back to the start of the user's message."""
    fallback = _shorten(" ".join(user_text.split()), TITLE_MAX_CHARS) or "New conversation"
    prompt = f"User: {user_text[:2000]}\n\nAssistant: {answer_text[:2000]}"
    try:
        result = await chat_complete(
            workspace_id=agent.workspace_id,
            model_id=agent.model_id,
            messages=[
                {"role": "system", "content": TITLE_PROMPT},
                {"role": "user", "content": prompt},
            ],
            max_tokens=40,
            usage=usage,
        )
    except ProviderError as exc:
        logger.warning("Title generation failed (%s); using the fallback", exc.code)
        return fallback
    return _clean_title(result.text) or fallback


async def generate_suggestions(
    *, agent: AgentSnapshot, history: list[dict[str, Any]], usage: UsageContext
) -> list[str]:
    """Up to three follow-up questions for the end of `history`, by the agent's model
    (the caller checks `agent.suggestions_enabled`). Never raises for a model failure:
    returns [] then."""
    transcript = ctx.render_transcript(
        [m for m in history if m.get("role") != "system"], max_tokens=1500
    )
    try:
        result = await chat_complete(
            workspace_id=agent.workspace_id,
            model_id=agent.model_id,
            messages=[
                {"role": "system", "content": SUGGESTIONS_PROMPT},
                {"role": "user", "content": transcript},
            ],
            max_tokens=300,
            usage=usage,
        )
    except ProviderError as exc:
        logger.warning("Suggestion generation failed (%s)", exc.code)
        return []
    return parse_suggestions(result.text)


# ---------------------------------------------------------------------------------------
# Title and suggestions parsing

_TITLE_PREFIX = re.compile(r"^(title|titre|titel)\s*:\s*", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] or text[: limit - 1]
    return cut.rstrip() + "…"


def _clean_title(text: str) -> str:
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    line = _TITLE_PREFIX.sub("", line.strip().strip("#*").strip())
    line = line.strip().strip("\"'“”«»`").strip().rstrip(".!:;,").strip()
    return _shorten(" ".join(line.split()), TITLE_MAX_CHARS)


def parse_suggestions(text: str) -> list[str]:
    """Questions from a model reply: a JSON array of strings, else one per line."""
    items: list[Any] = []
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        try:
            parsed = json.loads(text[start : end + 1])
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            items = parsed
    if not items:
        items = [_BULLET.sub("", line) for line in text.splitlines()]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            continue
        question = " ".join(item.strip().strip("\"'").split())
        if question and question not in out:
            out.append(_shorten(question, SUGGESTION_MAX_CHARS))
        if len(out) == MAX_SUGGESTIONS:
            break
    return out


# ---------------------------------------------------------------------------------------
# The turn


class _Stopped(Exception):
    """Internal: a turn ended early with this outcome status and error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# What a sub-agent's turn shows in its parent's stream (wrapped in `subagent` events):
# its steps, not its token deltas (its answer arrives whole in `answer.done`, and is the
# parent's `tool.result`).
SUBAGENT_RELAYED: tuple[type[Event], ...] = (
    Phase,
    ToolCall,
    ToolResultEvent,
    AnswerStart,
    AnswerDone,
    Subagent,  # a sub-agent's own sub-agents, already wrapped
    RemoteAgentUpdate,  # a remote agent working for the sub-agent (names its tool call)
)
# The id of the tool call being executed (read by the sub-agent tool).
_current_call: contextvars.ContextVar[str] = contextvars.ContextVar("tool_call_id", default="")


class _SubAgentHooks:
    """A sub-agent's turn runs inside its parent's tool call: its messages stay inside it
    (the parent records the tool call and its result); its steps are relayed to the
    parent's stream as `subagent` events naming the parent's tool call."""

    def __init__(self, parent: RunHooks, *, tool_call_id: str, agent_id: uuid.UUID, depth: int):
        self.parent = parent
        self.tool_call_id = tool_call_id
        self.agent_id = str(agent_id)
        self.depth = depth

    async def emit(self, event: Event) -> None:
        if not isinstance(event, SUBAGENT_RELAYED):
            return
        if isinstance(event, Subagent | RemoteAgentUpdate):
            await self.parent.emit(event)
            return
        await self.parent.emit(
            Subagent(
                tool_call_id=self.tool_call_id,
                agent_id=str(self.agent_id),
                depth=self.depth,
                event={"type": str(event.type), "data": event.to_dict()},
            )
        )

    async def persist_message(self, message: dict[str, Any]) -> uuid.UUID:
        return uuid.UUID(str(message["id"]))


async def _call_maybe_async(function: Callable[..., Any], **kwargs: Any) -> Any:
    """Call another app's selector from async code: awaited when async, in a thread
    (it may use the ORM) otherwise."""
    if inspect.iscoroutinefunction(function):
        return await function(**kwargs)
    result = await sync_to_async(function)(**kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


def _subagent_infos(*, workspace_id: uuid.UUID, ids: list[uuid.UUID]) -> list[SubAgentInfo]:
    rows = {
        row["id"]: row
        for row in Agent.objects.filter(
            workspace_id=workspace_id, id__in=ids, archived_at__isnull=True
        ).values("id", "name", "slug", "description")
    }
    return [
        SubAgentInfo(
            id=i, name=rows[i]["name"], slug=rows[i]["slug"], description=rows[i]["description"]
        )
        for i in ids
        if i in rows
    ]


def _load_subagent(*, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> AgentSnapshot | None:
    try:
        return agent_snapshot_by_id(workspace_id=workspace_id, agent_id=agent_id)
    except AgentNotFound:
        return None


def _parse_arguments(raw: str) -> dict[str, Any] | None:
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _event_arguments(raw: str) -> Any:
    parsed = _parse_arguments(raw)
    return raw if parsed is None else parsed


def _citations_json(citations: list[Citation]) -> list[dict[str, Any]]:
    return [asdict(citation) for citation in citations]


def _images_message(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": TOOL_IMAGES_NOTE}, *parts]}


def _tool_images(spec: ToolSpec | None, result: ToolResult) -> list[dict[str, str]]:
    """The images of a sandbox tool's result ({file_id, path, url}; the URL is the
    files API's download link, made here, not taken from the result)."""
    if spec is None or spec.ref not in IMAGE_TOOL_REFS:
        return []
    out: list[dict[str, str]] = []
    for item in (result.data or {}).get("images") or ():
        try:
            file_id = str(uuid.UUID(str(item["file_id"])))
        except (KeyError, TypeError, ValueError):
            continue
        url = reverse("file-content", kwargs={"file_id": file_id})
        out.append({"file_id": file_id, "path": str(item.get("path", ""))[:500], "url": url})
    return out[:TOOL_IMAGES_SHOWN]


def _new_id() -> str:
    return str(uuid.uuid4())


class _Turn:
    def __init__(
        self,
        *,
        agent: AgentSnapshot,
        history: list[dict[str, Any]],
        hooks: RunHooks,
        context: ToolContext,
        cancel: asyncio.Event,
        decisions: dict[str, bool],
        usage: UsageContext,
        client_tools: Sequence[ToolSpec] = (),
        instructions: str = "",
    ) -> None:
        self.agent = agent
        self.client_tools = tuple(client_tools)
        self.instructions = instructions
        self.history = history
        self.hooks = hooks
        self.context = context
        self.cancel = cancel
        self.decisions = decisions
        self.usage = usage
        self.work: list[dict[str, Any]] = []
        self.tools: dict[str, ToolSpec] = {}
        self.tool_defs: list[dict[str, Any]] = []
        self.system_prompt = ""
        self.model: ModelInfo | None = None
        self.budget = 0
        self.fixed_tokens = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.citations: list[Citation] = []
        self.phase = ""
        self.step = 0
        # The answer being streamed (for recording it when the turn stops mid-stream).
        self.answer_id: str | None = None
        self.answer_parts: list[str] = []
        self.answer_recorded = True
        # Tool calls persisted whose result is not recorded yet, by id.
        self.open_calls: dict[str, dict[str, Any]] = {}
        self.lock = asyncio.Lock()
        # skill name -> (SkillVersion id, its Python scripts), for skill_script_run.
        self._skill_scripts: dict[str, tuple[uuid.UUID, list[str]]] = {}
        self._tokens: dict[int, int] = {}
        # Image parts given to a model with vision after a tool's result, by call id.
        self.tool_images: dict[str, list[dict[str, Any]]] = {}
        self.images_to_model = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> TurnOutcome:
        body = asyncio.ensure_future(self._body())
        stop = asyncio.ensure_future(self.cancel.wait())
        limit = self.agent.wall_clock_seconds if self.agent.wall_clock_seconds > 0 else None
        try:
            done, _ = await asyncio.wait(
                {body, stop}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            body.cancel()
            stop.cancel()
            raise
        stop.cancel()
        if body in done:
            try:
                return body.result()
            except _Stopped as exc:
                await self._record_stop("error")
                return self._outcome("failed", error_code=exc.code, error_message=exc.message)
            except ApplicationError as exc:
                await self._record_stop("error")
                return self._outcome("failed", error_code=exc.code, error_message=exc.message)
        body.cancel()
        with contextlib.suppress(asyncio.CancelledError, ApplicationError, _Stopped):
            await body
        if self.cancel.is_set():
            await self._record_stop("cancelled")
            return self._outcome("cancelled")
        await self._record_stop("timeout")
        return self._outcome(
            "failed",
            error_code="run_timeout",
            error_message=f"The run did not finish within {limit} seconds.",
        )

    def _outcome(self, status: str, **kwargs: Any) -> TurnOutcome:
        answer_id = uuid.UUID(self.answer_id) if self.answer_id else None
        return TurnOutcome(
            status=status,
            answer_message_id=kwargs.pop("answer_message_id", answer_id),
            answer_text=kwargs.pop("answer_text", "".join(self.answer_parts)),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            citations=list(self.citations),
            **kwargs,
        )

    async def _record_stop(self, reason: str) -> None:
        """Persist what a stopped turn leaves open: the answer streamed so far, and a
        synthetic result for every tool call without one."""
        if not self.answer_recorded and self.answer_id:
            self.answer_recorded = True
            text = "".join(self.answer_parts)
            await self.hooks.persist_message(
                {
                    "id": self.answer_id,
                    "role": "assistant",
                    "content": text,
                    "metadata": {"partial": True, "reason": reason},
                }
            )
            await self.hooks.emit(AnswerDone(message_id=self.answer_id, content=text, citations=[]))
        for call in list(self.open_calls.values()):
            await self._record_result(
                call,
                ToolResult(content=SYNTHETIC_RESULTS[reason], is_error=True),
                synthetic=reason,
            )

    # -- the loop -----------------------------------------------------------------------

    async def _body(self) -> TurnOutcome:
        await self._prepare()
        pending = ctx.unanswered_tool_calls(self.work)
        if pending:
            paused = await self._resume(pending)
            if paused is not None:
                return paused
        elif self.work and self.work[-1].get("role") == "user":
            await self._maybe_compact()
        index = ctx.latest_user_index(self.work)
        loops = sum(1 for m in self.work[index + 1 :] if m.get("role") == "assistant")
        max_loops = max(1, self.agent.max_loops)
        while True:
            if loops >= max_loops:
                raise _Stopped(
                    "max_loops_exceeded",
                    f"The agent did not answer within {max_loops} model calls.",
                )
            loops += 1
            self.step = loops
            text, calls, reasoning, step_usage, finish = await self._model_call()
            if finish == "error":
                raise _Stopped("provider_error", "The model stopped with an error.")
            if not calls:
                return await self._finish(text, reasoning, step_usage, finish)
            paused = await self._tool_step(text, calls, reasoning, step_usage)
            if paused is not None:
                return paused

    async def _prepare(self) -> None:
        agent = self.agent
        self.model = await amodel_info(
            workspace_id=agent.workspace_id, model_id=agent.model_id, kind="chat"
        )
        # Attached files become content parts (apps/agents/context.py, docs/files.md).
        history, long_documents = await ctx.with_attachments(
            self.history,
            workspace_id=agent.workspace_id,
            vision=Capability.VISION in self.model.capabilities,
            context_window=self.model.context_window,
        )
        specs, skills_text = await self._gather_tools()
        if long_documents:
            specs.append(
                attachment_search_spec(workspace_id=agent.workspace_id, documents=long_documents)
            )
        for spec in specs:
            name = spec.name
            counter = 2
            while name in self.tools:
                name = f"{spec.name[:60]}_{counter}"
                counter += 1
            if name != spec.name:
                logger.warning("Tool name %r offered twice; renamed %r", spec.name, name)
                spec = replace(spec, name=name)
            self.tools[name] = spec
        for spec in self.client_tools:
            if spec.name in self.tools:
                # The client would not know the renamed tool: the agent's own one wins.
                logger.warning("Client tool %r is named like an agent tool; not offered", spec.name)
                continue
            self.tools[spec.name] = spec
        self.tool_defs = [spec.as_openai_function() for spec in self.tools.values()]
        extra = [
            ctx.content_text(m.get("content")) for m in self.history if m.get("role") == "system"
        ]
        parts = [
            agent.system_prompt.strip(),
            *extra,
            self.instructions.strip(),
            skills_text.strip(),
        ]
        self.system_prompt = "\n\n".join(part for part in parts if part)
        self.work = ctx.normalize_history([m for m in history if m.get("role") != "system"])
        self.budget = ctx.input_budget(
            context_window=self.model.context_window,
            max_output_tokens=self.model.max_output_tokens,
            agent_max_tokens=agent.max_tokens,
        )
        self.fixed_tokens = ctx.count_tools_tokens(self.tool_defs)
        if self.system_prompt:
            self.fixed_tokens += ctx.count_message_tokens(
                {"role": "system", "content": self.system_prompt}
            )
        await self._precount()

    async def _precount(self) -> None:
        """Count the history's tokens once; a long history is counted in a thread so the
        event loop (other runs' streams) is not held up by the tokenizer."""
        size = sum(len(ctx.content_text(m.get("content"))) for m in self.work)
        if size < PRECOUNT_IN_THREAD_CHARS:
            return
        work = list(self.work)
        counts = await asyncio.to_thread(lambda: [ctx.count_message_tokens(m) for m in work])
        for message, tokens in zip(work, counts, strict=True):
            self._tokens[id(message)] = tokens

    async def _gather_tools(self) -> tuple[list[ToolSpec], str]:
        agent = self.agent
        workspace_id = agent.workspace_id
        specs = builtin_tool_specs(
            [name for name in agent.builtin_tools if name != AgentBuiltinTool.CODE_INTERPRETER]
        )
        if AgentBuiltinTool.CODE_INTERPRETER in agent.builtin_tools:
            specs += await sync_to_async(self._code_tools)()
        if agent.subagent_ids and self.context.depth < MAX_SUBAGENT_DEPTH:
            infos = await sync_to_async(_subagent_infos)(
                workspace_id=workspace_id, ids=list(agent.subagent_ids)
            )
            specs += subagent_tool_specs(infos, runner=self._run_subagent)
        if agent.knowledge_base_ids:
            specs += await _call_maybe_async(
                knowledge_tool_specs,
                workspace_id=workspace_id,
                knowledge_base_ids=list(agent.knowledge_base_ids),
            )
        skills_text = ""
        if agent.tool_ids or agent.skill_ids:
            specs += await _call_maybe_async(
                tool_specs_for,
                workspace_id=workspace_id,
                tool_ids=list(agent.tool_ids),
                skill_ids=list(agent.skill_ids) or None,
            )
            if agent.skill_ids:
                skills_text = await _call_maybe_async(
                    skills_prompt, workspace_id=workspace_id, skill_ids=list(agent.skill_ids)
                )
        if self.context.depth > 0:
            # Nobody can approve inside a sub-agent's call: such tools are not offered.
            specs = [spec for spec in specs if not self._needs_approval(spec)]
        return specs, skills_text or ""

    def _code_tools(self) -> list[ToolSpec]:
        """`code_interpreter` (and `skill_script_run` when the agent's skills bundle Python
        scripts) where the workspace enabled the sandbox; nothing otherwise."""
        agent = self.agent
        policy = code_interpreter_policy(workspace_id=agent.workspace_id)
        if not policy.enabled:
            return []
        approval = policy.require_approval
        specs = [code_interpreter_spec(runner=self._run_code, requires_approval=approval)]
        if agent.skill_ids:
            self._skill_scripts = skill_scripts(
                workspace_id=agent.workspace_id, skill_version_ids=list(agent.skill_ids)
            )
            if self._skill_scripts:
                scripts = {name: paths for name, (_, paths) in self._skill_scripts.items()}
                specs.append(
                    skill_script_spec(
                        runner=self._run_code, requires_approval=approval, scripts=scripts
                    )
                )
        return specs

    async def _run_code(self, request: dict[str, Any], tool_ctx: ToolContext) -> dict[str, Any]:
        skill = request.get("skill")
        version_id = None
        if skill is not None:
            version_id = self._skill_scripts[skill][0]
        execution = await sync_to_async(code_execution_create)(
            workspace_id=tool_ctx.workspace_id,
            user_id=tool_ctx.user_id,
            agent_id=tool_ctx.agent_id,
            run_id=tool_ctx.run_id,
            conversation_id=tool_ctx.conversation_id,
            code=request.get("code", ""),
            skill_version_id=version_id,
            script=request.get("script", ""),
            args=request.get("args"),
        )
        return await code_execution_arun(execution_id=execution.id)

    def _needs_approval(self, spec: ToolSpec) -> bool:
        return spec.requires_approval or spec.name in self.agent.tools_requiring_approval

    async def _set_phase(self, phase: str) -> None:
        if phase != self.phase:
            self.phase = phase
            await self.hooks.emit(Phase(phase=phase))

    def _count(self, message: dict[str, Any]) -> int:
        key = id(message)
        tokens = self._tokens.get(key)
        if tokens is None:
            tokens = self._tokens[key] = ctx.count_message_tokens(message)
        return tokens

    def _request_messages(self) -> list[dict[str, Any]]:
        image_tokens = ctx.IMAGE_TOKENS * self.images_to_model
        trimmed = ctx.trim_history(
            self.work,
            budget=max(0, self.budget - self.fixed_tokens - image_tokens),
            count=self._count,
        )
        if trimmed.dropped:
            logger.info("History trimmed to fit: %d messages left out", trimmed.dropped)
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        images: list[dict[str, Any]] = []
        for message in trimmed.messages:
            if images and message.get("role") != "tool":
                messages.append(_images_message(images))
                images = []
            messages.append(ctx.provider_message(message))
            if message.get("role") == "tool":
                images += self.tool_images.get(message.get("tool_call_id", ""), [])
        if images:
            messages.append(_images_message(images))
        return messages

    async def _load_tool_images(self, call_id: str, images: list[dict[str, str]]) -> None:
        """Keep the image parts of a tool's images for the next model calls of the turn,
        when the model has vision (at most TOOL_IMAGES_TO_MODEL a turn)."""
        if not images or self.model is None or Capability.VISION not in self.model.capabilities:
            return
        room = TOOL_IMAGES_TO_MODEL - self.images_to_model
        if room <= 0:
            return
        images = images[:room]
        self.images_to_model += len(images)  # reserved before the await: calls run in parallel
        try:
            parts = await ctx.tool_image_parts(images, workspace_id=self.agent.workspace_id)
        except Exception:  # the images are a bonus: the text result still lists them
            logger.exception("The images of tool call %s could not be read", call_id)
            return
        if parts:
            self.tool_images[call_id] = parts

    async def _maybe_compact(self) -> None:
        index = ctx.latest_user_index(self.work)
        if index <= 0:
            return
        available = max(0, self.budget - self.fixed_tokens)
        used = sum(self._count(m) for m in self.work)
        if used <= ctx.COMPACTION_THRESHOLD * available:
            return
        old, latest = self.work[:index], self.work[index]
        await self._set_phase("compacting")
        transcript = ctx.render_transcript(
            old,
            max_tokens=max(256, self.budget - ctx.count_text_tokens(SUMMARY_PROMPT) - 64),
        )
        try:
            result = await chat_complete(
                workspace_id=self.agent.workspace_id,
                model_id=self.agent.model_id,
                messages=[
                    {"role": "system", "content": SUMMARY_PROMPT},
                    {"role": "user", "content": transcript},
                ],
                max_tokens=SUMMARY_MAX_TOKENS,
                usage=self.usage,
            )
        except ProviderError as exc:
            logger.warning("Compaction failed (%s); trimming the history instead", exc.code)
            return
        self.input_tokens += result.usage.input_tokens
        self.output_tokens += result.usage.output_tokens
        summary = result.text.strip()
        if not summary:
            return
        message: dict[str, Any] = {
            "id": _new_id(),
            "role": "user",
            "content": ctx.summary_content(summary, latest.get("content")),
            "metadata": {"kind": "compaction", "summarized_messages": len(old)},
        }
        if latest.get("id"):
            message["metadata"]["latest_message_id"] = str(latest["id"])
        message_id = await self.hooks.persist_message(message)
        self.work = [message, *self.work[index + 1 :]]
        await self.hooks.emit(
            Compact(removed_messages=len(old), summary_message_id=str(message_id))
        )

    async def _model_call(
        self,
    ) -> tuple[str, list[ToolCallRequest], str, Usage | None, str]:
        messages = self._request_messages()
        await self._set_phase("thinking")
        emit = self.hooks.emit
        text_parts: list[str] = []
        reasoning_parts: list[str] = []
        calls: list[ToolCallRequest] = []
        step_usage: Usage | None = None
        finish = ""
        answer_id = ""
        self.answer_id = None
        self.answer_parts = text_parts
        step = self.step
        stream = cast(
            AsyncGenerator[ChatEvent, None],
            chat_stream(
                workspace_id=self.agent.workspace_id,
                model_id=self.agent.model_id,
                messages=messages,
                tools=self.tool_defs or None,
                temperature=self.agent.temperature,
                max_tokens=self.agent.max_tokens,
                reasoning=self.agent.reasoning,
                usage=self.usage,
            ),
        )
        # aclosing: a stopped turn closes the upstream request at once, not at GC time.
        async with contextlib.aclosing(stream):
            async for event in stream:
                if isinstance(event, TextDelta):
                    if not answer_id:
                        answer_id = self.answer_id = _new_id()
                        self.answer_recorded = False
                        await self._set_phase("answering")
                        await emit(AnswerStart(message_id=answer_id))
                    text_parts.append(event.text)
                    await emit(AnswerDelta(message_id=answer_id, delta=event.text))
                elif isinstance(event, ReasoningDelta):
                    reasoning_parts.append(event.text)
                    await emit(Step(step=step, kind="thinking", thinking_delta=event.text))
                elif isinstance(event, ToolCallRequest):
                    calls.append(event)
                elif isinstance(event, Usage):
                    step_usage = event
                    self.input_tokens += event.input_tokens
                    self.output_tokens += event.output_tokens
                elif isinstance(event, Finish):
                    finish = event.reason
        return "".join(text_parts), calls, "".join(reasoning_parts), step_usage, finish

    def _message_metadata(self, reasoning: str, step_usage: Usage | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        if step_usage is not None:
            metadata["usage"] = {
                "input_tokens": step_usage.input_tokens,
                "output_tokens": step_usage.output_tokens,
            }
        if reasoning:
            metadata["reasoning"] = reasoning
        return metadata

    async def _finish(
        self, text: str, reasoning: str, step_usage: Usage | None, finish: str
    ) -> TurnOutcome:
        emit = self.hooks.emit
        if not self.answer_id:
            self.answer_id = _new_id()
            await self._set_phase("answering")
            await emit(AnswerStart(message_id=self.answer_id))
        metadata = self._message_metadata(reasoning, step_usage)
        if finish and finish != "stop":
            metadata["finish_reason"] = finish
        citations = _citations_json(self.citations)
        if citations:
            metadata["citations"] = citations
        self.answer_recorded = True
        message_id = await self.hooks.persist_message(
            {"id": self.answer_id, "role": "assistant", "content": text, "metadata": metadata}
        )
        await emit(AnswerDone(message_id=str(message_id), content=text, citations=citations))
        return self._outcome("completed", answer_message_id=message_id, answer_text=text)

    async def _tool_step(
        self,
        text: str,
        requests: list[ToolCallRequest],
        reasoning: str,
        step_usage: Usage | None,
    ) -> TurnOutcome | None:
        emit = self.hooks.emit
        calls: list[dict[str, Any]] = []
        seen: set[str] = set()
        for request in requests:
            call_id = request.id if request.id and request.id not in seen else ""
            call_id = call_id or f"call_{uuid.uuid4().hex[:24]}"
            seen.add(call_id)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": request.name, "arguments": request.arguments},
                }
            )
        message_id = self.answer_id or _new_id()
        message = {
            "id": message_id,
            "role": "assistant",
            "content": text,
            "tool_calls": calls,
            "metadata": self._message_metadata(reasoning, step_usage),
        }
        self.answer_recorded = True
        for call in calls:
            self.open_calls[call["id"]] = call
        await self.hooks.persist_message(message)
        self.work.append(message)
        if self.answer_id:  # text came before the tool calls: that bubble is complete
            await emit(AnswerDone(message_id=message_id, content=text, citations=[]))
        self.answer_id = None
        self.answer_parts = []
        await emit(
            Step(
                step=self.step,
                kind="tool_decision",
                tool_calls=[
                    ToolCallRef(tool_call_id=c["id"], name=c["function"]["name"]) for c in calls
                ],
            )
        )
        automatic: list[dict[str, Any]] = []
        approval: list[dict[str, Any]] = []
        for call in calls:
            spec = self.tools.get(call["function"]["name"])
            needs = spec is not None and self._needs_approval(spec)
            (approval if needs else automatic).append(call)
            await emit(
                ToolCall(
                    tool_call_id=call["id"],
                    name=call["function"]["name"],
                    arguments=_event_arguments(call["function"]["arguments"]),
                    source=spec.source if spec else "",
                    requires_approval=needs,
                )
            )
        await self._execute(automatic)
        if approval:
            return await self._pause(approval)
        return None

    async def _resume(self, pending: list[dict[str, Any]]) -> TurnOutcome | None:
        to_run: list[dict[str, Any]] = []
        waiting: list[dict[str, Any]] = []
        for call in pending:
            self.open_calls[call["id"]] = call
            spec = self.tools.get(call.get("function", {}).get("name", ""))
            if spec is None or not self._needs_approval(spec):
                to_run.append(call)
            elif call["id"] not in self.decisions:
                waiting.append(call)
            elif self.decisions[call["id"]]:
                to_run.append(call)
            else:
                await self._record_result(
                    call, ToolResult(content=REJECTED_RESULT, is_error=True), rejected=True
                )
        await self._execute(to_run)
        self.work = ctx.normalize_history(self.work)
        if waiting:
            return await self._pause(waiting)
        return None

    async def _pause(self, calls: list[dict[str, Any]]) -> TurnOutcome:
        pending = []
        for call in calls:
            self.open_calls.pop(call["id"], None)
            item = {
                "tool_call_id": call["id"],
                "name": call["function"]["name"],
                "arguments": _event_arguments(call["function"]["arguments"]),
            }
            pending.append(item)
            await self.hooks.emit(
                ApprovalRequired(
                    tool_call_id=item["tool_call_id"],
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        return self._outcome(
            "requires_action", answer_message_id=None, answer_text="", pending_approvals=pending
        )

    # -- tools --------------------------------------------------------------------------

    async def _execute(self, calls: list[dict[str, Any]]) -> None:
        if not calls:
            return
        await self._set_phase("tool_calling")
        if len(calls) == 1:
            await self._execute_one(calls[0])
        else:
            await asyncio.gather(*(self._execute_one(call) for call in calls))
        # Results were recorded as they completed; the model reads them in call order.
        self.work = ctx.normalize_history(self.work)

    async def _execute_one(self, call: dict[str, Any]) -> None:
        result = await self._invoke(call)
        self.citations.extend(result.citations)
        await self._record_result(call, result)

    async def _invoke(self, call: dict[str, Any]) -> ToolResult:
        name = call["function"]["name"]
        spec = self.tools.get(name)
        if spec is None:
            return ToolResult(content=f"There is no tool named {name!r}.", is_error=True)
        args = _parse_arguments(call["function"]["arguments"])
        if args is None:
            return ToolResult(
                content="The arguments are not a JSON object: call the tool again with valid JSON.",
                is_error=True,
            )
        # Agents (ours and remote A2A ones) bound their own time.
        timeout = None if spec.source in ("agent", "a2a") else TOOL_TIMEOUT_SECONDS
        # For the sub-agent tool; parallel calls each run in a task (a context) of their own.
        _current_call.set(call["id"])
        context = replace(self.context, tool_call_id=call["id"], emit=self.hooks.emit)
        try:
            result = await asyncio.wait_for(spec.execute(args, context), timeout=timeout)
        except TimeoutError:
            return ToolResult(
                content=f"The tool did not finish within {timeout} seconds.", is_error=True
            )
        except ApplicationError as exc:
            return ToolResult(content=f"{exc.code}: {exc.message}", is_error=True)
        except Exception as exc:  # a tool's bug is reported to the model, not the run
            logger.exception("Tool %r (%s) raised", name, spec.ref or spec.source)
            return ToolResult(
                content=f"The tool failed: {type(exc).__name__}: {exc}", is_error=True
            )
        if not isinstance(result, ToolResult):
            return ToolResult(content="The tool returned no result.", is_error=True)
        if len(result.content) > MAX_TOOL_RESULT_CHARS:
            result = replace(
                result,
                content=result.content[:MAX_TOOL_RESULT_CHARS]
                + f"\n[… truncated: {len(result.content)} characters in all]",
            )
        return result

    async def _record_result(
        self,
        call: dict[str, Any],
        result: ToolResult,
        *,
        synthetic: str = "",
        rejected: bool = False,
    ) -> None:
        name = call.get("function", {}).get("name", "")
        metadata: dict[str, Any] = {"tool_name": name, "is_error": result.is_error}
        if synthetic:
            metadata.update(synthetic=True, reason=synthetic)
        if rejected:
            metadata["rejected"] = True
        if result.citations:
            metadata["citations"] = _citations_json(result.citations)
        images = _tool_images(self.tools.get(name), result)
        if images:
            metadata["images"] = images
            await self._load_tool_images(call["id"], images)
        message = {
            "id": _new_id(),
            "role": "tool",
            "tool_call_id": call["id"],
            "content": result.content,
            "metadata": metadata,
        }
        async with self.lock:
            if self.open_calls.pop(call["id"], None) is None and not (rejected or synthetic):
                return  # already recorded (a stop raced with the tool)
            await self.hooks.persist_message(message)
            self.work.append(message)
            await self.hooks.emit(
                ToolResultEvent(
                    tool_call_id=call["id"],
                    name=name,
                    content=result.content[:EVENT_RESULT_CHARS],
                    is_error=result.is_error,
                    synthetic=bool(synthetic),
                    images=[ToolImage(**image) for image in images],
                )
            )

    async def _run_subagent(
        self, agent_id: uuid.UUID, task: str, context: ToolContext
    ) -> ToolResult:
        snapshot = await sync_to_async(_load_subagent)(
            workspace_id=self.agent.workspace_id, agent_id=agent_id
        )
        if snapshot is None:
            return ToolResult(content="This agent is no longer available.", is_error=True)
        depth = context.depth + 1
        outcome = await run_turn(
            agent=snapshot,
            history=[{"id": _new_id(), "role": "user", "content": task}],
            hooks=_SubAgentHooks(
                self.hooks, tool_call_id=_current_call.get(), agent_id=agent_id, depth=depth
            ),
            context=replace(context, agent_id=agent_id, depth=depth),
            cancel=self.cancel,
            usage=replace(self.usage, agent_id=agent_id),
        )
        self.input_tokens += outcome.input_tokens
        self.output_tokens += outcome.output_tokens
        if outcome.status == "completed":
            return ToolResult(
                content=outcome.answer_text or "(The agent gave an empty answer.)",
                citations=outcome.citations,
                data={"agent_id": str(agent_id)},
            )
        if outcome.status == "cancelled":
            return ToolResult(content="The agent's run was cancelled.", is_error=True)
        return ToolResult(
            content=f"The agent failed ({outcome.error_code}): {outcome.error_message}",
            is_error=True,
        )

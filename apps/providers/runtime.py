"""The model runtime: what agents, knowledge bases and tasks call to use a model.

- model resolution: an explicit model (of the workspace or the platform), else the
  workspace's default, else the platform's default (`NoModelConfigured` otherwise);
- retries with exponential backoff (honouring Retry-After) only for retryable errors
  (429, 5xx, timeouts, connection errors), never for 400/401/404;
- key rotation: calls go round-robin over a provider's enabled keys; a 429 or 401 on one
  key moves to the next at once;
- failover: when a model's retries are exhausted on a retryable error, its ordered
  `fallback_model_ids` are tried;
- streaming errors after the first event has been yielded are raised, not retried (the
  caller has already shown part of an answer);
- cancellation (task cancelled, or the generator closed) closes the upstream request;
- one `UsageRecord` per call (never per token), whatever the outcome.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.core.db import db_sync_to_async
from apps.providers import tokens
from apps.providers.adapters import Adapter, ChatRequest, Endpoint, make_adapter
from apps.providers.choices import ModelKind, UsageOutcome
from apps.providers.exceptions import (
    ModelNotFoundError,
    NoModelConfigured,
    ProviderAuthFailed,
    ProviderDisabled,
    ProviderError,
    ProviderRateLimited,
)
from apps.providers.models import DefaultModel, ProviderKey, ProviderModel, UsageRecord
from apps.providers.types import (
    ChatEvent,
    ChatResult,
    Finish,
    ModelInfo,
    ReasoningDelta,
    RerankResult,
    TextDelta,
    ToolCallRequest,
    Usage,
    UsageContext,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

EMBED_BATCH_SIZE = 128
_rotation: dict[uuid.UUID, itertools.count[int]] = {}


@dataclass(frozen=True)
class Target:
    """A resolved model with everything needed to call it (holds keys: never log it)."""

    model_id: uuid.UUID
    model_name: str
    kind: str
    provider_id: uuid.UUID
    provider_name: str
    provider_kind: str
    base_url: str
    keys: tuple[tuple[uuid.UUID | None, str], ...] = field(repr=False)
    connect_timeout: float
    read_timeout: float
    max_retries: int
    input_price: Decimal
    output_price: Decimal
    max_output_tokens: int | None
    dimensions: int | None
    capabilities: frozenset[str]
    context_window: int | None = None

    def endpoint(self, key: str) -> Endpoint:
        return Endpoint(
            kind=self.provider_kind,
            base_url=self.base_url,
            api_key=key,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )

    def info(self) -> ModelInfo:
        return ModelInfo(
            id=self.model_id,
            provider_id=self.provider_id,
            name=self.model_name,
            kind=self.kind,
            context_window=self.context_window,
            max_output_tokens=self.max_output_tokens,
            capabilities=set(self.capabilities),
            dimensions=self.dimensions,
        )

    def cost(self, usage: Usage) -> Decimal:
        million = Decimal(1_000_000)
        return (
            Decimal(usage.input_tokens) * self.input_price / million
            + Decimal(usage.output_tokens) * self.output_price / million
        )


# --- resolution (sync, database) -----------------------------------------------------------


def _usable_models(workspace_id: uuid.UUID) -> Any:
    return ProviderModel.objects.select_related("provider").filter(
        Q(provider__workspace_id=workspace_id) | Q(provider__workspace__isnull=True)
    )


def resolve_model(
    *, workspace_id: uuid.UUID, model_id: uuid.UUID | None, kind: str
) -> ProviderModel:
    """The model to use: `model_id` (the workspace's or a platform model), else the
    workspace default, else the platform default. Raises ModelNotFoundError,
    NoModelConfigured, ProviderDisabled."""
    if model_id is None:
        defaults = DefaultModel.objects.select_related("model__provider").filter(kind=kind)
        default = (
            defaults.filter(workspace_id=workspace_id).first()
            or defaults.filter(workspace__isnull=True).first()
        )
        if default is None:
            raise NoModelConfigured(
                f"No {kind} model is configured: pass a model or set a default {kind} model."
            )
        model = default.model
    else:
        found = _usable_models(workspace_id).filter(pk=model_id).first()
        if found is None:
            raise ModelNotFoundError()
        model = found
    if model.kind != kind:
        raise ModelNotFoundError(f"{model.name} is not a {kind} model.")
    if not model.is_enabled or not model.provider.is_enabled:
        raise ProviderDisabled(f"{model.provider.name}/{model.name} is disabled.")
    return model


def target_for(model: ProviderModel) -> Target:
    """Everything needed to call `model` (its provider, keys, timeouts, prices)."""
    provider = model.provider
    keys = tuple(
        (key.pk, key.secret)
        for key in ProviderKey.objects.filter(provider=provider, is_enabled=True).order_by(
            "created_at", "id"
        )
    )
    return Target(
        model_id=model.pk,
        model_name=model.name,
        kind=model.kind,
        provider_id=provider.pk,
        provider_name=provider.name,
        provider_kind=provider.kind,
        base_url=provider.base_url,
        keys=keys or ((None, ""),),
        connect_timeout=provider.connect_timeout,
        read_timeout=provider.read_timeout,
        max_retries=provider.max_retries,
        input_price=model.input_price_per_million,
        output_price=model.output_price_per_million,
        max_output_tokens=model.max_output_tokens,
        dimensions=model.dimensions,
        capabilities=frozenset(model.capabilities or []),
        context_window=model.context_window,
    )


def resolve_chain(
    *, workspace_id: uuid.UUID, model_id: uuid.UUID | None, kind: str
) -> list[Target]:
    """The model to call then its usable fallbacks, in order."""
    model = resolve_model(workspace_id=workspace_id, model_id=model_id, kind=kind)
    chain = [target_for(model)]
    seen = {model.pk}
    for raw in model.fallback_model_ids or []:
        try:
            fallback_id = uuid.UUID(str(raw))
        except ValueError:
            continue
        if fallback_id in seen:
            continue
        seen.add(fallback_id)
        fallback = _usable_models(workspace_id).filter(pk=fallback_id, kind=kind).first()
        if fallback is None or not fallback.is_enabled or not fallback.provider.is_enabled:
            continue
        chain.append(target_for(fallback))
    return chain


def model_info(
    *, workspace_id: uuid.UUID, model_id: uuid.UUID | None, kind: str = "chat"
) -> ModelInfo:
    """What the caller needs to know about a model (None: the default for `kind`).
    Raises like `resolve_model`."""
    model = resolve_model(workspace_id=workspace_id, model_id=model_id, kind=kind)
    return ModelInfo(
        id=model.pk,
        provider_id=model.provider_id,
        name=model.name,
        kind=model.kind,
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        capabilities=set(model.capabilities or []),
        dimensions=model.dimensions,
    )


# --- resolving once per run ------------------------------------------------------------
#
# A run resolves its model (and fallbacks, keys) once for all its model calls, and may
# start resolving before it needs the answer: after `remember_resolutions()`, the async
# resolvers below share one result per (what, workspace, model, kind) within the calling
# task and the tasks it starts. A key disabled during a run is still used by that run.

_resolutions: ContextVar[dict[tuple[Any, ...], asyncio.Future[Any]] | None] = ContextVar(
    "provider_resolutions", default=None
)


def remember_resolutions() -> None:
    """From now on in this task (and tasks it starts) each resolution is made once."""
    _resolutions.set({})


async def _resolved(func: Callable[..., T], **kwargs: Any) -> T:
    memo = _resolutions.get()
    if memo is None:
        return await sync_to_async(func)(**kwargs)
    call = db_sync_to_async(func)  # read-only: any thread will do
    key = (func.__name__, *sorted(kwargs.items()))
    future = memo.get(key)
    if future is None:
        future = memo[key] = asyncio.ensure_future(call(**kwargs))
    return await asyncio.shield(future)


async def aresolve_chain(
    *, workspace_id: uuid.UUID, model_id: uuid.UUID | None, kind: str
) -> list[Target]:
    return await _resolved(resolve_chain, workspace_id=workspace_id, model_id=model_id, kind=kind)


async def amodel_info(
    *, workspace_id: uuid.UUID, model_id: uuid.UUID | None, kind: str = "chat"
) -> ModelInfo:
    """`model_info` for async code; within a run, read from the run's resolved chain."""
    if _resolutions.get() is None:
        return await sync_to_async(model_info)(
            workspace_id=workspace_id, model_id=model_id, kind=kind
        )
    chain = await aresolve_chain(workspace_id=workspace_id, model_id=model_id, kind=kind)
    return chain[0].info()


def prefetch_model(*, workspace_id: uuid.UUID, model_id: uuid.UUID | None, kind: str) -> None:
    """Start resolving a model the task will call (after `remember_resolutions()`)."""
    if _resolutions.get() is None:
        return
    future = asyncio.ensure_future(
        aresolve_chain(workspace_id=workspace_id, model_id=model_id, kind=kind)
    )
    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen later


def record_usage(
    *,
    usage_ctx: UsageContext,
    target: Target,
    usage: Usage,
    estimated: bool,
    started: float,
    outcome: str,
    error_code: str = "",
    used_key_id: uuid.UUID | None = None,
    key_errors: dict[uuid.UUID, str] | None = None,
) -> None:
    UsageRecord.objects.create(
        workspace_id=usage_ctx.workspace_id,
        user_id=usage_ctx.user_id,
        api_key_id=usage_ctx.api_key_id,
        agent_id=usage_ctx.agent_id,
        run_id=usage_ctx.run_id,
        model_id=target.model_id,
        model_name=target.model_name,
        provider_name=target.provider_name,
        kind=target.kind,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        tokens_estimated=estimated,
        cost=target.cost(usage),
        latency_ms=int((time.monotonic() - started) * 1000),
        outcome=outcome,
        error_code=error_code,
    )
    now = timezone.now()
    if used_key_id is not None:
        ProviderKey.objects.filter(pk=used_key_id).update(last_used_at=now)
    for key_id, code in (key_errors or {}).items():
        ProviderKey.objects.filter(pk=key_id).update(last_error_code=code, last_error_at=now)


# --- retry policy ----------------------------------------------------------------------------


def _backoff(attempt: int, error: ProviderError) -> float:
    base = float(getattr(settings, "PROVIDER_RETRY_BASE_DELAY", 0.5))
    cap = float(getattr(settings, "PROVIDER_RETRY_MAX_DELAY", 8.0))
    delay = min(cap, base * (2 ** (attempt - 1)))
    delay *= 1 + random.uniform(0, 0.1)  # noqa: S311 - jitter so parallel callers spread out
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        delay = max(delay, min(float(retry_after), cap))
    return delay


def _key_order(target: Target) -> list[tuple[uuid.UUID | None, str]]:
    """The provider's keys, starting at the next one in the round-robin."""
    counter = _rotation.setdefault(target.provider_id, itertools.count())
    start = next(counter) % len(target.keys)
    return list(target.keys[start:] + target.keys[:start])


@dataclass
class _Attempts:
    """Walks a chain of targets x keys x retries; tells what to do after an error."""

    chain: list[Target]
    target_index: int = 0
    key_index: int = 0
    attempt: int = 0
    keys: list[tuple[uuid.UUID | None, str]] = field(default_factory=list)
    key_errors: dict[uuid.UUID, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = _key_order(self.chain[0])

    @property
    def target(self) -> Target:
        return self.chain[self.target_index]

    @property
    def key(self) -> tuple[uuid.UUID | None, str]:
        return self.keys[self.key_index % len(self.keys)]

    def after(self, error: ProviderError) -> float | None:
        """Seconds to wait before the next try, or None to give up (raise `error`)."""
        key_id = self.key[0]
        if key_id is not None:
            self.key_errors[key_id] = error.code
        if isinstance(error, ProviderAuthFailed) and self.key_index + 1 < len(self.keys):
            self.key_index += 1  # a bad key: the next key, at once, not counted as a retry
            return 0.0
        if not error.retryable:
            return None
        if isinstance(error, ProviderRateLimited) and len(self.keys) > 1:
            self.key_index += 1
        self.attempt += 1
        if self.attempt <= self.target.max_retries:
            return _backoff(self.attempt, error)
        if self.target_index + 1 < len(self.chain):
            self.target_index += 1
            self.attempt = 0
            self.key_index = 0
            self.keys = _key_order(self.target)
            logger.warning(
                "model %s failed (%s); failing over to %s",
                self.chain[self.target_index - 1].model_name,
                error.code,
                self.target.model_name,
            )
            return 0.0
        return None


# --- chat ----------------------------------------------------------------------------------


async def chat_stream(
    *,
    workspace_id: uuid.UUID,
    model_id: uuid.UUID | None,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    reasoning: bool = False,
    usage: UsageContext,
) -> AsyncIterator[ChatEvent]:
    """Stream a chat: TextDelta / ReasoningDelta / ToolCallRequest events, then exactly one
    Usage and one Finish. Raises a ProviderError subclass (after retries and failover) or
    the resolution errors of `resolve_model`. Records one UsageRecord. Closing the generator
    or cancelling the task closes the upstream request."""
    async with aclosing(
        _chat_events(
            workspace_id=workspace_id,
            model_id=model_id,
            messages=messages,
            tools=tools,
            temperature=temperature,
            max_tokens=max_tokens,
            reasoning=reasoning,
            usage=usage,
            served=[],
        )
    ) as events:
        async for event in events:
            yield event


async def _chat_events(
    *,
    workspace_id: uuid.UUID,
    model_id: uuid.UUID | None,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    temperature: float | None,
    max_tokens: int | None,
    reasoning: bool,
    usage: UsageContext,
    served: list[uuid.UUID],
) -> AsyncGenerator[ChatEvent, None]:
    chain = await aresolve_chain(workspace_id=workspace_id, model_id=model_id, kind=ModelKind.CHAT)
    walk = _Attempts(chain)
    started = time.monotonic()
    text: list[str] = []
    emitted = False
    outcome = UsageOutcome.ERROR
    upstream_usage: Usage | None = None
    finish = "stop"
    try:
        while True:
            target = walk.target
            adapter: Adapter = make_adapter(target.endpoint(walk.key[1]))
            request = ChatRequest(
                model=target.model_name,
                messages=messages,
                tools=tools or None,
                temperature=temperature,
                max_tokens=max_tokens,
                reasoning=reasoning and "reasoning" in target.capabilities,
            )
            try:
                async for event in adapter.stream_chat(request):
                    if isinstance(event, Usage):
                        upstream_usage = event
                        continue
                    if isinstance(event, Finish):
                        finish = event.reason
                        continue
                    if isinstance(event, TextDelta | ReasoningDelta):
                        text.append(event.text)
                    elif isinstance(event, ToolCallRequest):
                        text.append(event.name + event.arguments)
                    emitted = True
                    yield event
                outcome = UsageOutcome.OK
                break
            except ProviderError as error:
                delay = None if emitted else walk.after(error)
                if delay is None:
                    raise
                if delay:
                    await asyncio.sleep(delay)
            finally:
                await adapter.aclose()
        final = upstream_usage
        estimated = final is None or (final.input_tokens == 0 and final.output_tokens == 0)
        if estimated:
            final = Usage(
                input_tokens=tokens.count_messages(messages, tools),
                output_tokens=tokens.count_text("".join(text)),
            )
        assert final is not None
        served.append(walk.target.model_id)
        await sync_to_async(record_usage)(
            usage_ctx=usage,
            target=walk.target,
            usage=final,
            estimated=estimated,
            started=started,
            outcome=outcome,
            used_key_id=walk.key[0],
            key_errors=walk.key_errors,
        )
        yield final
        yield Finish(finish)
    except (asyncio.CancelledError, GeneratorExit):
        if outcome != UsageOutcome.OK:
            await _record_failure(
                usage, walk, messages, tools, text, started, UsageOutcome.CANCELLED, "cancelled"
            )
        raise
    except ProviderError as error:
        await _record_failure(
            usage, walk, messages, tools, text, started, UsageOutcome.ERROR, error.code
        )
        raise


async def _record_failure(
    usage: UsageContext,
    walk: _Attempts,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    text: list[str],
    started: float,
    outcome: str,
    code: str,
) -> None:
    estimate = Usage(
        input_tokens=tokens.count_messages(messages, tools) if text else 0,
        output_tokens=tokens.count_text("".join(text)),
    )
    await sync_to_async(record_usage)(
        usage_ctx=usage,
        target=walk.target,
        usage=estimate,
        estimated=True,
        started=started,
        outcome=outcome,
        error_code=code,
        key_errors=walk.key_errors,
    )


async def chat_complete(
    *,
    workspace_id: uuid.UUID,
    model_id: uuid.UUID | None,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    reasoning: bool = False,
    usage: UsageContext,
) -> ChatResult:
    """The whole answer of `chat_stream` at once. Raises like it."""
    text: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCallRequest] = []
    final = Usage(0, 0)
    finish = "stop"
    served: list[uuid.UUID] = []
    async for event in _chat_events(
        workspace_id=workspace_id,
        model_id=model_id,
        messages=messages,
        tools=tools,
        temperature=temperature,
        max_tokens=max_tokens,
        reasoning=reasoning,
        usage=usage,
        served=served,
    ):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            thinking.append(event.text)
        elif isinstance(event, ToolCallRequest):
            calls.append(event)
        elif isinstance(event, Usage):
            final = event
        elif isinstance(event, Finish):
            finish = event.reason
    return ChatResult(
        text="".join(text),
        reasoning="".join(thinking),
        tool_calls=calls,
        usage=final,
        finish_reason=finish,
        model_id=served[0],
    )


# --- embeddings -------------------------------------------------------------------------------


async def _with_retries(
    chain: list[Target], call: Callable[[Adapter, Target], Awaitable[T]]
) -> tuple[T, _Attempts]:
    walk = _Attempts(chain)
    while True:
        target = walk.target
        adapter = make_adapter(target.endpoint(walk.key[1]))
        try:
            return await call(adapter, target), walk
        except ProviderError as error:
            error.attempts = walk  # type: ignore[attr-defined]
            delay = walk.after(error)
            if delay is None:
                raise
            if delay:
                await asyncio.sleep(delay)
        finally:
            await adapter.aclose()


async def aembed_texts(
    *,
    workspace_id: uuid.UUID,
    model_id: uuid.UUID | None,
    texts: list[str],
    usage: UsageContext,
) -> list[list[float]]:
    """One vector per text, in order, embedded in batches of EMBED_BATCH_SIZE with the same
    retry/rotation/failover rules as chat. Records one UsageRecord per call."""
    chain = await aresolve_chain(
        workspace_id=workspace_id, model_id=model_id, kind=ModelKind.EMBEDDING
    )
    started = time.monotonic()
    vectors: list[list[float]] = []
    used_tokens = 0
    estimated = False
    walk: _Attempts | None = None
    try:
        for offset in range(0, len(texts), EMBED_BATCH_SIZE):
            batch = texts[offset : offset + EMBED_BATCH_SIZE]

            async def call(adapter: Adapter, target: Target, batch: list[str] = batch) -> Any:
                return await adapter.embed(model=target.model_name, texts=batch, dimensions=None)

            (batch_vectors, batch_tokens), walk = await _with_retries(chain, call)
            vectors.extend(batch_vectors)
            if batch_tokens is None:
                estimated = True
                batch_tokens = sum(tokens.count_text(t) for t in batch)
            used_tokens += batch_tokens
    except ProviderError as error:
        failed_walk: _Attempts = getattr(error, "attempts", None) or _Attempts(chain)
        await sync_to_async(record_usage)(
            usage_ctx=usage,
            target=failed_walk.target,
            usage=Usage(used_tokens, 0),
            estimated=True,
            started=started,
            outcome=UsageOutcome.ERROR,
            error_code=error.code,
            key_errors=failed_walk.key_errors,
        )
        raise
    final_walk = walk or _Attempts(chain)
    await sync_to_async(record_usage)(
        usage_ctx=usage,
        target=final_walk.target,
        usage=Usage(used_tokens, 0),
        estimated=estimated,
        started=started,
        outcome=UsageOutcome.OK,
        used_key_id=final_walk.key[0],
        key_errors=final_walk.key_errors,
    )
    return vectors


def embed_texts(
    *,
    workspace_id: uuid.UUID,
    model_id: uuid.UUID | None,
    texts: list[str],
    usage: UsageContext,
) -> list[list[float]]:
    """`aembed_texts` for sync code (Celery tasks, sync views). Not from a running loop."""
    return async_to_sync(aembed_texts)(
        workspace_id=workspace_id, model_id=model_id, texts=texts, usage=usage
    )


# --- rerank -----------------------------------------------------------------------------------


async def arerank(
    *,
    workspace_id: uuid.UUID,
    model_id: uuid.UUID | None,
    query: str,
    documents: list[str],
    top_n: int | None = None,
    usage: UsageContext,
) -> list[RerankResult]:
    """The relevance of each document to `query` by a rerank model (`model_id`, else the
    workspace's default rerank model), best first; at most `top_n` results (None: one per
    document). One request to the provider's `/rerank` endpoint with the same
    retry/rotation/failover rules as chat and embeddings; one UsageRecord (kind rerank),
    whatever the outcome. Raises like `aembed_texts`. No documents: no call, no record."""
    chain = await aresolve_chain(
        workspace_id=workspace_id, model_id=model_id, kind=ModelKind.RERANK
    )
    if not documents:
        return []
    started = time.monotonic()

    async def call(adapter: Adapter, target: Target) -> Any:
        return await adapter.rerank(
            model=target.model_name, query=query, documents=documents, top_n=top_n
        )

    def estimate() -> int:
        # What a cross-encoder reads: the query once per document, and the documents.
        query_tokens = tokens.count_text(query)
        return sum(query_tokens + tokens.count_text(doc) for doc in documents)

    try:
        (pairs, used_tokens), walk = await _with_retries(chain, call)
    except ProviderError as error:
        failed_walk: _Attempts = getattr(error, "attempts", None) or _Attempts(chain)
        await sync_to_async(record_usage)(
            usage_ctx=usage,
            target=failed_walk.target,
            usage=Usage(0, 0),
            estimated=True,
            started=started,
            outcome=UsageOutcome.ERROR,
            error_code=error.code,
            key_errors=failed_walk.key_errors,
        )
        raise
    estimated = used_tokens is None
    await sync_to_async(record_usage)(
        usage_ctx=usage,
        target=walk.target,
        usage=Usage(estimate() if used_tokens is None else used_tokens, 0),
        estimated=estimated,
        started=started,
        outcome=UsageOutcome.OK,
        used_key_id=walk.key[0],
        key_errors=walk.key_errors,
    )
    results = sorted(
        (RerankResult(index=index, score=score) for index, score in pairs),
        key=lambda item: (-item.score, item.index),
    )
    return results[:top_n] if top_n is not None else results


def rerank(
    *,
    workspace_id: uuid.UUID,
    model_id: uuid.UUID | None,
    query: str,
    documents: list[str],
    top_n: int | None = None,
    usage: UsageContext,
) -> list[RerankResult]:
    """`arerank` for sync code (selectors, Celery tasks). Not from a running loop."""
    return async_to_sync(arerank)(
        workspace_id=workspace_id,
        model_id=model_id,
        query=query,
        documents=documents,
        top_n=top_n,
        usage=usage,
    )

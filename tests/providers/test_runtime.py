import asyncio
import json
import time
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from apps.providers import services, tokens
from apps.providers.exceptions import (
    ModelNotFound,
    ModelNotFoundError,
    NoModelConfigured,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnreachable,
    ProviderUrlBlocked,
)
from apps.providers.models import ProviderModel, UsageRecord
from apps.providers.scripted import Reply, ToolCall, embed_text
from apps.providers.types import (
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallRequest,
    Usage,
    UsageContext,
)
from tests.providers.factories import make_scripted_provider
from tests.users.factories import UserFactory, make_workspace

pytestmark = pytest.mark.django_db


def collect(**kwargs):
    async def run():
        return [event async for event in services.chat_stream(**kwargs)]

    return async_to_sync(run)()


def test_chat_stream_yields_text_deltas_then_usage_and_finish(workspace, user, scripted_llm):
    _, chat, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    scripted_llm.push(Reply(text="Hello there friend", usage=(11, 3)))

    events = collect(
        workspace_id=workspace.id,
        model_id=None,
        messages=[{"role": "user", "content": "Hi"}],
        usage=UsageContext(workspace_id=workspace.id, user_id=user.id),
    )

    assert events == [
        TextDelta("Hello "),
        TextDelta("there "),
        TextDelta("friend"),
        Usage(input_tokens=11, output_tokens=3),
        Finish("stop"),
    ]
    body = scripted_llm.requests[0]
    assert body["model"] == "scripted-chat"
    assert body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert scripted_llm.request_log[0]["headers"]["authorization"] == "Bearer sk-scripted-key-0001"
    row = UsageRecord.objects.get()
    assert (row.workspace_id, row.user_id, row.model_id) == (workspace.id, user.id, chat.id)
    assert (row.input_tokens, row.output_tokens, row.outcome) == (11, 3, "ok")
    assert row.tokens_estimated is False
    assert row.cost == Decimal("0.000017")  # 11 * 1/1e6 + 3 * 2/1e6


def test_tool_calls_and_reasoning_are_streamed(workspace, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    scripted_llm.push(
        Reply(
            reasoning="Need the weather",
            tool_calls=[ToolCall("weather", {"city": "Paris"}, id="call_1")],
        )
    )
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]

    events = collect(
        workspace_id=workspace.id,
        model_id=None,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=tools,
        usage=UsageContext(workspace_id=workspace.id),
    )

    assert events[:3] == [
        ReasoningDelta("Need "),
        ReasoningDelta("the "),
        ReasoningDelta("weather"),
    ]
    assert events[3] == ToolCallRequest(
        id="call_1", name="weather", arguments=json.dumps({"city": "Paris"})
    )
    assert events[-1] == Finish("tool_calls")
    assert scripted_llm.requests[0]["tools"] == tools


def test_embed_texts_returns_the_servers_vectors(workspace, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    vectors = services.embed_texts(
        workspace_id=workspace.id,
        model_id=None,
        texts=["alpha beta", "gamma"],
        usage=UsageContext(workspace_id=workspace.id),
    )
    assert vectors == [embed_text("alpha beta"), embed_text("gamma")]
    row = UsageRecord.objects.get()
    assert (row.kind, row.input_tokens, row.output_tokens) == ("embedding", 3, 0)
    assert uuid.UUID(str(row.model_id))


def wait_for_disconnect(server):
    """The server notices a closed stream on its next write."""
    deadline = time.monotonic() + 3
    while not server.request_log[0]["disconnected"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.request_log[0]["disconnected"] is True


def chat_kwargs(workspace, **extra):
    return {
        "workspace_id": workspace.id,
        "model_id": None,
        "messages": [{"role": "user", "content": "Hi"}],
        "usage": UsageContext(workspace_id=workspace.id),
        **extra,
    }


def complete(**kwargs):
    return async_to_sync(services.chat_complete)(**kwargs)


def test_chat_complete_collects_the_stream_and_reports_the_model(workspace, scripted_llm):
    _, chat, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    scripted_llm.push(Reply(text="Four.", reasoning="two plus two", usage=(5, 4)))

    result = complete(**chat_kwargs(workspace))

    assert result.text == "Four."
    assert result.reasoning == "two plus two"
    assert result.tool_calls == []
    assert result.usage == Usage(5, 4)
    assert result.finish_reason == "stop"
    assert result.model_id == chat.id


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_errors_are_retried_with_backoff(workspace, scripted_llm, settings, status):
    settings.PROVIDER_RETRY_BASE_DELAY = 0.2
    settings.PROVIDER_RETRY_MAX_DELAY = 1.0
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm, max_retries=2)
    scripted_llm.push(Reply(status=status), Reply(status=status), "Recovered")

    started = time.monotonic()
    result = complete(**chat_kwargs(workspace))
    elapsed = time.monotonic() - started

    assert result.text == "Recovered"
    assert len(scripted_llm.requests) == 3
    assert elapsed >= 0.2 + 0.4  # exponential backoff: 0.2 s then 0.4 s
    row = UsageRecord.objects.get()
    assert row.outcome == "ok"


def test_retry_after_header_is_honoured(workspace, scripted_llm, settings):
    settings.PROVIDER_RETRY_BASE_DELAY = 0.01
    settings.PROVIDER_RETRY_MAX_DELAY = 2.0
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    scripted_llm.push(Reply(status=429, retry_after=0.5), "ok")
    started = time.monotonic()
    assert complete(**chat_kwargs(workspace)).text == "ok"
    assert time.monotonic() - started >= 0.5


def test_retries_give_up_after_max_retries(workspace, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm, max_retries=1)
    scripted_llm.push(Reply(status=500), Reply(status=500), "never reached")

    with pytest.raises(ProviderServerError) as info:
        complete(**chat_kwargs(workspace))

    assert info.value.code == "provider_server_error"
    assert len(scripted_llm.requests) == 2
    assert scripted_llm.pending == 1
    row = UsageRecord.objects.get()
    assert (row.outcome, row.error_code) == ("error", "provider_server_error")


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (400, ProviderBadRequest, "provider_bad_request"),
        (401, ProviderAuthFailed, "provider_auth_failed"),
        (404, ModelNotFound, "model_not_found"),
    ],
)
def test_client_errors_are_not_retried(workspace, scripted_llm, status, error, code):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm, max_retries=3)
    scripted_llm.push(Reply(status=status), "never reached")

    with pytest.raises(error) as info:
        complete(**chat_kwargs(workspace))

    assert info.value.code == code
    assert len(scripted_llm.requests) == 1
    assert UsageRecord.objects.get().error_code == code


def test_failover_to_the_fallback_model_after_retries(workspace, scripted_llm):
    _, chat, _ = make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, max_retries=1
    )
    backup = ProviderModel.objects.create(
        provider=chat.provider, name="backup-chat", kind="chat", input_price_per_million=0
    )
    chat.fallback_model_ids = [str(backup.id)]
    chat.save()
    scripted_llm.push(Reply(status=503), Reply(status=503), "From the backup")

    result = complete(**chat_kwargs(workspace))

    assert result.text == "From the backup"
    assert result.model_id == backup.id
    assert [body["model"] for body in scripted_llm.requests] == [
        "scripted-chat",
        "scripted-chat",
        "backup-chat",
    ]
    row = UsageRecord.objects.get()
    assert (row.model_id, row.model_name, row.outcome) == (backup.id, "backup-chat", "ok")


def test_no_failover_on_a_non_retryable_error(workspace, scripted_llm):
    _, chat, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    backup = ProviderModel.objects.create(provider=chat.provider, name="backup", kind="chat")
    chat.fallback_model_ids = [str(backup.id)]
    chat.save()
    scripted_llm.push(Reply(status=400), "never")
    with pytest.raises(ProviderBadRequest):
        complete(**chat_kwargs(workspace))
    assert [body["model"] for body in scripted_llm.requests] == ["scripted-chat"]


def test_keys_rotate_round_robin_and_skip_a_rate_limited_key(workspace, scripted_llm):
    keys = ("sk-rotation-key-aaaa", "sk-rotation-key-bbbb", "sk-rotation-key-cccc")
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm, api_keys=keys)

    for _ in range(3):
        complete(**chat_kwargs(workspace))
    used = [entry["headers"]["authorization"] for entry in scripted_llm.request_log]
    assert sorted(used) == sorted(f"Bearer {k}" for k in keys)  # each key once

    scripted_llm.reset()
    scripted_llm.push(Reply(status=429), "ok")
    complete(**chat_kwargs(workspace))
    first, second = (e["headers"]["authorization"] for e in scripted_llm.request_log)
    assert first != second  # the 429 moved the call to the next key


def test_a_refused_key_is_skipped_and_marked(workspace, scripted_llm):
    keys = ("sk-revoked-key-0001", "sk-working-key-0002")
    provider, _, _ = make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, api_keys=keys
    )
    # Whatever key the rotation starts with, a 401 on it moves to the other.
    scripted_llm.push(Reply(status=401), "ok")
    assert complete(**chat_kwargs(workspace)).text == "ok"
    first, second = (e["headers"]["authorization"] for e in scripted_llm.request_log)
    assert first != second
    refused = next(k for k in provider.keys.all() if f"Bearer {k.secret}" == first)
    assert refused.last_error_code == "provider_auth_failed"
    assert refused.last_error_at is not None


def test_usage_is_counted_with_tiktoken_when_upstream_reports_none(workspace, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    scripted_llm.push(Reply(text="hello world", include_usage=False))

    result = complete(**chat_kwargs(workspace))

    expected_in = tokens.count_messages([{"role": "user", "content": "Hi"}])
    assert result.usage == Usage(expected_in, 2)  # "hello world" is 2 cl100k tokens
    row = UsageRecord.objects.get()
    assert (row.input_tokens, row.output_tokens, row.tokens_estimated) == (expected_in, 2, True)
    assert tokens._encoding() is not None  # the offline encoding, not the estimate


def test_first_byte_timeout_is_retried_then_fails(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, max_retries=1
    )
    provider.read_timeout = 0.3
    provider.save()
    scripted_llm.push(Reply(first_byte_delay=1.0), Reply(first_byte_delay=1.0))

    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        complete(**chat_kwargs(workspace))
    assert time.monotonic() - started < 2.0
    assert len(scripted_llm.requests) == 2


def test_a_stall_between_chunks_times_out(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, max_retries=0
    )
    provider.read_timeout = 0.3
    provider.save()
    scripted_llm.push(Reply(text="one two three", token_delay=1.0))

    async def run():
        seen = []
        with pytest.raises(ProviderTimeout):
            async for event in services.chat_stream(**chat_kwargs(workspace)):
                seen.append(event)
        return seen

    assert async_to_sync(run)() == [TextDelta("one ")]
    assert UsageRecord.objects.get().error_code == "provider_timeout"


def test_a_drop_before_any_output_is_retried(workspace, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    scripted_llm.push(Reply(text="lost", drop_after=0), "second try")
    assert complete(**chat_kwargs(workspace)).text == "second try"
    assert len(scripted_llm.requests) == 2


def test_a_drop_mid_stream_raises_without_retrying(workspace, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    scripted_llm.push(Reply(text="a b c d e f", drop_after=3), "never")

    async def run():
        seen = []
        with pytest.raises(ProviderUnreachable):
            async for event in services.chat_stream(**chat_kwargs(workspace)):
                seen.append(event)
        return seen

    assert async_to_sync(run)() == [TextDelta("a "), TextDelta("b ")]
    assert len(scripted_llm.requests) == 1
    row = UsageRecord.objects.get()
    assert (row.outcome, row.error_code, row.output_tokens) == (
        "error",
        "provider_unreachable",
        tokens.count_text("a b "),
    )


def test_cancelling_the_task_closes_the_upstream_request(workspace, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    scripted_llm.push(Reply(text=" ".join(["word"] * 200), token_delay=0.02))

    async def run():
        first = asyncio.Event()

        async def consume():
            async for _ in services.chat_stream(**chat_kwargs(workspace)):
                first.set()

        task = asyncio.ensure_future(consume())
        await asyncio.wait_for(first.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async_to_sync(run)()
    wait_for_disconnect(scripted_llm)
    row = UsageRecord.objects.get()
    assert (row.outcome, row.error_code) == ("cancelled", "cancelled")


def test_closing_the_generator_closes_the_upstream_request(workspace, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    scripted_llm.push(Reply(text=" ".join(["word"] * 200), token_delay=0.02))

    async def run():
        stream = services.chat_stream(**chat_kwargs(workspace))
        assert await anext(stream) == TextDelta("word ")
        await stream.aclose()

    async_to_sync(run)()
    wait_for_disconnect(scripted_llm)
    assert UsageRecord.objects.get().outcome == "cancelled"


def test_no_model_configured(workspace, scripted_llm):
    with pytest.raises(NoModelConfigured) as info:
        complete(**chat_kwargs(workspace))
    assert info.value.code == "no_model_configured"
    assert UsageRecord.objects.count() == 0


def test_platform_default_is_the_fallback_of_a_workspace_without_one(
    workspace, scripted_llm, outsider
):
    _, platform_chat, _ = make_scripted_provider(workspace=None, scripted_llm=scripted_llm)
    info = services.model_info(workspace_id=workspace.id, model_id=None)
    assert (info.id, info.kind, info.context_window) == (platform_chat.id, "chat", 32_000)
    assert info.capabilities == {"tools", "vision", "json_mode", "reasoning"}
    _, own_chat, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    assert services.model_info(workspace_id=workspace.id, model_id=None).id == own_chat.id
    embed = services.model_info(workspace_id=workspace.id, model_id=None, kind="embedding")
    assert embed.dimensions == 64


def test_another_workspaces_model_is_not_found(workspace, scripted_llm):
    other = make_workspace(owner=UserFactory())
    _, foreign_chat, _ = make_scripted_provider(workspace=other, scripted_llm=scripted_llm)
    with pytest.raises(ModelNotFoundError):
        complete(**chat_kwargs(workspace, model_id=foreign_chat.id))
    assert scripted_llm.requests == []


def test_a_base_url_turned_private_is_refused_at_call_time(workspace, scripted_llm, settings):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    settings.OUTBOUND_ALLOWED_HOSTS = []  # the operator removed the allow-list entry
    with pytest.raises(ProviderUrlBlocked) as info:
        complete(**chat_kwargs(workspace))
    assert info.value.code == "url_not_allowed"
    assert scripted_llm.requests == []


def test_embeddings_are_batched_and_retried(workspace, scripted_llm, monkeypatch):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    monkeypatch.setattr("apps.providers.runtime.EMBED_BATCH_SIZE", 2)
    scripted_llm.push_embeddings(Reply(status=429))
    texts = ["a", "b", "c", "d", "e"]

    vectors = services.embed_texts(
        workspace_id=workspace.id,
        model_id=None,
        texts=texts,
        usage=UsageContext(workspace_id=workspace.id),
    )

    assert vectors == [embed_text(t) for t in texts]
    assert [len(body["input"]) for body in scripted_llm.requests] == [2, 2, 2, 1]
    row = UsageRecord.objects.get()
    assert (row.kind, row.input_tokens, row.outcome) == ("embedding", 5, "ok")


def test_embedding_vectors_are_deterministic_and_similar_texts_are_closer():
    a = embed_text("the cat sat on the mat")
    b = embed_text("the cat sat on a mat")
    c = embed_text("quarterly revenue grew strongly")

    def dot(x, y):
        return sum(i * j for i, j in zip(x, y, strict=True))

    assert a == embed_text("the cat sat on the mat")
    assert abs(dot(a, a) - 1.0) < 1e-9
    assert dot(a, b) > dot(a, c)

"""The Anthropic adapter, through the official SDK, against the scripted server's
Anthropic-shaped endpoint."""

import json

import pytest
from asgiref.sync import async_to_sync

from apps.providers import services
from apps.providers.adapters import to_anthropic
from apps.providers.choices import ProviderKind
from apps.providers.exceptions import ProviderAuthFailed
from apps.providers.models import UsageRecord
from apps.providers.scripted import Reply, ToolCall
from apps.providers.types import (
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallRequest,
    Usage,
    UsageContext,
)
from tests.providers.factories import make_scripted_provider

pytestmark = pytest.mark.django_db

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up.",
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
        },
    }
]


def stream(workspace, **extra):
    async def run():
        return [
            event
            async for event in services.chat_stream(
                workspace_id=workspace.id,
                model_id=None,
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Define cat"},
                ],
                usage=UsageContext(workspace_id=workspace.id),
                **extra,
            )
        ]

    return async_to_sync(run)()


def test_anthropic_stream_text_thinking_and_usage(workspace, scripted_llm):
    make_scripted_provider(
        workspace=workspace,
        scripted_llm=scripted_llm,
        kind=ProviderKind.ANTHROPIC,
        api_keys=("sk-ant-test-key-0001",),
    )
    scripted_llm.push(Reply(text="A small feline.", reasoning="Think cat", usage=(9, 6)))

    events = stream(workspace, reasoning=True, max_tokens=2048)

    assert events == [
        ReasoningDelta("Think "),
        ReasoningDelta("cat"),
        TextDelta("A "),
        TextDelta("small "),
        TextDelta("feline."),
        Usage(9, 6),
        Finish("stop"),
    ]
    entry = scripted_llm.request_log[0]
    assert entry["path"] == "/v1/messages"
    headers = entry["headers"]
    assert "sk-ant-test-key-0001" in (
        headers.get("x-api-key", ""),
        headers.get("authorization", "").removeprefix("Bearer "),
    )
    assert "anthropic-version" in headers
    body = entry["body"]
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Define cat"}]}
    ]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["max_tokens"] == 2048
    row = UsageRecord.objects.get()
    assert (row.input_tokens, row.output_tokens, row.outcome) == (9, 6, "ok")


def test_anthropic_tool_use_becomes_a_tool_call(workspace, scripted_llm):
    make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, kind=ProviderKind.ANTHROPIC
    )
    scripted_llm.push(Reply(tool_calls=[ToolCall("lookup", {"word": "cat"}, id="toolu_1")]))

    events = stream(workspace, tools=TOOLS)

    assert events[0] == ToolCallRequest(
        id="toolu_1", name="lookup", arguments=json.dumps({"word": "cat"})
    )
    assert events[-1] == Finish("tool_calls")
    assert scripted_llm.requests[0]["tools"] == [
        {
            "name": "lookup",
            "description": "Look a word up.",
            "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
        }
    ]


def test_anthropic_auth_failure_is_mapped(workspace, scripted_llm):
    make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, kind=ProviderKind.ANTHROPIC
    )
    scripted_llm.push(Reply(status=401))
    with pytest.raises(ProviderAuthFailed):
        stream(workspace)
    assert len(scripted_llm.requests) == 1


def test_anthropic_retries_a_rate_limit(workspace, scripted_llm):
    make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, kind=ProviderKind.ANTHROPIC
    )
    scripted_llm.push(Reply(status=429), Reply(status=529), "fine")
    events = stream(workspace)
    assert events[0] == TextDelta("fine")
    assert len(scripted_llm.requests) == 3


def test_openai_messages_convert_to_anthropic_shape():
    system, messages, tools = to_anthropic(
        [
            {"role": "system", "content": "S1"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"word": "x"}'},
                    },
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"word": "y"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "r1"},
            {"role": "tool", "tool_call_id": "c2", "content": "r2"},
            {"role": "user", "content": "thanks"},
        ],
        TOOLS,
    )
    assert system == "S1"
    assert messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "c1", "name": "lookup", "input": {"word": "x"}},
                {"type": "tool_use", "id": "c2", "name": "lookup", "input": {"word": "y"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "r1"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "r2"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    assert tools[0]["name"] == "lookup"

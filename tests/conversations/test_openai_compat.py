"""The OpenAI-compatible endpoint driven by the official `openai` SDK with an API key."""

import json

import httpx
import openai
import pytest

from apps.conversations.models import Conversation, Message
from tests.agents.factories import make_agent
from tests.users.factories import make_api_key

pytestmark = pytest.mark.slow


@pytest.fixture
def sdk(live, user, workspace):
    _, plaintext = make_api_key(user=user, workspace=workspace)
    client = openai.OpenAI(base_url=f"{live.url}/api/v1", api_key=plaintext, max_retries=0)
    yield client
    client.close()


def test_models_lists_usable_agents(sdk, chat_agent, workspace, user):
    make_agent(workspace=workspace, user=user, name="Other", slug="other")
    archived = make_agent(workspace=workspace, user=user, name="Old", slug="old")
    archived.archived_at = archived.created_at
    archived.save(update_fields=["archived_at"])
    assert sorted(m.id for m in sdk.models.list()) == ["helper", "other"]


def test_chat_completion_not_streamed(sdk, chat_agent, scripted_llm):
    scripted_llm.push("Paris is the capital.", "Capital")
    completion = sdk.chat.completions.create(
        model="helper",
        messages=[
            {"role": "system", "content": "ignored: the agent has its own prompt"},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Capital of France?"},
        ],
    )
    assert completion.choices[0].message.content == "Paris is the capital."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens > 0
    sent = [m for m in scripted_llm.requests[0]["messages"] if m["role"] != "system"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "Capital of France?"),
    ]
    conv = Conversation.objects.get()
    assert conv.source == "openai"
    assert Message.objects.filter(conversation=conv).count() == 4
    # No title, no suggestions: one model call, the answer.
    assert len(scripted_llm.requests) == 1
    assert conv.title == ""


def test_chat_completions_at_the_api_root(live, user, workspace, chat_agent, scripted_llm):
    _, plaintext = make_api_key(user=user, workspace=workspace)
    scripted_llm.push("Root works.", "T")
    with openai.OpenAI(base_url=f"{live.url}/api/v1", api_key=plaintext, max_retries=0) as c:
        completion = c.chat.completions.create(
            model="helper", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == "Root works."


def test_chat_completion_streamed_by_agent_id(sdk, chat_agent, scripted_llm):
    scripted_llm.push("Streaming works fine.", "T")
    stream = sdk.chat.completions.create(
        model=str(chat_agent.id),
        messages=[{"role": "user", "content": "Stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Streaming works fine."
    assert len(scripted_llm.requests) == 1  # no title call before [DONE]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens > 0


def test_unknown_model_and_bad_key(sdk, live, chat_agent):
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    bad = openai.OpenAI(base_url=f"{live.url}/api/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    assert Conversation.objects.count() == 0


def test_models_retrieve(sdk, chat_agent):
    model = sdk.models.retrieve("helper")
    assert (model.id, model.object) == ("helper", "model")
    assert sdk.models.retrieve(str(chat_agent.id)).id == "helper"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("nope")


def test_stream_accepts_event_stream_and_sends_utf8(
    live, user, workspace, chat_agent, scripted_llm
):
    _, key = make_api_key(user=user, workspace=workspace)
    scripted_llm.push("Café für alle ☕")
    with httpx.stream(
        "POST",
        f"{live.url}/api/v1/chat/completions",
        json={"model": "helper", "stream": True, "messages": [{"role": "user", "content": "é?"}]},
        headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"},
        timeout=30,
    ) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read()
    assert body.endswith(b"data: [DONE]\n\n")
    assert b"\\u" not in body
    deltas = [
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in body.decode().split("\n")
        if line.startswith("data: {")
    ]
    assert "".join(deltas) == "Café für alle ☕"
    assert len(scripted_llm.requests) == 1


def test_errors_are_json_even_when_the_client_accepts_event_stream(live, user, workspace):
    _, key = make_api_key(user=user, workspace=workspace)
    r = httpx.post(
        f"{live.url}/api/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"},
    )
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == "agent_not_found"

"""The scripted server itself: the parts other processes (demos, benchmarks) rely on."""

import httpx
import openai
import pytest

from apps.providers.admin import ProviderForm
from apps.providers.scripted import DEFAULT_TEXT, embed_text

pytestmark = pytest.mark.django_db


def test_replies_can_be_queued_over_http(scripted_llm):
    response = httpx.post(
        f"{scripted_llm.root_url}/_script/push",
        json={"replies": ["first", {"text": "second", "usage": [3, 1]}, {"status": 500}]},
    )
    assert response.json() == {"queued": 3}
    client = openai.OpenAI(api_key="k", base_url=scripted_llm.base_url, max_retries=0)
    ask = [{"role": "user", "content": "q"}]
    first = client.chat.completions.create(model="m", messages=ask)
    second = client.chat.completions.create(model="m", messages=ask)
    assert (first.choices[0].message.content, second.choices[0].message.content) == (
        "first",
        "second",
    )
    assert (second.usage.prompt_tokens, second.usage.completion_tokens) == (3, 1)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=ask)
    default = client.chat.completions.create(model="m", messages=ask)
    assert default.choices[0].message.content == DEFAULT_TEXT
    vectors = client.embeddings.create(model="e", input=["x y"], dimensions=16)
    assert vectors.data[0].embedding == embed_text("x y", 16)
    assert [m.id for m in client.models.list().data] == ["scripted-chat", "scripted-embed"]
    httpx.post(f"{scripted_llm.root_url}/_script/reset")
    assert scripted_llm.requests == []


def test_admin_form_refuses_a_private_base_url(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    form = ProviderForm(
        data={
            "name": "meta",
            "kind": "openai",
            "base_url": "http://169.254.169.254/v1",
            "connect_timeout": 10,
            "read_timeout": 60,
            "max_retries": 2,
            "is_enabled": True,
        }
    )
    assert not form.is_valid()
    assert "base_url" in form.errors
    form = ProviderForm(
        data={
            "name": "public",
            "kind": "openai",
            "base_url": "https://8.8.8.8/v1",
            "connect_timeout": 10,
            "read_timeout": 60,
            "max_retries": 2,
            "is_enabled": True,
        }
    )
    assert form.is_valid(), form.errors

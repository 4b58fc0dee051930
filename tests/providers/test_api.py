import socket
from decimal import Decimal

import pytest

from apps.providers.choices import ModelKind
from apps.providers.models import DefaultModel, Provider, ProviderKey, ProviderModel, UsageRecord
from apps.providers.scripted import Reply, ToolCall
from apps.users.choices import Role
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.providers.factories import (
    ProviderFactory,
    ProviderKeyFactory,
    ProviderModelFactory,
    make_scripted_provider,
)
from tests.users.factories import add_member, api_key_client, make_api_key

pytestmark = pytest.mark.django_db

SECRET = "sk-live-abcdefghijklmnop1234"


def provider_url(provider):
    return f"/api/v1/providers/{provider.id}"


def test_admin_creates_a_provider_and_keys_are_write_only(api, workspace, allow_loopback):
    response = api.post(
        "/api/v1/providers",
        {
            "name": "Local vLLM",
            "kind": "openai",
            "base_url": "http://127.0.0.1:8001/v1",
            "api_keys": [SECRET, "sk-second-key-zzzz9999"],
            "read_timeout": 30,
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    assert SECRET.encode() not in response.content
    data = response.json()["data"]
    assert data["name"] == "Local vLLM"
    assert data["scope"] == "workspace"
    assert data["read_timeout"] == 30.0
    assert [k["last4"] for k in data["keys"]] == ["1234", "9999"]
    assert "api_keys" not in data and "secret" not in data["keys"][0]
    provider = Provider.objects.get(pk=data["id"])
    assert provider.workspace == workspace
    assert sorted(k.secret for k in provider.keys.all()) == sorted(
        [SECRET, "sk-second-key-zzzz9999"]
    )


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:11434/v1",
        "http://10.0.0.8/v1",
        "http://169.254.169.254/latest",
        "http://[::1]:8000/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://2130706433/v1",
        "http://0x7f000001/v1",
        "http://localhost:8000/v1",
    ],
)
def test_private_base_urls_are_refused_at_save(api, base_url):
    response = api.post(
        "/api/v1/providers",
        {"name": "x", "kind": "openai", "base_url": base_url, "api_keys": [SECRET]},
        format="json",
    )
    body = assert_error(response, 400, "url_not_allowed")
    assert body["error"]["details"][0]["field"] == "base_url"
    assert Provider.objects.count() == 0
    assert ProviderKey.objects.count() == 0


def test_members_below_admin_cannot_create(client_for, workspace):
    member = add_member(workspace=workspace, role=Role.MEMBER).user
    client = client_for(member)
    response = client.post(
        "/api/v1/providers",
        {"name": "x", "kind": "openai", "api_keys": [SECRET]},
        format="json",
        HTTP_X_WORKSPACE_ID=str(workspace.id),
    )
    assert_error(response, 403, "forbidden")
    assert Provider.objects.count() == 0


def test_list_shows_own_and_platform_providers_only(
    api, workspace, outsider, django_assert_num_queries
):
    own = ProviderFactory(workspace=workspace, name="own")
    ProviderModelFactory.create_batch(2, provider=own)
    ProviderKeyFactory(provider=own)
    platform = ProviderFactory(workspace=None, name="platform")
    other_ws = outsider.get("/api/v1/workspaces").json()["data"][0]["id"]
    ProviderFactory(workspace_id=other_ws, name="theirs")

    with django_assert_num_queries(6):
        response = api.get("/api/v1/providers")

    assert response.status_code == 200
    data = response.json()["data"]
    assert {(p["name"], p["scope"]) for p in data} == {
        ("own", "workspace"),
        ("platform", "platform"),
    }
    assert {p["id"] for p in data} == {str(own.id), str(platform.id)}


def test_outsiders_get_404_on_every_provider_endpoint(workspace, outsider, scripted_llm):
    provider, chat, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    key = provider.keys.get()
    url = provider_url(provider)
    assert_outsiders_get_404(method="get", url=url, outsider=outsider, obj=provider)
    assert_outsiders_get_404(
        method="patch", url=url, outsider=outsider, obj=provider, data={"name": "pwned"}
    )
    assert_outsiders_get_404(method="delete", url=url, outsider=outsider, obj=provider)
    assert_outsiders_get_404(
        method="post", url=f"{url}/verify", outsider=outsider, obj=provider, data={}
    )
    assert_outsiders_get_404(
        method="get", url=f"{url}/upstream-models", outsider=outsider, obj=provider
    )
    assert_outsiders_get_404(
        method="post",
        url=f"{url}/keys",
        outsider=outsider,
        obj=provider,
        data={"secret": "sk-evil-key-00000000"},
    )
    assert_outsiders_get_404(
        method="delete", url=f"{url}/keys/{key.id}", outsider=outsider, obj=key
    )
    assert_outsiders_get_404(method="get", url=f"{url}/models", outsider=outsider, obj=chat)
    assert_outsiders_get_404(
        method="post", url=f"{url}/models", outsider=outsider, obj=chat, data={"name": "m"}
    )
    model_url = f"{url}/models/{chat.id}"
    assert_outsiders_get_404(method="get", url=model_url, outsider=outsider, obj=chat)
    assert_outsiders_get_404(
        method="patch", url=model_url, outsider=outsider, obj=chat, data={"name": "x"}
    )
    assert_outsiders_get_404(method="delete", url=model_url, outsider=outsider, obj=chat)
    assert_outsiders_get_404(
        method="post", url=f"{model_url}/probe", outsider=outsider, obj=chat, data={}
    )
    assert scripted_llm.requests == []


def test_update_replaces_keys_and_rechecks_the_url(api, workspace, allow_loopback, settings):
    provider = ProviderFactory(workspace=workspace, base_url="http://127.0.0.1:9/v1")
    ProviderKeyFactory(provider=provider, secret="sk-old-key-00000000")

    response = api.patch(
        provider_url(provider),
        {"api_keys": ["sk-new-key-11111111"], "name": "Renamed"},
        format="json",
    )
    assert response.status_code == 200
    assert [k["last4"] for k in response.json()["data"]["keys"]] == ["1111"]
    assert [k.secret for k in provider.keys.all()] == ["sk-new-key-11111111"]

    settings.OUTBOUND_ALLOWED_HOSTS = []
    response = api.patch(provider_url(provider), {"base_url": "http://10.1.1.1/v1"}, format="json")
    assert_error(response, 400, "url_not_allowed")
    provider.refresh_from_db()
    assert (provider.name, provider.base_url) == ("Renamed", "http://127.0.0.1:9/v1")


def test_platform_providers_are_read_only_through_the_api(api):
    platform = ProviderFactory(workspace=None, name="platform")
    assert api.get(provider_url(platform)).status_code == 200
    assert_error(api.patch(provider_url(platform), {"name": "x"}, format="json"), 403, "forbidden")
    assert_error(api.delete(provider_url(platform)), 403, "forbidden")
    assert Provider.objects.get(pk=platform.pk).name == "platform"


def test_single_keys_can_be_added_and_removed(api, workspace):
    provider = ProviderFactory(workspace=workspace)
    response = api.post(
        f"{provider_url(provider)}/keys", {"secret": SECRET, "label": "backup"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["data"]["last4"] == "1234"
    assert SECRET.encode() not in response.content
    key_id = response.json()["data"]["id"]
    assert api.delete(f"{provider_url(provider)}/keys/{key_id}").status_code == 204
    assert provider.keys.count() == 0


def test_verify_reports_latency_on_success(api, user, workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    response = api.post(f"{provider_url(provider)}/verify", {}, format="json")
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["ok"], data["model"], data["error_code"]) == (True, "scripted-chat", "")
    assert isinstance(data["latency_ms"], int) and data["latency_ms"] >= 0
    assert scripted_llm.requests[0]["max_tokens"] == 1
    row = UsageRecord.objects.get()
    assert (row.workspace_id, row.user_id, row.outcome) == (workspace.id, user.id, "ok")


def test_calls_through_an_api_key_are_accounted_to_the_key(user, workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    key, plaintext = make_api_key(user=user, workspace=workspace)
    response = api_key_client(plaintext).post(f"{provider_url(provider)}/verify", {}, format="json")
    assert response.json()["data"]["ok"] is True
    row = UsageRecord.objects.get()
    assert (row.api_key_id, row.user_id) == (key.id, user.id)


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply(status=401), "provider_auth_failed"),
        (Reply(status=404), "model_not_found"),
        (Reply(status=500), "provider_server_error"),
    ],
)
def test_verify_explains_failures(api, workspace, scripted_llm, reply, code):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    scripted_llm.push(reply)
    data = api.post(f"{provider_url(provider)}/verify", {}, format="json").json()["data"]
    assert (data["ok"], data["error_code"]) == (False, code)
    assert data["error_message"]
    assert "sk-scripted-key-0001" not in data["error_message"]


def test_verify_unreachable_provider(api, workspace, allow_loopback):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    provider = ProviderFactory(workspace=workspace, base_url=f"http://127.0.0.1:{port}/v1")
    ProviderModelFactory(provider=provider, name="m")
    data = api.post(f"{provider_url(provider)}/verify", {}, format="json").json()["data"]
    assert (data["ok"], data["error_code"]) == (False, "provider_unreachable")


def test_upstream_models_are_listed(api, workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    response = api.get(f"{provider_url(provider)}/upstream-models")
    assert response.json()["data"] == {"models": ["scripted-chat", "scripted-embed"]}


def test_capabilities_probe_saves_what_it_found(api, workspace, scripted_llm):
    provider, chat, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    chat.capabilities = ["reasoning"]
    chat.save()
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("get_time", {})]),  # tool probe
        Reply(status=400),  # vision probe: the model refuses images
        '{"ok": true}',  # JSON mode probe
    )

    response = api.post(f"{provider_url(provider)}/models/{chat.id}/probe", format="json")

    data = response.json()["data"]
    assert (data["tools"], data["vision"], data["json_mode"]) == (True, False, True)
    assert data["model"]["capabilities"] == ["json_mode", "reasoning", "tools"]
    chat.refresh_from_db()
    assert chat.capabilities == ["json_mode", "reasoning", "tools"]
    assert scripted_llm.requests[2]["response_format"] == {"type": "json_object"}


def test_models_crud(api, workspace):
    provider = ProviderFactory(workspace=workspace)
    url = f"{provider_url(provider)}/models"
    response = api.post(
        url,
        {
            "name": "gpt-x",
            "kind": "chat",
            "context_window": 128000,
            "capabilities": ["tools", "vision"],
            "input_price_per_million": "2.5",
            "output_price_per_million": "10",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert (data["name"], data["capabilities"], data["input_price_per_million"]) == (
        "gpt-x",
        ["tools", "vision"],
        "2.500000",
    )
    assert_error(api.post(url, {"name": "gpt-x"}, format="json"), 400, "validation_error")
    body = assert_error(
        api.post(url, {"name": "emb", "kind": "embedding"}, format="json"), 400, "validation_error"
    )
    assert body["error"]["details"][0]["field"] == "dimensions"
    assert_error(
        api.post(url, {"name": "y", "capabilities": ["telepathy"]}, format="json"),
        400,
        "validation_error",
    )
    model_id = data["id"]
    response = api.patch(f"{url}/{model_id}", {"max_output_tokens": 4096}, format="json")
    assert response.json()["data"]["max_output_tokens"] == 4096
    assert api.delete(f"{url}/{model_id}").status_code == 204
    assert ProviderModel.objects.count() == 0


def test_fallbacks_must_be_usable_models_of_the_same_kind(api, workspace):
    provider = ProviderFactory(workspace=workspace)
    chat = ProviderModelFactory(provider=provider)
    embed = ProviderModelFactory(provider=provider, kind=ModelKind.EMBEDDING, dimensions=8)
    foreign = ProviderModelFactory(provider=ProviderFactory(workspace=None), kind=ModelKind.CHAT)
    url = f"{provider_url(provider)}/models/{chat.id}"
    assert_error(
        api.patch(url, {"fallback_model_ids": [str(embed.id)]}, format="json"),
        400,
        "validation_error",
    )
    response = api.patch(url, {"fallback_model_ids": [str(foreign.id)]}, format="json")
    assert response.json()["data"]["fallback_model_ids"] == [str(foreign.id)]


def test_default_models_fall_back_to_the_platform(api, workspace, scripted_llm):
    _, platform_chat, platform_embed = make_scripted_provider(
        workspace=None, scripted_llm=scripted_llm
    )
    data = api.get("/api/v1/model-defaults").json()["data"]
    assert [(d["kind"], d["source"], (d["model"] or {}).get("id")) for d in data] == [
        ("chat", "platform", str(platform_chat.id)),
        ("embedding", "platform", str(platform_embed.id)),
        ("rerank", "none", None),
    ]
    _, own_chat, _ = make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, set_defaults=False
    )
    data = api.patch(
        "/api/v1/model-defaults", {"chat_model_id": str(own_chat.id)}, format="json"
    ).json()["data"]
    assert [(d["kind"], d["source"]) for d in data] == [
        ("chat", "workspace"),
        ("embedding", "platform"),
        ("rerank", "none"),
    ]
    assert data[0]["model"]["id"] == str(own_chat.id)
    response = api.patch(
        "/api/v1/model-defaults", {"embedding_model_id": str(own_chat.id)}, format="json"
    )
    assert_error(response, 400, "validation_error")
    api.patch("/api/v1/model-defaults", {"chat_model_id": None}, format="json")
    assert not DefaultModel.objects.filter(workspace=workspace).exists()


def test_models_list_filters_by_kind(api, workspace, scripted_llm):
    _, chat, embed = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    data = api.get("/api/v1/provider-models?kind=embedding").json()["data"]
    assert [m["id"] for m in data] == [str(embed.id)]
    data = api.get("/api/v1/provider-models").json()["data"]
    assert {m["id"] for m in data} == {str(chat.id), str(embed.id)}


def test_deleting_a_provider_whose_models_are_used_is_refused_or_reassigns(
    api, workspace, scripted_llm
):
    from django.apps import apps

    if not apps.is_installed("apps.knowledge"):
        pytest.skip("needs an app that references models")
    KnowledgeBase = apps.get_model("knowledge", "KnowledgeBase")
    provider, _, embed = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    kb = KnowledgeBase.objects.create(workspace=workspace, name="Docs", embedding_model=embed)

    response = api.delete(provider_url(provider))

    body = assert_error(response, 409, "provider_in_use")
    assert "1 knowledge.knowledgebase" in body["error"]["message"]
    assert Provider.objects.filter(pk=provider.pk).exists()

    other = ProviderFactory(workspace=workspace, name="other")
    wrong = ProviderModelFactory(provider=other, kind=ModelKind.EMBEDDING, dimensions=8)
    right = ProviderModelFactory(provider=other, kind=ModelKind.EMBEDDING, dimensions=64)
    response = api.delete(f"{provider_url(provider)}?reassign_embedding_to={wrong.id}")
    assert_error(response, 400, "validation_error")
    response = api.delete(f"{provider_url(provider)}?reassign_embedding_to={right.id}")
    assert response.status_code == 204
    kb.refresh_from_db()
    assert kb.embedding_model_id == right.id
    assert not Provider.objects.filter(pk=provider.pk).exists()


def test_cost_prices_are_decimals(workspace):
    model = ProviderModelFactory(provider=ProviderFactory(workspace=workspace))
    assert model.input_price_per_million == Decimal("1")

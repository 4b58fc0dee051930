"""Rerank models: the runtime's rerank call over real HTTP to the scripted server (wire
shape, retries, key rotation, usage), the defaults API, and what providers refuse."""

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from apps.providers import services, tokens
from apps.providers.adapters import parse_rerank
from apps.providers.choices import ModelKind, ProviderKind
from apps.providers.exceptions import (
    ModelNotFoundError,
    NoModelConfigured,
    ProviderBadResponse,
    ProviderServerError,
)
from apps.providers.models import DefaultModel, ProviderModel, UsageRecord
from apps.providers.scripted import Reply
from apps.providers.types import RerankResult, UsageContext
from tests.helpers import assert_error
from tests.providers.factories import add_rerank_model, make_scripted_provider

pytestmark = pytest.mark.django_db

QUERY = "red apple pie"
DOCUMENTS = ["a red car", "apple pie with red apple", "banana bread", "apple crumble"]


def rerank_requests(scripted_llm):
    return [e for e in scripted_llm.request_log if e["path"] == "/v1/rerank"]


def call(workspace, user=None, **kwargs):
    params = {
        "workspace_id": workspace.id,
        "model_id": None,
        "query": QUERY,
        "documents": DOCUMENTS,
        "usage": UsageContext(workspace_id=workspace.id, user_id=user.id if user else None),
    }
    params.update(kwargs)
    return services.rerank(**params)


def test_rerank_sends_the_standard_request_and_orders_by_relevance(user, workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    model = add_rerank_model(provider, price=Decimal("2"))

    results = call(workspace, user, model_id=model.id, top_n=3)

    # Share of {red, apple, pie} in each document: 1/3, 3/3, 0, 1/3 (ties: by index).
    assert results == [
        RerankResult(index=1, score=1.0),
        RerankResult(index=0, score=pytest.approx(1 / 3)),
        RerankResult(index=3, score=pytest.approx(1 / 3)),
    ]
    (sent,) = rerank_requests(scripted_llm)
    assert sent["body"] == {
        "model": "scripted-rerank",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 3,
    }
    assert sent["headers"]["authorization"] == "Bearer sk-scripted-key-0001"
    record = UsageRecord.objects.get(kind=ModelKind.RERANK)
    # The scripted server reports query words + document words for each document.
    assert (record.input_tokens, record.output_tokens) == (3 * 4 + 3 + 5 + 2 + 2, 0)
    assert record.tokens_estimated is False
    assert (record.outcome, record.model_id, record.user_id) == ("ok", model.id, user.id)
    assert record.cost == Decimal(24) * Decimal("2") / Decimal(1_000_000)


def test_rerank_without_top_n_scores_every_document(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    model = add_rerank_model(provider)
    results = call(workspace, model_id=model.id)
    assert [r.index for r in results] == [1, 0, 3, 2]
    assert results[-1].score == 0.0
    assert "top_n" not in rerank_requests(scripted_llm)[0]["body"]


def test_rerank_retries_a_429_then_succeeds(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    model = add_rerank_model(provider)
    scripted_llm.push_rerank(Reply(status=429, retry_after=0))

    results = call(workspace, model_id=model.id, top_n=1)

    assert results == [RerankResult(index=1, score=1.0)]
    assert len(rerank_requests(scripted_llm)) == 2
    (record,) = UsageRecord.objects.filter(kind=ModelKind.RERANK)
    assert record.outcome == "ok"


def test_rerank_rotates_keys_after_a_429(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(
        workspace=workspace,
        scripted_llm=scripted_llm,
        api_keys=("sk-key-number-one", "sk-key-number-two"),
    )
    model = add_rerank_model(provider)
    scripted_llm.push_rerank(Reply(status=429, retry_after=0))

    call(workspace, model_id=model.id)

    first, second = (e["headers"]["authorization"] for e in rerank_requests(scripted_llm))
    assert first != second
    assert {first, second} == {"Bearer sk-key-number-one", "Bearer sk-key-number-two"}


def test_rerank_retries_a_dropped_connection(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    model = add_rerank_model(provider)
    scripted_llm.push_rerank(Reply(drop_after=0))
    assert call(workspace, model_id=model.id, top_n=1) == [RerankResult(index=1, score=1.0)]
    assert len(rerank_requests(scripted_llm)) == 2


def test_persistent_5xx_raises_after_the_retries_and_records_the_failure(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, max_retries=2
    )
    model = add_rerank_model(provider)
    scripted_llm.push_rerank(*[Reply(status=503)] * 3)

    with pytest.raises(ProviderServerError):
        call(workspace, model_id=model.id)

    assert len(rerank_requests(scripted_llm)) == 3  # the call and its 2 retries
    record = UsageRecord.objects.get(kind=ModelKind.RERANK)
    assert (record.outcome, record.error_code) == ("error", "provider_server_error")


def test_rerank_fails_over_to_a_fallback_model(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, max_retries=0
    )
    backup = add_rerank_model(provider, name="backup-rerank")
    model = add_rerank_model(provider, fallback_model_ids=[str(backup.id)])
    scripted_llm.push_rerank(Reply(status=500))

    assert call(workspace, model_id=model.id, top_n=1) == [RerankResult(index=1, score=1.0)]

    assert [e["body"]["model"] for e in rerank_requests(scripted_llm)] == [
        "scripted-rerank",
        "backup-rerank",
    ]
    assert UsageRecord.objects.get(kind=ModelKind.RERANK).model_id == backup.id


def test_usage_is_counted_locally_when_the_upstream_reports_none(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    model = add_rerank_model(provider)
    scripted_llm.push_rerank(Reply(include_usage=False))
    call(workspace, model_id=model.id)
    record = UsageRecord.objects.get(kind=ModelKind.RERANK)
    expected = sum(tokens.count_text(QUERY) + tokens.count_text(d) for d in DOCUMENTS)
    assert (record.input_tokens, record.tokens_estimated) == (expected, True)


def test_no_documents_make_no_call(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    model = add_rerank_model(provider)
    assert call(workspace, model_id=model.id, documents=[]) == []
    assert rerank_requests(scripted_llm) == [] and not UsageRecord.objects.exists()


def test_model_resolution_default_wrong_kind_and_none(workspace, scripted_llm):
    provider, chat, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    with pytest.raises(NoModelConfigured):
        call(workspace)
    with pytest.raises(ModelNotFoundError):
        call(workspace, model_id=chat.id)
    default = add_rerank_model(provider, name="default-rerank", make_default=True)
    results = async_to_sync(services.arerank)(
        workspace_id=workspace.id,
        model_id=None,
        query=QUERY,
        documents=DOCUMENTS,
        top_n=1,
        usage=UsageContext(workspace_id=workspace.id),
    )
    assert results == [RerankResult(index=1, score=1.0)]
    assert rerank_requests(scripted_llm)[0]["body"]["model"] == default.name


def test_parse_rerank_accepts_the_common_shapes_and_refuses_others():
    assert parse_rerank({"results": [{"index": 1, "relevance_score": 0.5}]}, count=2) == [(1, 0.5)]
    # HF text-embeddings-inference answers a bare list with "score".
    assert parse_rerank([{"index": 0, "score": 2}], count=1) == [(0, 2.0)]
    for bad in (
        {"results": [{"index": 2, "relevance_score": 0.5}]},  # out of range
        {"results": [{"index": 0, "relevance_score": 0.5}, {"index": 0, "score": 1}]},
        {"results": [{"index": 0, "relevance_score": "high"}]},
        {"data": []},
        "not json",
    ):
        with pytest.raises(ProviderBadResponse):
            parse_rerank(bad, count=2)


# --- API -----------------------------------------------------------------------------------


def test_rerank_models_are_created_and_made_the_default_through_the_api(
    api, workspace, scripted_llm
):
    provider, chat, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    response = api.post(
        f"/api/v1/providers/{provider.id}/models",
        {"name": "jina-reranker-v2", "kind": "rerank", "input_price_per_million": "0.02"},
        format="json",
    )
    assert response.status_code == 201, response.content
    model_id = response.json()["data"]["id"]
    assert response.json()["data"]["kind"] == "rerank"
    listed = api.get("/api/v1/provider-models?kind=rerank").json()["data"]
    assert [m["id"] for m in listed] == [model_id]

    data = api.patch("/api/v1/model-defaults", {"rerank_model_id": model_id}, format="json").json()[
        "data"
    ]
    assert [(d["kind"], d["source"]) for d in data][-1] == ("rerank", "workspace")
    assert data[-1]["model"]["id"] == model_id
    assert str(DefaultModel.objects.get(workspace=workspace, kind="rerank").model_id) == model_id

    body = assert_error(
        api.patch("/api/v1/model-defaults", {"rerank_model_id": str(chat.id)}, format="json"),
        400,
        "validation_error",
    )
    assert body["error"]["details"][0]["field"] == "rerank_model_id"
    assert str(DefaultModel.objects.get(workspace=workspace, kind="rerank").model_id) == model_id


def test_anthropic_providers_refuse_rerank_models(api, workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, kind=ProviderKind.ANTHROPIC
    )
    before = ProviderModel.objects.count()
    body = assert_error(
        api.post(
            f"/api/v1/providers/{provider.id}/models",
            {"name": "rerank-please", "kind": "rerank"},
            format="json",
        ),
        400,
        "validation_error",
    )
    assert body["error"]["details"][0]["field"] == "kind"
    assert ProviderModel.objects.count() == before

    openai_provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    add_rerank_model(openai_provider)
    body = assert_error(
        api.patch(f"/api/v1/providers/{openai_provider.id}", {"kind": "anthropic"}, format="json"),
        400,
        "validation_error",
    )
    assert body["error"]["details"][0]["field"] == "kind"
    openai_provider.refresh_from_db()
    assert openai_provider.kind == ProviderKind.OPENAI


def test_verify_makes_a_rerank_round_trip_for_a_rerank_model(api, workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    model = add_rerank_model(provider)
    response = api.post(
        f"/api/v1/providers/{provider.id}/verify", {"model_id": str(model.id)}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["data"]["ok"] is True
    assert [e["path"] for e in scripted_llm.request_log] == ["/v1/rerank"]

    scripted_llm.push_rerank(Reply(status=401))
    data = api.post(
        f"/api/v1/providers/{provider.id}/verify", {"model_id": str(model.id)}, format="json"
    ).json()["data"]
    assert (data["ok"], data["error_code"]) == (False, "provider_auth_failed")


def test_deleting_a_provider_whose_rerank_model_a_knowledge_base_uses(api, workspace, scripted_llm):
    from apps.knowledge.models import KnowledgeBase

    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    used = add_rerank_model(provider)
    kb = KnowledgeBase.objects.create(workspace=workspace, name="Docs", rerank_model=used)
    assert_error(api.delete(f"/api/v1/providers/{provider.id}"), 409, "provider_in_use")

    other, chat, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    assert_error(
        api.delete(f"/api/v1/providers/{provider.id}?reassign_rerank_to={chat.id}"),
        400,
        "validation_error",
    )
    replacement = add_rerank_model(other, name="other-rerank")
    response = api.delete(f"/api/v1/providers/{provider.id}?reassign_rerank_to={replacement.id}")
    assert response.status_code == 204, response.content
    kb.refresh_from_db()
    assert kb.rerank_model_id == replacement.id

"""Rerank of knowledge search through a provider's rerank endpoint (the scripted server
over real HTTP): the reranked order and scores, the threshold on the rerank score,
retries, the fallback when the reranker fails, validation, usage, and the agents' tool."""

import re
import uuid

import pytest
from asgiref.sync import async_to_sync

from apps.core.tools import ToolContext
from apps.knowledge.models import Chunk, KnowledgeBase
from apps.knowledge.rerank import candidate_count
from apps.knowledge.selectors import knowledge_search, knowledge_tool_specs
from apps.providers.models import UsageRecord
from apps.providers.scripted import Reply
from tests.helpers import assert_error
from tests.knowledge.factories import add_texts, make_kb
from tests.providers.factories import add_rerank_model, make_scripted_provider

pytestmark = pytest.mark.django_db

QUERY = "zeppelin engine oil filter"
FILLER = (
    "checklist covering bearings gaskets hoses belts clamps brackets sensors gauges valves "
    "pistons rings seals mounts fans radiators pumps wiring fuses relays switches cables "
    "levers pedals brakes tyres wheels axles springs dampers"
)
TEXTS = {
    # Embeds like one query word (the vector leg ranks it first), holds 1 of the 4 words.
    "zeppelin.txt": "zeppelin zeppelin zeppelin",
    # Three query words among many others (ranked lower by the vector leg), holds 3 of 4.
    "manual.txt": f"engine oil filter {FILLER}",
    "bicycle.txt": "bicycle chain lubrication guide",
    "garden.txt": "garden hose storage tips",
}


def share(query: str, text: str) -> float:
    """What the scripted reranker scores: the share of the query's words in the text."""
    wanted = set(re.findall(r"\w+", query.lower()))
    return len(wanted & set(re.findall(r"\w+", text.lower()))) / len(wanted)


def rerank_requests(scripted_llm):
    return [e for e in scripted_llm.request_log if e["path"] == "/v1/rerank"]


@pytest.fixture
def provider(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    return provider


@pytest.fixture
def reranker(provider):
    return add_rerank_model(provider)


@pytest.fixture
def kb(user, workspace, provider, reranker, django_capture_on_commit_callbacks):
    kb = make_kb(
        user=user,
        workspace=workspace,
        name="Workshop",
        description="Maintenance notes",
        top_k=2,
        search_mode="vector",
        rerank_model_id=reranker.id,
    )
    with django_capture_on_commit_callbacks(execute=True):
        add_texts(user=user, kb=kb, texts=TEXTS)
    assert set(kb.documents.values_list("status", flat=True)) == {"indexed"}
    return kb


def search(api, kb, **body):
    response = api.post(f"/api/v1/knowledge-bases/{kb.id}/search", {"query": QUERY, **body})
    assert response.status_code == 200, response.content
    return response.json()["data"]


def names(hits):
    return [h["document_name"] for h in hits]


def test_rerank_reorders_the_retrieved_passages(api, kb, reranker, scripted_llm):
    plain = search(api, kb, rerank=False)
    assert plain["rerank"] is None and rerank_requests(scripted_llm) == []
    assert [h["rerank_score"] for h in plain["hits"]] == [None, None]

    data = search(api, kb)

    hits = data["hits"]
    assert names(hits) == ["manual.txt", "zeppelin.txt"]
    assert names(hits) != names(plain["hits"])  # the retrieval order differs
    for hit in hits:
        assert hit["rerank_score"] == pytest.approx(share(QUERY, hit["content"]))
    retrieval = {h["chunk_id"]: h["score"] for h in search(api, kb, rerank=False, top_k=4)["hits"]}
    assert [h["score"] for h in hits] == [retrieval[h["chunk_id"]] for h in hits]
    assert data["rerank"] == {
        "applied": True,
        "model_id": str(reranker.id),
        "candidates": 4,  # every passage: fewer than max(4 x top_k, 20)
        "error": None,
    }
    (sent,) = rerank_requests(scripted_llm)
    by_retrieval = sorted(retrieval, key=lambda chunk_id: -retrieval[chunk_id])
    contents = dict(Chunk.objects.values_list("id", "content"))
    assert sent["body"] == {
        "model": reranker.name,
        "query": QUERY,
        "documents": [contents[uuid.UUID(c)] for c in by_retrieval],
        "top_n": 2,
    }


def test_threshold_applies_to_the_rerank_score(api, kb):
    manual = search(api, kb, rerank=False, top_k=4)["hits"]
    manual_retrieval = next(h["score"] for h in manual if h["document_name"] == "manual.txt")
    assert manual_retrieval < 0.5

    data = search(api, kb, threshold=0.5)

    assert names(data["hits"]) == ["manual.txt"]
    assert data["hits"][0]["rerank_score"] == pytest.approx(0.75)
    assert data["hits"][0]["score"] == pytest.approx(manual_retrieval)
    # Without rerank the same threshold keeps passages by their retrieval score.
    assert "manual.txt" not in names(search(api, kb, threshold=0.5, rerank=False)["hits"])


def test_candidates_knob_limits_what_the_reranker_reads(api, kb, scripted_llm):
    kb.rerank_candidates = 3
    kb.save()
    data = search(api, kb, top_k=1)
    assert data["rerank"]["candidates"] == 3
    assert len(rerank_requests(scripted_llm)[-1]["body"]["documents"]) == 3
    data = search(api, kb, top_k=1, rerank_candidates=2)
    assert data["rerank"]["candidates"] == 2
    assert len(rerank_requests(scripted_llm)[-1]["body"]["documents"]) == 2


def test_candidate_count_default_and_bounds():
    assert candidate_count(top_k=5, configured=None) == 20
    assert candidate_count(top_k=10, configured=None) == 40
    assert candidate_count(top_k=30, configured=None) == 100
    assert candidate_count(top_k=5, configured=3) == 5
    assert candidate_count(top_k=5, configured=60) == 60


def test_a_429_is_retried_and_the_search_still_reranks(api, kb, scripted_llm):
    scripted_llm.push_rerank(Reply(status=429, retry_after=0))
    data = search(api, kb)
    assert data["rerank"]["applied"] is True
    assert names(data["hits"]) == ["manual.txt", "zeppelin.txt"]
    assert len(rerank_requests(scripted_llm)) == 2


def test_a_failing_reranker_leaves_the_retrieval_order_and_says_so(
    api, user, kb, reranker, scripted_llm
):
    plain = search(api, kb, rerank=False)
    scripted_llm.push_rerank(*[Reply(status=500)] * 3)  # the call and the provider's 2 retries

    data = search(api, kb)

    assert data["hits"] == plain["hits"]
    assert data["rerank"] == {
        "applied": False,
        "model_id": str(reranker.id),
        "candidates": 4,
        "error": "provider_server_error",
    }
    assert len(rerank_requests(scripted_llm)) == 3
    record = UsageRecord.objects.get(kind="rerank")
    assert (record.outcome, record.error_code, record.user_id) == (
        "error",
        "provider_server_error",
        user.id,
    )


def test_a_disabled_rerank_model_falls_back_instead_of_failing(api, kb, reranker, scripted_llm):
    reranker.is_enabled = False
    reranker.save()
    data = search(api, kb)
    assert data["rerank"]["applied"] is False and data["rerank"]["error"] == "provider_disabled"
    assert len(data["hits"]) == 2 and rerank_requests(scripted_llm) == []


def test_a_successful_rerank_is_accounted_to_the_user(api, user, kb, reranker):
    search(api, kb)
    record = UsageRecord.objects.get(kind="rerank")
    assert (record.outcome, record.model_id, record.user_id) == ("ok", reranker.id, user.id)
    assert record.tokens_estimated is False
    words = len(QUERY.split())
    assert record.input_tokens == sum(words + len(t.split()) for t in TEXTS.values())


def test_rerank_on_request_uses_the_workspace_default(api, user, workspace, provider, scripted_llm):
    kb = make_kb(user=user, workspace=workspace, name="Plain", search_mode="fulltext")
    add_texts(user=user, kb=kb, texts={"a.txt": "oil filter"})  # not indexed: nothing found
    body = assert_error(
        api.post(f"/api/v1/knowledge-bases/{kb.id}/search", {"query": QUERY, "rerank": True}),
        400,
        "no_model_configured",
    )
    assert body["error"]["details"][0]["field"] == "rerank"
    default = add_rerank_model(provider, name="default-rerank", make_default=True)
    # Without a knowledge-base model and without asking, no rerank.
    assert search(api, kb)["rerank"] is None
    data = search(api, kb, rerank=True)
    assert data["rerank"] == {
        "applied": False,
        "model_id": str(default.id),
        "candidates": 0,
        "error": None,
    }
    assert rerank_requests(scripted_llm) == []


def test_request_model_override(api, kb, provider, scripted_llm):
    other = add_rerank_model(provider, name="other-rerank")
    data = search(api, kb, rerank_model_id=str(other.id))
    assert data["rerank"]["model_id"] == str(other.id)
    assert rerank_requests(scripted_llm)[0]["body"]["model"] == "other-rerank"


def test_search_request_validation(api, kb, provider, workspace):
    url = f"/api/v1/knowledge-bases/{kb.id}/search"
    chat = provider.models.get(kind="chat")
    body = assert_error(
        api.post(url, {"query": QUERY, "rerank_model_id": str(chat.id)}), 400, "validation_error"
    )
    assert body["error"]["details"][0]["field"] == "rerank_model_id"
    other = add_rerank_model(provider, name="x-rerank")
    body = assert_error(
        api.post(url, {"query": QUERY, "rerank": False, "rerank_model_id": str(other.id)}),
        400,
        "validation_error",
    )
    assert body["error"]["details"][0]["field"] == "rerank_model_id"
    body = assert_error(
        api.post(url, {"query": QUERY, "rerank_candidates": 101}), 400, "validation_error"
    )
    assert body["error"]["details"][0]["field"] == "rerank_candidates"
    body = assert_error(
        api.post(url, {"query": QUERY, "rerank_model_id": str(uuid.uuid4())}),
        404,
        "provider_model_not_found",
    )
    assert body["error"]["details"][0]["field"] == "rerank_model_id"


def test_knowledge_base_rerank_settings_through_the_api(api, workspace, provider, reranker):
    response = api.post(
        "/api/v1/knowledge-bases",
        {"name": "KB", "rerank_model_id": str(reranker.id), "rerank_candidates": 30},
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert (data["rerank_model_id"], data["rerank_candidates"]) == (str(reranker.id), 30)
    patched = api.patch(
        f"/api/v1/knowledge-bases/{data['id']}",
        {"rerank_model_id": None, "rerank_candidates": None},
        format="json",
    ).json()["data"]
    assert (patched["rerank_model_id"], patched["rerank_candidates"]) == (None, None)


def test_knowledge_base_rerank_model_validation(api, workspace, provider, reranker, scripted_llm):
    from tests.users.factories import UserFactory

    chat = provider.models.get(kind="chat")
    body = assert_error(
        api.post("/api/v1/knowledge-bases", {"name": "A", "rerank_model_id": str(chat.id)}),
        400,
        "validation_error",
    )
    assert body["error"]["details"][0]["field"] == "rerank_model_id"

    stranger = UserFactory()
    theirs, _, _ = make_scripted_provider(
        workspace=stranger.memberships.get().workspace, scripted_llm=scripted_llm
    )
    their_reranker = add_rerank_model(theirs)
    body = assert_error(
        api.post(
            "/api/v1/knowledge-bases", {"name": "B", "rerank_model_id": str(their_reranker.id)}
        ),
        404,
        "provider_model_not_found",
    )
    assert body["error"]["details"][0]["field"] == "rerank_model_id"

    reranker.is_enabled = False
    reranker.save()
    body = assert_error(
        api.post("/api/v1/knowledge-bases", {"name": "C", "rerank_model_id": str(reranker.id)}),
        400,
        "validation_error",
    )
    assert body["error"]["details"][0]["field"] == "rerank_model_id"
    assert_error(
        api.post("/api/v1/knowledge-bases", {"name": "D", "rerank_candidates": 0}),
        400,
        "validation_error",
    )
    assert not KnowledgeBase.objects.exists()

    kb = make_kb(user=workspace.memberships.get().user, workspace=workspace, name="E")
    body = assert_error(
        api.patch(f"/api/v1/knowledge-bases/{kb.id}", {"rerank_model_id": str(chat.id)}),
        400,
        "validation_error",
    )
    kb.refresh_from_db()
    assert kb.rerank_model_id is None


def test_the_agents_tool_reranks_and_reports_it(user, workspace, kb, reranker, scripted_llm):
    (spec,) = knowledge_tool_specs(workspace_id=workspace.id, knowledge_base_ids=[kb.id])
    run_id = uuid.uuid4()
    ctx = ToolContext(workspace_id=workspace.id, user_id=user.id, run_id=run_id)

    result = async_to_sync(spec.execute)({"query": QUERY}, ctx)

    assert result.is_error is False
    assert [c.document_name for c in result.citations] == ["manual.txt", "zeppelin.txt"]
    assert result.citations[0].score == pytest.approx(0.75)
    assert result.content.splitlines()[2] == "[1] manual.txt (passage 1, score 0.750)"
    assert result.data["rerank"] == {
        "applied": True,
        "model_id": str(reranker.id),
        "candidates": 4,
        "error": None,
    }
    assert UsageRecord.objects.filter(run_id=run_id, kind="rerank", outcome="ok").count() == 1

    plain = knowledge_search(
        workspace_id=workspace.id, knowledge_base_ids=[kb.id], query=QUERY, rerank=False
    )
    scripted_llm.push_rerank(*[Reply(status=503)] * 3)
    result = async_to_sync(spec.execute)({"query": QUERY}, ctx)
    assert result.is_error is False
    assert [c.chunk_id for c in result.citations] == [str(h.chunk_id) for h in plain]
    assert [c.score for c in result.citations] == [round(h.score, 6) for h in plain]
    assert result.data["rerank"]["applied"] is False
    assert result.data["rerank"]["error"] == "provider_server_error"

"""Retrieval on whichever database the suite runs on (SQLite exact + FTS5, or PostgreSQL
pgvector HNSW + tsvector): the same tests, the same expectations."""

import pytest
from django.db import connection

from apps.knowledge import services
from apps.knowledge.exceptions import EmbeddingUnavailable
from apps.knowledge.models import Chunk, Document
from apps.knowledge.search import Filters
from apps.knowledge.selectors import knowledge_search
from apps.providers.scripted import embed_text
from tests.helpers import assert_error
from tests.knowledge.factories import actor_for, add_texts, make_kb

pytestmark = pytest.mark.django_db


def collider(word: str) -> str:
    """A nonsense word the scripted embedder maps to the same vector as `word`: a
    vector-only false friend that full-text search never matches."""
    target = embed_text(word)
    for i in range(200_000):
        candidate = f"zq{i}"
        if embed_text(candidate) == target:
            return candidate
    raise AssertionError(word)


def ingest(*, user, kb, texts, capture, metadata=None):
    with capture(execute=True):
        batch, documents = add_texts(user=user, kb=kb, texts=texts, metadata=metadata)
    statuses = set(Document.objects.filter(batch=batch).values_list("status", flat=True))
    assert statuses == {"indexed"}, statuses
    return {d.name: d for d in documents}


def top_names(hits):
    return [h.document_name for h in hits]


# A small labelled set. Queries of the first kind are fooled by vector search (a doc of
# nonsense words that embed exactly like the query), those of the second by full-text
# search (a doc repeating an inflected form of one query word, which stemming matches).
VECTOR_TRAPS = [("glacier", "turbine"), ("compass", "lantern"), ("canyon", "volcano")]
FULLTEXT_TRAPS = ["orchard", "falcon", "harbor"]


@pytest.fixture
def labelled(user, workspace, embedder, django_capture_on_commit_callbacks):
    kb = make_kb(user=user, workspace=workspace, top_k=5, score_threshold=0.0)
    texts = {}
    queries = []
    for a, b in VECTOR_TRAPS:
        texts[f"{a}.txt"] = f"{a} {b} field guide"
        texts[f"{a}-trap.txt"] = f"{collider(a)} {collider(b)}"
        queries.append((f"{a} {b}", f"{a}.txt"))
    for word in FULLTEXT_TRAPS:
        texts[f"{word}.txt"] = f"{word} guide notes"
        texts[f"{word}-trap.txt"] = " ".join([f"{word}s"] * 4)
        queries.append((f"{word} guide", f"{word}.txt"))
    ingest(user=user, kb=kb, texts=texts, capture=django_capture_on_commit_callbacks)
    return kb, queries


def _hits_at_1(workspace, kb, queries, mode):
    found = 0
    for query, expected in queries:
        hits = knowledge_search(
            workspace_id=workspace.id,
            knowledge_base_ids=[kb.id],
            query=query,
            top_k=5,
            mode=mode,
            threshold=0.0,
            filters=None,
        )
        found += bool(hits) and hits[0].document_name == expected
    return found


def test_hybrid_ranks_better_than_either_leg_on_a_labelled_set(workspace, labelled):
    kb, queries = labelled
    scores = {
        mode: _hits_at_1(workspace, kb, queries, mode) for mode in ("vector", "fulltext", "hybrid")
    }
    assert scores == {"vector": 3, "fulltext": 3, "hybrid": 6}, (connection.vendor, scores)


def test_vector_mode_ranks_by_cosine_similarity(workspace, labelled):
    kb, _ = labelled
    hits = knowledge_search(
        workspace_id=workspace.id,
        knowledge_base_ids=[kb.id],
        query="glacier turbine",
        top_k=2,
        mode="vector",
        threshold=0.0,
        filters=None,
    )
    assert top_names(hits) == ["glacier-trap.txt", "glacier.txt"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    expected = sum(
        x * y
        for x, y in zip(
            embed_text("glacier turbine"), embed_text("glacier turbine field guide"), strict=True
        )
    )
    assert hits[1].score == pytest.approx(expected, abs=1e-5)


def test_fulltext_mode_matches_stems_and_ignores_vector_friends(workspace, labelled):
    kb, _ = labelled
    hits = knowledge_search(
        workspace_id=workspace.id,
        knowledge_base_ids=[kb.id],
        query="orchards",
        top_k=5,
        mode="fulltext",
        threshold=0.0,
        filters=None,
    )
    assert top_names(hits) == ["orchard-trap.txt", "orchard.txt"]
    assert 0 < hits[1].score < hits[0].score < 1


def test_threshold_drops_weak_hits(workspace, labelled):
    kb, _ = labelled
    hits = knowledge_search(
        workspace_id=workspace.id,
        knowledge_base_ids=[kb.id],
        query="glacier turbine",
        top_k=5,
        mode="vector",
        threshold=0.9,
        filters=None,
    )
    assert top_names(hits) == ["glacier-trap.txt"]


def test_filters_by_document_and_metadata(
    user, workspace, embedder, django_capture_on_commit_callbacks
):
    kb = make_kb(user=user, workspace=workspace)
    docs = ingest(
        user=user,
        kb=kb,
        texts={"a.txt": "quartz crystal"},
        capture=django_capture_on_commit_callbacks,
        metadata={"team": "geo", "year": 2024},
    )
    docs |= ingest(
        user=user,
        kb=kb,
        texts={"b.txt": "quartz watch"},
        capture=django_capture_on_commit_callbacks,
        metadata={"team": "shop", "year": 2025},
    )
    for mode in ("vector", "fulltext", "hybrid"):

        def run(filters, mode=mode):
            return sorted(
                top_names(
                    knowledge_search(
                        workspace_id=workspace.id,
                        knowledge_base_ids=[kb.id],
                        query="quartz",
                        top_k=5,
                        mode=mode,
                        threshold=0.0,
                        filters=filters,
                    )
                )
            )

        assert run(None) == ["a.txt", "b.txt"], mode
        assert run(Filters(document_ids=(docs["b.txt"].id,))) == ["b.txt"], mode
        assert run(Filters(metadata={"team": "geo"})) == ["a.txt"], mode
        assert run(Filters(metadata={"year": 2025})) == ["b.txt"], mode
        assert run(Filters(metadata={"team": "none"})) == [], mode


def test_disabled_chunks_and_other_knowledge_bases_are_not_searched(
    user, workspace, embedder, django_capture_on_commit_callbacks
):
    kb = make_kb(user=user, workspace=workspace, name="One")
    other = make_kb(user=user, workspace=workspace, name="Two")
    ingest(
        user=user,
        kb=kb,
        texts={"a.txt": "saffron risotto"},
        capture=django_capture_on_commit_callbacks,
    )
    ingest(
        user=user,
        kb=other,
        texts={"b.txt": "saffron buns"},
        capture=django_capture_on_commit_callbacks,
    )
    hits = knowledge_search(
        workspace_id=workspace.id,
        knowledge_base_ids=[kb.id],
        query="saffron",
        top_k=5,
        mode="hybrid",
        threshold=0.0,
        filters=None,
    )
    assert top_names(hits) == ["a.txt"]
    both = knowledge_search(
        workspace_id=workspace.id,
        knowledge_base_ids=[kb.id, other.id],
        query="saffron",
        top_k=5,
        mode="hybrid",
        threshold=0.0,
        filters=None,
    )
    assert sorted(top_names(both)) == ["a.txt", "b.txt"]
    services.chunk_update(
        actor=actor_for(user=user, workspace=workspace),
        chunk=Chunk.objects.get(document__name="a.txt"),
        enabled=False,
    )
    for mode in ("vector", "fulltext", "hybrid"):
        hits = knowledge_search(
            workspace_id=workspace.id,
            knowledge_base_ids=[kb.id, other.id],
            query="saffron",
            top_k=5,
            mode=mode,
            threshold=0.0,
            filters=None,
        )
        assert top_names(hits) == ["b.txt"], mode


def test_another_workspaces_knowledge_base_is_never_searched(
    user, workspace, embedder, django_capture_on_commit_callbacks
):
    from tests.users.factories import UserFactory

    kb = make_kb(user=user, workspace=workspace)
    ingest(
        user=user,
        kb=kb,
        texts={"a.txt": "secret formula"},
        capture=django_capture_on_commit_callbacks,
    )
    stranger = UserFactory()
    theirs = stranger.memberships.get().workspace
    assert (
        knowledge_search(
            workspace_id=theirs.id,
            knowledge_base_ids=[kb.id],
            query="secret formula",
            top_k=5,
            mode="fulltext",
            threshold=0.0,
            filters=None,
        )
        == []
    )


def test_without_an_embedding_model_fulltext_still_works(
    user, workspace, django_capture_on_commit_callbacks
):
    kb = make_kb(user=user, workspace=workspace)
    ingest(
        user=user,
        kb=kb,
        texts={"a.txt": "tidal energy", "b.txt": "wind energy farm"},
        capture=django_capture_on_commit_callbacks,
    )
    assert set(Chunk.objects.values_list("embedding_dims", flat=True)) == {None}
    for mode in ("fulltext", "hybrid"):
        hits = knowledge_search(
            workspace_id=workspace.id,
            knowledge_base_ids=[kb.id],
            query="wind farm",
            top_k=5,
            mode=mode,
            threshold=0.0,
            filters=None,
        )
        assert top_names(hits)[0] == "b.txt", mode
    with pytest.raises(EmbeddingUnavailable):
        knowledge_search(
            workspace_id=workspace.id,
            knowledge_base_ids=[kb.id],
            query="wind",
            top_k=5,
            mode="vector",
            threshold=0.0,
            filters=None,
        )


def test_search_endpoint_returns_ranked_chunks(api, user, workspace, labelled):
    kb, _ = labelled
    response = api.post(
        f"/api/v1/knowledge-bases/{kb.id}/search",
        {"query": "orchard guide", "top_k": 2, "mode": "hybrid"},
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert (data["query"], data["mode"]) == ("orchard guide", "hybrid")
    first = data["hits"][0]
    orchard = Chunk.objects.get(document__name="orchard.txt")
    assert first == {
        "chunk_id": str(orchard.id),
        "document_id": str(orchard.document_id),
        "document_name": "orchard.txt",
        "knowledge_base_id": str(kb.id),
        "position": 0,
        "content": "orchard guide notes",
        "score": first["score"],
        "metadata": {},
    }
    assert 0 < first["score"] <= 1
    assert len(data["hits"]) == 2
    assert data["hits"][1]["score"] <= first["score"]


def test_search_endpoint_vector_mode_without_a_model_is_400(api, user, workspace):
    kb = make_kb(user=user, workspace=workspace)
    response = api.post(f"/api/v1/knowledge-bases/{kb.id}/search", {"query": "x", "mode": "vector"})
    assert_error(response, 400, "embedding_unavailable")

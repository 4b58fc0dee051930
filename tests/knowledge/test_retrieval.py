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
    # Nor when the caller hands the knowledge base over already loaded.
    assert (
        knowledge_search(
            workspace_id=theirs.id,
            knowledge_base_ids=[kb.id],
            knowledge_bases=[kb],
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
        "rerank_score": None,
    }
    assert data["rerank"] is None
    assert 0 < first["score"] <= 1
    assert len(data["hits"]) == 2
    assert data["hits"][1]["score"] <= first["score"]


def test_search_endpoint_vector_mode_without_a_model_is_400(api, user, workspace):
    kb = make_kb(user=user, workspace=workspace)
    response = api.post(f"/api/v1/knowledge-bases/{kb.id}/search", {"query": "x", "mode": "vector"})
    assert_error(response, 400, "embedding_unavailable")


def _vector_names(workspace, kb, query, top_k=5):
    return top_names(
        knowledge_search(
            workspace_id=workspace.id,
            knowledge_base_ids=[kb.id],
            query=query,
            top_k=top_k,
            mode="vector",
            threshold=0.0,
            filters=None,
        )
    )


def test_vector_search_sees_every_write_at_once(
    user, workspace, embedder, django_capture_on_commit_callbacks
):
    """On SQLite the vectors are kept in memory between searches: every kind of write,
    through the services or not, must show in the next search."""
    kb = make_kb(user=user, workspace=workspace)
    actor = actor_for(user=user, workspace=workspace)
    docs = ingest(
        user=user,
        kb=kb,
        texts={"a.txt": "amber falcon", "b.txt": "amber heron"},
        capture=django_capture_on_commit_callbacks,
    )
    assert _vector_names(workspace, kb, "amber falcon", top_k=1) == ["a.txt"]
    # A bulk update that bypasses the services and their signals.
    Chunk.objects.filter(document=docs["a.txt"]).update(enabled=False)
    assert _vector_names(workspace, kb, "amber falcon") == ["b.txt"]
    Chunk.objects.filter(document=docs["a.txt"]).update(enabled=True)
    assert _vector_names(workspace, kb, "amber falcon") == ["a.txt", "b.txt"]
    # New content is embedded again: b becomes the exact match.
    services.chunk_update(
        actor=actor,
        chunk=Chunk.objects.get(document=docs["b.txt"]),
        content="amber falcon",
        metadata={"page": 3},
    )
    hits = knowledge_search(
        workspace_id=workspace.id,
        knowledge_base_ids=[kb.id],
        query="amber falcon",
        top_k=2,
        mode="vector",
        threshold=0.0,
        filters=None,
    )
    assert {h.document_name for h in hits} == {"a.txt", "b.txt"}
    assert [h.score for h in hits] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert {h.document_name: h.metadata for h in hits}["b.txt"] == {"page": 3}
    # A deleted document (its chunks go by cascade) and a new one.
    services.document_delete(actor=actor, document=docs["a.txt"])
    assert _vector_names(workspace, kb, "amber falcon") == ["b.txt"]
    ingest(
        user=user,
        kb=kb,
        texts={"c.txt": "amber falcon"},
        capture=django_capture_on_commit_callbacks,
    )
    assert sorted(_vector_names(workspace, kb, "amber falcon")) == ["b.txt", "c.txt"]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the in-memory vectors are SQLite's")
def test_sqlite_reads_the_vectors_once_until_a_write(
    user, workspace, embedder, django_capture_on_commit_callbacks, settings
):
    from django.test.utils import CaptureQueriesContext

    kb = make_kb(user=user, workspace=workspace)
    docs = ingest(
        user=user,
        kb=kb,
        texts={"a.txt": "cobalt lantern", "b.txt": "cobalt compass"},
        capture=django_capture_on_commit_callbacks,
    )

    def blob_reads(query):
        with CaptureQueriesContext(connection) as queries:
            names = _vector_names(workspace, kb, query)
        return names, sum("c.embedding" in q["sql"] for q in queries.captured_queries)

    assert blob_reads("cobalt lantern") == (["a.txt", "b.txt"], 1)
    assert blob_reads("cobalt compass") == (["b.txt", "a.txt"], 0)
    Chunk.objects.filter(document=docs["b.txt"]).delete()
    assert blob_reads("cobalt compass") == (["a.txt"], 1)
    # A migration that rebuilds the chunk table drops its triggers: the next search
    # puts them back and reads the vectors again, so a write made meanwhile shows.
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER knowledge_chunk_version_ad")
    Chunk.objects.filter(document=docs["a.txt"]).delete()
    assert blob_reads("cobalt compass") == ([], 1)
    # A knowledge base larger than the memory budget is scanned from the database.
    ingest(
        user=user,
        kb=kb,
        texts={"c.txt": "cobalt lantern glow"},
        capture=django_capture_on_commit_callbacks,
    )
    settings.KNOWLEDGE_VECTOR_CACHE_BYTES = 1
    assert blob_reads("cobalt lantern") == (["c.txt"], 1)
    assert blob_reads("cobalt lantern") == (["c.txt"], 1)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pgvector's ef_search")
def test_postgres_vector_query_runs_with_either_parameter_binding(workspace, labelled, monkeypatch):
    """`SET LOCAL hnsw.ef_search` goes in the query's own message with client-side
    binding (Django's default) and in an explicit transaction with server-side binding."""
    kb, _ = labelled
    expected = _vector_names(workspace, kb, "glacier turbine", top_k=3)
    assert expected[:2] == ["glacier-trap.txt", "glacier.txt"]
    options = {**connection.settings_dict.get("OPTIONS", {}), "server_side_binding": True}
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    assert _vector_names(workspace, kb, "glacier turbine", top_k=3) == expected

"""Knowledge bases, documents, batches and chunks through the REST API, and what another
workspace's member gets on every endpoint that takes an id."""

import pytest

from apps.knowledge.models import Chunk, Document, KnowledgeBase
from apps.providers.scripted import embed_text
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.knowledge.factories import add_texts, make_kb

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed(user, workspace, embedder, django_capture_on_commit_callbacks):
    kb = make_kb(user=user, workspace=workspace, chunk_size=32, chunk_overlap=0)
    with django_capture_on_commit_callbacks(execute=True):
        batch, (document,) = add_texts(
            user=user,
            kb=kb,
            texts={"notes.md": "# Notes\n\nFirst passage.\n\n## More\n\nSecond passage."},
        )
    document.refresh_from_db()
    assert document.status == "indexed" and document.chunk_count == 2
    return kb, batch, document


def test_create_list_get_update_knowledge_base(api, workspace, embedder):
    response = api.post(
        "/api/v1/knowledge-bases",
        {
            "name": "Support",
            "description": "Tickets",
            "language": "french",
            "chunk_size": 300,
            "chunk_overlap": 30,
            "splitter": "paragraphs",
            "top_k": 8,
            "score_threshold": 0.2,
            "search_mode": "fulltext",
            "embedding_model_id": str(embedder.id),
        },
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    kb = KnowledgeBase.objects.get()
    assert data == {
        "id": str(kb.id),
        "name": "Support",
        "description": "Tickets",
        "language": "french",
        "embedding_model_id": str(embedder.id),
        "chunk_size": 300,
        "chunk_overlap": 30,
        "splitter": "paragraphs",
        "top_k": 8,
        "score_threshold": 0.2,
        "search_mode": "fulltext",
        "rerank_model_id": None,
        "rerank_candidates": None,
        "document_count": 0,
        "created_at": data["created_at"],
        "updated_at": data["updated_at"],
    }
    assert [k["id"] for k in api.get("/api/v1/knowledge-bases").json()["data"]] == [str(kb.id)]
    assert api.get(f"/api/v1/knowledge-bases/{kb.id}").json()["data"]["name"] == "Support"
    patched = api.patch(
        f"/api/v1/knowledge-bases/{kb.id}", {"top_k": 3, "embedding_model_id": None}
    )
    assert patched.status_code == 200
    kb.refresh_from_db()
    assert (kb.top_k, kb.embedding_model_id, kb.chunk_size) == (3, None, 300)


def test_knowledge_base_validation(api, workspace):
    make_kb(user=workspace.memberships.get().user, workspace=workspace, name="Taken")
    assert_error(
        api.post("/api/v1/knowledge-bases", {"name": "Taken"}), 409, "knowledge_base_name_taken"
    )
    body = assert_error(
        api.post("/api/v1/knowledge-bases", {"name": "X", "chunk_size": 100, "chunk_overlap": 60}),
        400,
        "validation_error",
    )
    assert body["error"]["details"][0]["field"] == "chunk_overlap"
    assert_error(
        api.post(
            "/api/v1/knowledge-bases",
            {"name": "Y", "embedding_model_id": "00000000-0000-0000-0000-000000000001"},
        ),
        404,
        "provider_model_not_found",
    )
    assert KnowledgeBase.objects.count() == 1


def test_another_workspaces_embedding_model_cannot_be_used(api, scripted_llm):
    from tests.providers.factories import make_scripted_provider
    from tests.users.factories import UserFactory

    stranger = UserFactory()
    _, _, theirs = make_scripted_provider(
        workspace=stranger.memberships.get().workspace, scripted_llm=scripted_llm
    )
    response = api.post(
        "/api/v1/knowledge-bases", {"name": "X", "embedding_model_id": str(theirs.id)}
    )
    assert_error(response, 404, "provider_model_not_found")
    assert KnowledgeBase.objects.count() == 0


def test_chunks_list_view_edit_disable_delete_and_add(api, indexed, scripted_llm):
    kb, _, document = indexed
    base = f"/api/v1/knowledge-bases/{kb.id}"
    page = api.get(f"{base}/documents/{document.id}/chunks?limit=1").json()
    assert [c["position"] for c in page["data"]] == [0] and page["meta"]["has_more"] is True
    rest = api.get(
        f"{base}/documents/{document.id}/chunks?limit=1&cursor={page['meta']['next_cursor']}"
    ).json()
    assert [c["position"] for c in rest["data"]] == [1] and rest["meta"]["has_more"] is False

    chunk_id = page["data"][0]["id"]
    got = api.get(f"{base}/chunks/{chunk_id}").json()["data"]
    assert got["content"] == "# Notes\n\nFirst passage." and got["has_embedding"] is True

    edited = api.patch(f"{base}/chunks/{chunk_id}", {"content": "Edited passage about otters"})
    assert edited.status_code == 200
    chunk = Chunk.objects.get(id=chunk_id)
    assert (chunk.content, chunk.manual) == ("Edited passage about otters", True)
    assert chunk.embedding == pytest.approx(embed_text("Edited passage about otters"), abs=1e-6)
    hits = api.post(f"{base}/search", {"query": "otters", "mode": "fulltext"}).json()["data"][
        "hits"
    ]
    assert [h["chunk_id"] for h in hits] == [chunk_id]

    assert (
        api.patch(f"{base}/chunks/{chunk_id}", {"enabled": False}).json()["data"]["enabled"]
        is False
    )
    assert (
        api.post(f"{base}/search", {"query": "otters", "mode": "fulltext"}).json()["data"]["hits"]
        == []
    )

    added = api.post(
        f"{base}/documents/{document.id}/chunks", {"content": "A hand-written passage on beavers"}
    )
    assert added.status_code == 201
    assert (added.json()["data"]["position"], added.json()["data"]["manual"]) == (2, True)
    document.refresh_from_db()
    assert document.chunk_count == 3
    hits = api.post(f"{base}/search", {"query": "beavers", "mode": "hybrid"}).json()["data"]["hits"]
    assert hits[0]["content"] == "A hand-written passage on beavers"

    assert api.delete(f"{base}/chunks/{chunk_id}").status_code == 204
    document.refresh_from_db()
    assert document.chunk_count == 2 and not Chunk.objects.filter(id=chunk_id).exists()


def test_redo_document_and_redo_failed_batch(
    api, user, workspace, embedder, django_capture_on_commit_callbacks
):
    kb = make_kb(user=user, workspace=workspace)
    base = f"/api/v1/knowledge-bases/{kb.id}"
    with django_capture_on_commit_callbacks(execute=True):
        batch, _documents = add_texts(
            user=user, kb=kb, texts={"good.txt": "fine words", "bad.pdf": "%PDF-1.4 broken"}
        )
    assert dict(Document.objects.values_list("name", "status")) == {
        "good.txt": "indexed",
        "bad.pdf": "failed",
    }
    progress = api.get(f"{base}/batches/{batch.id}").json()["data"]
    assert (progress["success"], progress["fail"], progress["ratio"]) == (1, 1, 1.0)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{base}/batches/{batch.id}/redo")
    assert response.status_code == 202 and response.json()["data"] == {"count": 1}
    bad = Document.objects.get(name="bad.pdf")
    assert (bad.status, bad.generation) == ("failed", 2)  # still broken, tried again
    assert Document.objects.get(name="good.txt").generation == 1

    good = Document.objects.get(name="good.txt")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{base}/documents/{good.id}/redo")
    assert response.status_code == 202
    good.refresh_from_db()
    assert (good.status, good.generation, good.chunk_count) == ("indexed", 2, 1)
    assert Chunk.objects.filter(document=good).count() == 1


def test_clear_knowledge_base(api, indexed):
    kb, _, _ = indexed
    response = api.post(f"/api/v1/knowledge-bases/{kb.id}/clear")
    assert response.json()["data"] == {"count": 1}
    assert (Document.objects.count(), Chunk.objects.count(), KnowledgeBase.objects.count()) == (
        0,
        0,
        1,
    )


def test_document_update_and_delete(api, indexed):
    kb, _, document = indexed
    url = f"/api/v1/knowledge-bases/{kb.id}/documents/{document.id}"
    data = api.patch(url, {"name": "renamed.md", "metadata": {"lang": "en"}}).json()["data"]
    assert (data["name"], data["metadata"]) == ("renamed.md", {"lang": "en"})
    assert api.delete(url).status_code == 204
    assert (Document.objects.count(), Chunk.objects.count()) == (0, 0)


def test_a_document_of_another_knowledge_base_is_404_under_the_wrong_parent(
    api, indexed, user, workspace
):
    _kb, _, document = indexed
    other = make_kb(user=user, workspace=workspace, name="Other")
    response = api.get(f"/api/v1/knowledge-bases/{other.id}/documents/{document.id}")
    assert_error(response, 404, "document_not_found")


def test_outsiders_get_404_on_every_endpoint(outsider, indexed):
    kb, batch, document = indexed
    chunk = Chunk.objects.filter(document=document).first()
    base = f"/api/v1/knowledge-bases/{kb.id}"

    def everything():
        return (
            list(KnowledgeBase.objects.values_list("id", "name", "top_k", "updated_at")),
            list(Document.objects.values_list("id", "name", "status", "generation", "metadata")),
            list(Chunk.objects.values_list("id", "content", "enabled")),
        )

    for method, url, data in [
        ("get", base, None),
        ("patch", base, {"name": "Stolen"}),
        ("delete", base, None),
        ("post", f"{base}/reindex", {}),
        ("post", f"{base}/clear", {}),
        ("post", f"{base}/search", {"query": "passage"}),
        ("get", f"{base}/documents", None),
        ("post", f"{base}/documents/text", {"name": "x.txt", "text": "x"}),
        ("post", f"{base}/documents/url", {"url": "https://example.com/"}),
        ("get", f"{base}/documents/{document.id}", None),
        ("patch", f"{base}/documents/{document.id}", {"name": "x"}),
        ("delete", f"{base}/documents/{document.id}", None),
        ("post", f"{base}/documents/{document.id}/redo", {}),
        ("get", f"{base}/documents/{document.id}/chunks", None),
        ("post", f"{base}/documents/{document.id}/chunks", {"content": "x"}),
        ("get", f"{base}/batches/{batch.id}", None),
        ("post", f"{base}/batches/{batch.id}/redo", {}),
        ("get", f"{base}/chunks/{chunk.id}", None),
        ("patch", f"{base}/chunks/{chunk.id}", {"enabled": False}),
        ("delete", f"{base}/chunks/{chunk.id}", None),
    ]:
        assert_outsiders_get_404(
            method=method, url=url, outsider=outsider, data=data, snapshot=everything
        )


def test_outsider_upload_is_404(outsider, indexed):
    from django.core.files.uploadedfile import SimpleUploadedFile

    kb, _, _ = indexed
    response = outsider.post(
        f"/api/v1/knowledge-bases/{kb.id}/documents",
        {"files": [SimpleUploadedFile("a.txt", b"words")]},
        format="multipart",
    )
    assert_error(response, 404, "knowledge_base_not_found")
    assert Document.objects.count() == 1

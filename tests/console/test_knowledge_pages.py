"""Knowledge pages beyond upload: URL import through the outbound guard, redo of a
failed document, a document's passages (paginated) and their edit (embedded again), and
the search test with modes, scores and rerank. Models answer from the scripted server
over real HTTP."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.knowledge.models import Chunk, Document
from apps.knowledge.selectors import _QUERY_VECTORS
from apps.knowledge.services import chunk_create
from apps.users.choices import Role
from tests.knowledge.factories import actor_for, add_texts, make_kb
from tests.providers.factories import add_rerank_model, make_scripted_provider
from tests.users.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.KNOWLEDGE_RATE_LIMIT_BACKOFF_SECONDS = 0


@pytest.fixture(autouse=True)
def _no_cached_query_vectors():
    _QUERY_VECTORS.clear()
    yield
    _QUERY_VECTORS.clear()


@pytest.fixture
def provider(workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    return provider


@pytest.fixture
def kb(user, workspace, provider, django_capture_on_commit_callbacks):
    kb = make_kb(user=user, workspace=workspace, name="Workshop", search_mode="hybrid")
    with django_capture_on_commit_callbacks(execute=True):
        add_texts(
            user=user,
            kb=kb,
            texts={
                "oil.txt": "Change the engine oil filter every spring.",
                "garden.txt": "Store the garden hose in winter.",
            },
        )
    assert set(kb.documents.values_list("status", flat=True)) == {"indexed"}
    return kb


def chunk_of(kb, name):
    return Chunk.objects.get(document__knowledge_base=kb, document__name=name)


def test_url_import_adds_a_document_fetched_through_the_guard(
    owner_client, kb, scripted_llm, django_capture_on_commit_callbacks
):
    url = f"{scripted_llm.base_url}/models"
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("console:knowledge_import_url", args=[kb.id]), {"url": url, "name": "models"}
        )
    assert response.status_code == 200
    document = Document.objects.get(knowledge_base=kb, source="url")
    assert (document.name, document.source_url, document.status) == ("models.json", url, "indexed")
    assert b'data-document="models.json"' in response.content


def test_url_import_to_a_private_address_says_why_and_adds_nothing(owner_client, kb, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    response = owner_client.post(
        reverse("console:knowledge_import_url", args=[kb.id]),
        {"url": "http://169.254.169.254/latest/meta-data"},
    )
    assert response.status_code == 400
    assert b"alert-error" in response.content
    assert b"169.254.169.254" in response.content
    assert Document.objects.filter(knowledge_base=kb).count() == 2


def test_url_import_with_a_bad_url_names_the_field(owner_client, kb):
    response = owner_client.post(
        reverse("console:knowledge_import_url", args=[kb.id]), {"url": "not a url"}
    )
    assert response.status_code == 400
    assert b"url: Enter a valid URL." in response.content
    assert Document.objects.filter(knowledge_base=kb).count() == 2


def test_redo_reingests_a_failed_document(owner_client, kb, django_capture_on_commit_callbacks):
    document = Document.objects.get(knowledge_base=kb, name="oil.txt")
    Document.objects.filter(pk=document.pk).update(
        status="failed", error_code="provider_error", error_message="Provider down."
    )
    page = owner_client.get(reverse("console:knowledge_base", args=[kb.id]))
    assert b"Provider down." in page.content
    assert b'data-redo="oil.txt"' in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("console:knowledge_document_redo", args=[kb.id, document.id])
        )
    assert response.status_code == 200
    document.refresh_from_db()
    assert (document.status, document.error_message, document.generation) == ("indexed", "", 2)


def test_viewer_can_read_but_not_redo_or_edit(user, workspace, kb):
    viewer = UserFactory(email="vic@example.com")
    add_member(workspace=workspace, user=viewer, role=Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    client.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    page = client.get(reverse("console:knowledge_base", args=[kb.id]))
    assert page.status_code == 200
    assert b"data-redo" not in page.content and b'id="url-import"' not in page.content
    document = Document.objects.get(knowledge_base=kb, name="oil.txt")
    assert (
        client.post(reverse("console:knowledge_document_redo", args=[kb.id, document.id]))
    ).status_code == 403
    chunk = chunk_of(kb, "oil.txt")
    response = client.post(
        reverse("console:knowledge_chunk", args=[kb.id, chunk.id]), {"content": "Changed"}
    )
    assert response.status_code == 403
    document.refresh_from_db()
    chunk.refresh_from_db()
    assert (document.generation, chunk.content) == (1, "Change the engine oil filter every spring.")


def test_document_page_lists_passages_in_pages(owner_client, user, kb):
    document = Document.objects.get(knowledge_base=kb, name="garden.txt")
    actor = actor_for(user=user, workspace=kb.workspace)
    for i in range(24):
        chunk_create(actor=actor, document=document, content=f"Extra passage {i}")
    url = reverse("console:knowledge_document", args=[kb.id, document.id])
    first = owner_client.get(url).content.decode()
    assert first.count('class="card chunk"') == 20
    assert "Store the garden hose in winter." in first
    assert "Page 1 of 2" in first
    second = owner_client.get(url + "?page=2").content.decode()
    assert second.count('class="card chunk"') == 5
    assert "Extra passage 23" in second


def test_document_page_query_count_is_bounded(
    owner_client, user, kb, django_assert_max_num_queries
):
    document = Document.objects.get(knowledge_base=kb, name="garden.txt")
    actor = actor_for(user=user, workspace=kb.workspace)
    for i in range(10):
        chunk_create(actor=actor, document=document, content=f"Extra passage {i}")
    with django_assert_max_num_queries(10):
        response = owner_client.get(
            reverse("console:knowledge_document", args=[kb.id, document.id])
        )
    assert response.status_code == 200


def test_empty_document_page_says_why(owner_client, user, workspace, provider):
    kb = make_kb(user=user, workspace=workspace, name="Fresh")
    add_texts(user=user, kb=kb, texts={"later.txt": "Not yet ingested."})
    document = Document.objects.get(knowledge_base=kb)
    page = owner_client.get(reverse("console:knowledge_document", args=[kb.id, document.id]))
    assert b"still being processed" in page.content


def test_chunk_edit_saves_and_embeds_the_new_text(owner_client, kb, scripted_llm):
    chunk = chunk_of(kb, "oil.txt")
    url = reverse("console:knowledge_chunk", args=[kb.id, chunk.id])
    editor = owner_client.get(url)
    assert b"<textarea" in editor.content and b"Change the engine oil filter" in editor.content
    old_embedding = list(chunk.embedding)
    before = len(scripted_llm.request_log)
    response = owner_client.post(url, {"content": "Replace the zeppelin gasket.", "enabled": "on"})
    assert response.status_code == 200
    assert b"data-saved" in response.content
    chunk.refresh_from_db()
    assert (chunk.content, chunk.manual, chunk.enabled) == (
        "Replace the zeppelin gasket.",
        True,
        True,
    )
    assert list(chunk.embedding) != old_embedding
    assert [e["path"] for e in scripted_llm.request_log[before:]] == ["/v1/embeddings"]
    # Disabling keeps the text.
    owner_client.post(url, {"content": "Replace the zeppelin gasket."})
    chunk.refresh_from_db()
    assert chunk.enabled is False


def test_chunk_edit_errors_name_the_field(owner_client, kb):
    chunk = chunk_of(kb, "oil.txt")
    response = owner_client.post(
        reverse("console:knowledge_chunk", args=[kb.id, chunk.id]), {"content": ""}
    )
    assert response.status_code == 400
    assert b"This field is required." in response.content
    chunk.refresh_from_db()
    assert chunk.content == "Change the engine oil filter every spring."


def test_search_test_in_each_mode_shows_scores(owner_client, kb):
    url = reverse("console:knowledge_search", args=[kb.id])
    for mode, label in (
        ("fulltext", "Full-text"),
        ("vector", "Vector (semantic)"),
        ("hybrid", "Hybrid"),
    ):
        response = owner_client.get(url, {"q": "engine oil filter", "mode": mode, "top_k": 1})
        text = response.content.decode()
        assert response.status_code == 200
        assert f"Mode: <strong>{label}" in text
        assert text.count("data-hit=") == 1
        assert "oil.txt" in text and "score " in text
    bad = owner_client.get(url, {"q": "oil", "mode": "psychic", "top_k": 0})
    assert bad.status_code == 400
    assert b"mode: Select a valid choice." in bad.content
    assert b"top_k: Ensure this value is greater than or equal to 1." in bad.content


def test_search_test_reranks_when_asked(owner_client, kb, provider, scripted_llm):
    add_rerank_model(provider, make_default=True)
    url = reverse("console:knowledge_search", args=[kb.id])
    plain = owner_client.get(url, {"q": "engine oil filter", "rerank": "off"}).content.decode()
    assert "no rerank" in plain and "data-rerank-score" not in plain
    reranked = owner_client.get(url, {"q": "engine oil filter", "rerank": "on"}).content.decode()
    assert 'data-rerank="applied"' in reranked
    assert "data-rerank-score" in reranked
    assert any(e["path"] == "/v1/rerank" for e in scripted_llm.request_log)


def test_other_workspace_gets_404_on_the_new_knowledge_urls(outsider_client, kb):
    document = Document.objects.get(knowledge_base=kb, name="oil.txt")
    chunk = chunk_of(kb, "oil.txt")
    for method, url in [
        ("post", reverse("console:knowledge_import_url", args=[kb.id])),
        ("get", reverse("console:knowledge_document", args=[kb.id, document.id])),
        ("post", reverse("console:knowledge_document_redo", args=[kb.id, document.id])),
        ("get", reverse("console:knowledge_chunk", args=[kb.id, chunk.id])),
        ("post", reverse("console:knowledge_chunk", args=[kb.id, chunk.id])),
    ]:
        response = getattr(outsider_client, method)(
            url, {"url": "https://example.com/", "content": "hacked"}
        )
        assert response.status_code == 404, (method, url)
    chunk.refresh_from_db()
    document.refresh_from_db()
    assert (chunk.content, document.generation) == (
        "Change the engine oil filter every spring.",
        1,
    )
    assert Document.objects.filter(knowledge_base=kb).count() == 2


def test_an_embedding_document_shows_its_progress_and_the_table_polls(owner_client, kb):
    Document.objects.filter(knowledge_base=kb, name="oil.txt").update(
        status="embedding", progress=0.4
    )
    table = owner_client.get(reverse("console:knowledge_documents", args=[kb.id])).content.decode()
    assert '<span class="small muted" data-progress>40%</span>' in table
    assert 'hx-trigger="every 1s"' in table
    assert 'data-redo="oil.txt"' not in table  # no redo while it is being processed

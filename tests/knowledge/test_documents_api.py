import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.knowledge.models import Chunk, Document, KnowledgeBase, UploadBatch
from tests.helpers import assert_error
from tests.knowledge import samples
from tests.knowledge.factories import make_kb

pytestmark = pytest.mark.django_db


def _url(kb, suffix=""):
    return f"/api/v1/knowledge-bases/{kb.id}{suffix}"


def upload(api, kb, files, capture, **extra):
    payload = {
        "files": [
            SimpleUploadedFile(name, data, content_type=ctype) for name, data, ctype in files
        ],
        **extra,
    }
    with capture(execute=True):
        return api.post(_url(kb, "/documents"), payload, format="multipart")


@pytest.fixture
def kb(user, workspace, embedder):
    return make_kb(user=user, workspace=workspace, chunk_size=64, chunk_overlap=8)


FILES = [
    ("guide.txt", samples.TEXT, "text/plain", "text", "lighthouse keeper"),
    ("espresso.md", samples.MARKDOWN, "text/markdown", "markdown", "Steam the milk"),
    ("solar.html", samples.HTML, "text/html", "html", "Photovoltaic cells"),
    (
        "report.pdf",
        samples.make_pdf(["Quarterly revenue grew by nine percent."]),
        "application/pdf",
        "pdf",
        "revenue grew",
    ),
    (
        "manual.docx",
        samples.make_docx(
            title="Bike manual", sections=[("Brakes", "Check the brake pads monthly.")]
        ),
        "application/octet-stream",
        "docx",
        "brake pads",
    ),
    ("cities.csv", samples.CSV, "text/csv", "csv", "city: Porto"),
    ("catalog.json", samples.JSON, "application/json", "json", "Rain jacket"),
]


@pytest.mark.parametrize(
    ("name", "data", "ctype", "kind", "needle"), FILES, ids=[f[3] for f in FILES]
)
def test_each_file_type_is_parsed_chunked_embedded_and_indexed(
    api, kb, scripted_llm, django_capture_on_commit_callbacks, name, data, ctype, kind, needle
):
    response = upload(api, kb, [(name, data, ctype)], django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    body = response.json()["data"]
    assert body["batch"]["total"] == 1
    document = Document.objects.get(id=body["documents"][0]["id"])
    assert (document.status, document.error_message, document.kind) == ("indexed", "", kind)
    assert document.size == len(data)
    chunks = list(Chunk.objects.filter(document=document).order_by("position"))
    assert len(chunks) == document.chunk_count >= 1
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert needle in " ".join(c.content for c in chunks)
    assert all(c.embedding_dims == 64 for c in chunks)
    # The embeddings came over HTTP from the scripted server, one request per batch.
    assert [r["input"] for r in scripted_llm.requests if "input" in r] == [
        [c.content for c in chunks]
    ]
    assert document.token_count == sum(c.token_count for c in chunks)

    detail = api.get(_url(kb, f"/documents/{document.id}")).json()["data"]
    assert detail["status"] == "indexed" and detail["progress"] == 1.0


def test_html_scripts_and_styles_are_not_indexed(api, kb, django_capture_on_commit_callbacks):
    upload(api, kb, [("solar.html", samples.HTML, "text/html")], django_capture_on_commit_callbacks)
    text = " ".join(Chunk.objects.values_list("content", flat=True))
    assert "never indexed" not in text and "color: red" not in text
    assert "# Solar panels" in text and "## Maintenance" in text


def test_several_files_in_one_upload_share_a_batch(api, kb, django_capture_on_commit_callbacks):
    response = upload(
        api,
        kb,
        [("a.txt", b"alpha text", "text/plain"), ("b.md", b"# Beta\n\nbeta text", "text/markdown")],
        django_capture_on_commit_callbacks,
    )
    data = response.json()["data"]
    assert len(data["documents"]) == 2
    batch = api.get(_url(kb, f"/batches/{data['batch']['id']}")).json()["data"]
    assert {
        k: batch[k] for k in ("total", "success", "fail", "in_progress", "waiting", "ratio")
    } == {
        "total": 2,
        "success": 2,
        "fail": 0,
        "in_progress": 0,
        "waiting": 0,
        "ratio": 1.0,
    }


def _nothing_created():
    return (Document.objects.count(), UploadBatch.objects.count(), Chunk.objects.count())


def test_corrupt_pdf_ends_failed_with_a_readable_reason(
    api, kb, django_capture_on_commit_callbacks
):
    broken = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ngarbage\n%%EOF"
    response = upload(
        api, kb, [("broken.pdf", broken, "application/pdf")], django_capture_on_commit_callbacks
    )
    assert response.status_code == 202
    document = Document.objects.get()
    assert document.status == "failed"
    assert document.error_message.startswith("The PDF could not be read")
    assert Chunk.objects.count() == 0
    batch = api.get(_url(kb, f"/batches/{document.batch_id}")).json()["data"]
    assert (batch["fail"], batch["success"], batch["ratio"]) == (1, 0, 1.0)


def test_empty_file_is_refused_and_nothing_is_created(api, kb, django_capture_on_commit_callbacks):
    response = upload(
        api, kb, [("empty.txt", b"", "text/plain")], django_capture_on_commit_callbacks
    )
    body = assert_error(response, 400, "empty_document")
    assert body["error"]["details"][0]["field"] == "files[0]"
    assert _nothing_created() == (0, 0, 0)


def test_executable_renamed_pdf_is_refused_by_content(api, kb, django_capture_on_commit_callbacks):
    for name, data in (("invoice.pdf", samples.EXECUTABLE), ("notes.txt", samples.ELF)):
        response = upload(
            api,
            kb,
            [("ok.txt", b"fine", "text/plain"), (name, data, "application/pdf")],
            django_capture_on_commit_callbacks,
        )
        body = assert_error(response, 400, "unsupported_file_type")
        assert body["error"]["details"][0]["field"] == "files[1]"
        assert "executable" in body["error"]["message"]
    assert _nothing_created() == (0, 0, 0)


def test_text_renamed_pdf_is_a_type_mismatch(api, kb, django_capture_on_commit_callbacks):
    response = upload(
        api,
        kb,
        [("fake.pdf", b"just words", "application/pdf")],
        django_capture_on_commit_callbacks,
    )
    body = assert_error(response, 400, "unsupported_file_type")
    assert "does not contain what its name says (PDF)" in body["error"]["message"]
    assert _nothing_created() == (0, 0, 0)


def test_file_over_the_size_limit_is_413(api, kb, settings, django_capture_on_commit_callbacks):
    settings.KNOWLEDGE_MAX_FILE_BYTES = 1000
    response = upload(
        api, kb, [("big.txt", b"x" * 1001, "text/plain")], django_capture_on_commit_callbacks
    )
    body = assert_error(response, 413, "file_too_large")
    assert body["error"]["details"][0]["field"] == "files[0]"
    assert _nothing_created() == (0, 0, 0)


def test_upload_over_the_request_limit_is_refused_before_reading(api, kb, settings):
    settings.API_MAX_UPLOAD_BYTES = 2000
    response = api.post(
        _url(kb, "/documents"),
        {"files": [SimpleUploadedFile("big.txt", b"y" * 5000)]},
        format="multipart",
    )
    assert_error(response, 413, "payload_too_large")
    assert _nothing_created() == (0, 0, 0)


def test_too_many_files_in_one_upload(api, kb, settings, django_capture_on_commit_callbacks):
    settings.KNOWLEDGE_MAX_FILES_PER_UPLOAD = 2
    files = [(f"{i}.txt", f"text {i}".encode(), "text/plain") for i in range(3)]
    assert_error(upload(api, kb, files, django_capture_on_commit_callbacks), 400, "too_many_files")
    assert _nothing_created() == (0, 0, 0)


def test_docx_bomb_fails_with_reason(api, kb, settings, django_capture_on_commit_callbacks):
    settings.KNOWLEDGE_MAX_COMPRESSION_RATIO = 50
    bomb = samples.make_zip_bomb_docx(expanded_bytes=2_000_000)
    upload(
        api,
        kb,
        [("bomb.docx", bomb, "application/octet-stream")],
        django_capture_on_commit_callbacks,
    )
    document = Document.objects.get()
    assert document.status == "failed"
    assert "expands" in document.error_message and "the limit is 50" in document.error_message


def test_pdf_over_the_page_limit_fails_with_reason(
    api, kb, settings, django_capture_on_commit_callbacks
):
    settings.KNOWLEDGE_MAX_PDF_PAGES = 2
    pdf = samples.make_pdf(["one", "two", "three"])
    upload(api, kb, [("long.pdf", pdf, "application/pdf")], django_capture_on_commit_callbacks)
    document = Document.objects.get()
    assert (document.status, document.error_message) == (
        "failed",
        "The PDF has 3 pages; the limit is 2.",
    )


def test_same_file_twice_is_a_duplicate_and_override_replaces_it(
    api, kb, scripted_llm, django_capture_on_commit_callbacks
):
    first = upload(
        api, kb, [("a.txt", b"original words", "text/plain")], django_capture_on_commit_callbacks
    )
    document_id = first.json()["data"]["documents"][0]["id"]
    again = upload(
        api, kb, [("copy.txt", b"original words", "text/plain")], django_capture_on_commit_callbacks
    )
    assert_error(again, 409, "duplicate_document")
    assert Document.objects.count() == 1

    replaced = upload(
        api,
        kb,
        [("a.txt", b"replacement words", "text/plain")],
        django_capture_on_commit_callbacks,
        override="true",
    )
    assert replaced.status_code == 202
    assert replaced.json()["data"]["documents"][0]["id"] == document_id
    document = Document.objects.get()
    assert (document.status, document.generation) == ("indexed", 2)
    assert list(Chunk.objects.values_list("content", flat=True)) == ["replacement words"]


def test_raw_text_document(api, kb, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            _url(kb, "/documents/text"),
            {
                "name": "faq.md",
                "text": "# FAQ\n\nOpening hours are nine to five.",
                "metadata": {"team": "ops"},
            },
        )
    assert response.status_code == 202
    document = Document.objects.get()
    assert (document.kind, document.source, document.status, document.metadata) == (
        "markdown",
        "text",
        "indexed",
        {"team": "ops"},
    )


def test_url_import_to_a_private_address_is_refused(api, kb, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    for url in (
        "http://127.0.0.1:9/doc",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/x",
    ):
        response = api.post(_url(kb, "/documents/url"), {"url": url})
        body = assert_error(response, 400, "url_not_allowed")
        assert body["error"]["details"][0]["field"] == "url"
    assert _nothing_created() == (0, 0, 0)


def test_url_import_fetches_through_the_guard(
    api, kb, scripted_llm, django_capture_on_commit_callbacks
):
    # The scripted server is a real HTTP server on loopback (allow-listed by the fixture);
    # its model list is a JSON document like any other.
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(_url(kb, "/documents/url"), {"url": f"{scripted_llm.base_url}/models"})
    assert response.status_code == 202, response.content
    document = Document.objects.get()
    assert (document.source, document.kind, document.status) == ("url", "json", "indexed")
    assert document.source_url == f"{scripted_llm.base_url}/models"
    assert "scripted-embed" in " ".join(Chunk.objects.values_list("content", flat=True))


def test_viewer_cannot_upload(kb, user, client_for, django_capture_on_commit_callbacks):
    from apps.users.choices import Role
    from tests.users.factories import UserFactory, add_member

    viewer = UserFactory()
    add_member(workspace=kb.workspace, user=viewer, role=Role.VIEWER)
    client = client_for(viewer)
    client.credentials(HTTP_X_WORKSPACE_ID=str(kb.workspace_id))
    response = upload(
        client, kb, [("a.txt", b"words", "text/plain")], django_capture_on_commit_callbacks
    )
    assert_error(response, 403, "forbidden")
    assert _nothing_created() == (0, 0, 0)
    assert client.get(_url(kb, "/documents")).status_code == 200


def test_document_list_filters_by_status(api, kb, django_capture_on_commit_callbacks):
    upload(api, kb, [("a.txt", b"alpha", "text/plain")], django_capture_on_commit_callbacks)
    upload(
        api,
        kb,
        [("b.pdf", b"%PDF-1.4 broken", "application/pdf")],
        django_capture_on_commit_callbacks,
    )
    failed = api.get(_url(kb, "/documents?status=failed")).json()["data"]
    assert [d["name"] for d in failed] == ["b.pdf"]
    every = api.get(_url(kb, "/documents")).json()["data"]
    assert [d["name"] for d in every] == ["b.pdf", "a.txt"]


def test_knowledge_base_gone_with_its_documents(api, kb, django_capture_on_commit_callbacks):
    upload(api, kb, [("a.txt", b"alpha", "text/plain")], django_capture_on_commit_callbacks)
    assert api.delete(_url(kb)).status_code == 204
    assert (KnowledgeBase.objects.count(), *_nothing_created()) == (0, 0, 0, 0)

"""Hostile and malformed files: each ends `failed` with a readable reason (or is refused
at upload), is counted by its batch, and never leaves a document in a processing state."""

import time

import pytest

from apps.knowledge.exceptions import ParseError
from apps.knowledge.models import Chunk, Document, UploadBatch
from apps.knowledge.parsing import extract_text
from tests.helpers import assert_error
from tests.knowledge import samples
from tests.knowledge.factories import make_kb
from tests.knowledge.test_documents_api import _url, upload

pytestmark = pytest.mark.django_db

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture
def kb(user, workspace, embedder):
    return make_kb(user=user, workspace=workspace, chunk_size=64, chunk_overlap=8)


def _assert_failed(api, kb, reason_part):
    document = Document.objects.get()
    assert document.status == "failed"
    assert reason_part in document.error_message, document.error_message
    assert Chunk.objects.count() == 0
    batch = api.get(_url(kb, f"/batches/{document.batch_id}")).json()["data"]
    assert (batch["fail"], batch["success"], batch["in_progress"]) == (1, 0, 0)
    return document


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (samples.make_not_well_formed_docx, "word/document.xml: It is not well-formed XML"),
        (samples.make_corrupt_deflate_docx, "word/document.xml cannot be unpacked"),
        (samples.make_truncated_entry_docx, "word/document.xml: It is not well-formed XML"),
        (samples.make_billion_laughs_docx, "declares a DTD or entities"),
    ],
    ids=["not-well-formed", "corrupt-deflate", "truncated-entry", "billion-laughs"],
)
def test_malformed_docx_ends_failed_with_a_readable_reason(
    api,
    kb,
    django_capture_on_commit_callbacks,
    make,
    reason,
):
    response = upload(api, kb, [("evil.docx", make(), DOCX)], django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    document = _assert_failed(api, kb, reason)
    assert document.error_message.startswith(
        ("The DOCX file is corrupt: ", "The DOCX file is not accepted: ")
    )


def test_the_untouched_generator_docx_is_indexed(api, kb, django_capture_on_commit_callbacks):
    """The hostile variants differ from a good file only by what makes them hostile."""
    data = samples.docx_with_document_xml(samples.GOOD_DOCUMENT_XML)
    upload(api, kb, [("good.docx", data, DOCX)], django_capture_on_commit_callbacks)
    document = Document.objects.get()
    assert (document.status, document.error_message) == ("indexed", "")
    assert "Paragraph 39 of the manual." in " ".join(
        Chunk.objects.values_list("content", flat=True)
    )


@pytest.mark.parametrize("depth", [960, 100_000])
def test_deep_json_is_refused_at_upload_naming_the_file(
    api,
    kb,
    django_capture_on_commit_callbacks,
    depth,
):
    response = upload(
        api,
        kb,
        [("deep.json", samples.nested_json(depth), "application/json")],
        django_capture_on_commit_callbacks,
    )
    body = assert_error(response, 400, "unsupported_file_type")
    assert body["error"]["details"] == [
        {
            "field": "files[0]",
            "message": "deep.json is not accepted: It is nested deeper than 100 levels.",
        }
    ]
    assert (Document.objects.count(), UploadBatch.objects.count()) == (0, 0)


@pytest.mark.parametrize("depth", [960, 100_000])
def test_deep_json_that_reaches_a_worker_fails_with_a_reason(depth):
    with pytest.raises(ParseError, match="nested deeper than 100 levels"):
        extract_text(kind="json", data=samples.nested_json(depth))


def test_json_at_the_depth_limit_is_read():
    assert extract_text(kind="json", data=samples.nested_json(100)).strip() == (
        "value" + "[0]" * 100 + ": 1"
    ).replace("value[0]", "[0]", 1)


def test_deep_html_is_stopped_at_the_time_limit_during_parsing(
    api,
    kb,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.KNOWLEDGE_PARSE_TIMEOUT_SECONDS = 2
    data = samples.nested_html(50_000)
    assert len(data) > 500_000
    started = time.monotonic()
    upload(api, kb, [("deep.html", data, "text/html")], django_capture_on_commit_callbacks)
    elapsed = time.monotonic() - started
    _assert_failed(api, kb, "Parsing took longer than 2 seconds.")
    assert elapsed < 15, elapsed


def test_parser_memory_limit_ends_failed_not_stuck(
    api,
    kb,
    settings,
    django_capture_on_commit_callbacks,
):
    """A parser that needs more memory than allowed ends the document failed."""
    settings.KNOWLEDGE_PARSE_MEMORY_BYTES = 16 * 1024 * 1024
    upload(api, kb, [("solar.html", samples.HTML, "text/html")], django_capture_on_commit_callbacks)
    document = _assert_failed(api, kb, "")
    assert document.error_message.startswith(
        ("The parser stopped", "The document needs more memory")
    ), document.error_message

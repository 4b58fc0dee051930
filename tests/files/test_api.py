"""The files API: upload (type sniffed from the bytes, limits), metadata, download,
delete, on the local file system and on a real S3-compatible server."""

import hashlib

import pytest

from apps.files.models import File
from tests.files.conftest import make_png, upload
from tests.knowledge.samples import make_pdf


def _content(response) -> bytes:
    return b"".join(response.streaming_content)


def test_upload_sniffs_type_from_bytes_and_download_returns_them(api, user, storage):
    png = make_png()
    r = upload(api, "notes.txt", png, "text/plain")  # the name lies: the bytes are a PNG

    assert r.status_code == 201, r.content
    data = r.json()["data"]
    assert data["name"] == "notes.txt"
    assert data["content_type"] == "image/png"
    assert data["kind"] == "image"
    assert data["size"] == len(png)
    assert data["sha256"] == hashlib.sha256(png).hexdigest()
    assert data["parse_status"] == "none"
    assert data["origin"] == "upload"
    assert data["content_url"] == f"/api/v1/files/{data['id']}/content"
    assert len(storage.keys()) == 1

    got = api.get(data["content_url"])
    assert got.status_code == 200
    assert _content(got) == png
    assert got["Content-Type"] == "image/png"
    assert got["Content-Disposition"].startswith("attachment;")
    assert got["X-Content-Type-Options"] == "nosniff"

    listed = api.get("/api/v1/files").json()
    assert [f["id"] for f in listed["data"]] == [data["id"]]
    assert api.get(f"/api/v1/files/{data['id']}").json()["data"]["size"] == len(png)


def test_document_upload_is_parsed_by_the_worker(api, storage, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = upload(api, "report.pdf", make_pdf(["Quarterly revenue grew by 42 percent."]))

    assert r.status_code == 201, r.content
    data = r.json()["data"]
    assert data["content_type"] == "application/pdf"
    assert data["kind"] == "document"
    # CELERY_TASK_ALWAYS_EAGER: the parse ran after commit, in a limited child process.
    file = File.objects.get(id=data["id"])
    assert file.status == "ready"
    assert "Quarterly revenue grew by 42 percent." in file.text
    assert file.chunks.count() == 1


def test_corrupt_pdf_ends_failed_with_a_readable_reason(
    api, local_storage, django_capture_on_commit_callbacks
):
    broken = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ngarbage\n%%EOF"
    with django_capture_on_commit_callbacks(execute=True):
        r = upload(api, "broken.pdf", broken)

    assert r.status_code == 201
    file = File.objects.get(id=r.json()["data"]["id"])
    assert file.status == "failed"
    assert file.error_code == "parse_failed"
    assert file.error_message
    data = api.get(f"/api/v1/files/{file.id}").json()["data"]
    assert (data["parse_status"], data["parse_error"]) == ("failed", file.error_message)


def test_delete_removes_row_and_stored_bytes(api, storage, django_capture_on_commit_callbacks):
    first = upload(api, "a.png", make_png()).json()["data"]
    upload(api, "b.png", make_png(3, 3))
    assert len(storage.keys()) == 2

    with django_capture_on_commit_callbacks(execute=True):
        r = api.delete(f"/api/v1/files/{first['id']}")

    assert r.status_code == 204
    assert not File.objects.filter(id=first["id"]).exists()
    assert len(storage.keys()) == 1
    assert api.get(f"/api/v1/files/{first['id']}").status_code == 404


def test_file_over_the_per_file_limit_is_413_and_nothing_is_stored(api, settings, storage):
    settings.FILES_MAX_FILE_BYTES = 1000

    r = upload(api, "big.txt", b"x" * 1001)

    assert r.status_code == 413
    assert r.json()["error"]["code"] == "file_too_large"
    assert r.json()["error"]["details"][0]["field"] == "file"
    assert File.objects.count() == 0
    assert storage.keys() == []


def test_workspace_quota_is_413_and_nothing_is_stored(api, settings, local_storage):
    settings.FILES_MAX_WORKSPACE_BYTES = 1500
    assert upload(api, "one.txt", b"a" * 1000).status_code == 201

    r = upload(api, "two.txt", b"b" * 1000)

    assert r.status_code == 413
    assert r.json()["error"]["code"] == "storage_quota_exceeded"
    assert File.objects.count() == 1
    assert len(local_storage.keys()) == 1


def test_upload_without_a_file_names_the_field(api, local_storage):
    r = api.post("/api/v1/files", {}, format="multipart")

    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "file"
    assert File.objects.count() == 0


def test_empty_file_is_refused(api, local_storage):
    r = upload(api, "empty.txt", b"")

    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "file"


def test_other_workspace_gets_404_on_every_file_endpoint(api, outsider, local_storage):
    file_id = upload(api, "secret.md", b"# Secret\n\nplans").json()["data"]["id"]

    for method, path in [
        ("get", f"/api/v1/files/{file_id}"),
        ("get", f"/api/v1/files/{file_id}/content"),
        ("delete", f"/api/v1/files/{file_id}"),
    ]:
        r = getattr(outsider, method)(path)
        assert r.status_code == 404, (method, path)
        assert r.json()["error"]["code"] == "file_not_found"
    assert outsider.get("/api/v1/files").json()["data"] == []
    assert File.objects.filter(id=file_id).exists()
    assert len(local_storage.keys()) == 1


def test_anonymous_gets_401(db, anon, local_storage):
    assert anon.get("/api/v1/files").status_code == 401
    assert upload(anon, "a.txt", b"hello").status_code == 401
    assert File.objects.count() == 0


def test_signed_download_url_works_without_credentials_and_expires(
    api, anon, settings, local_storage
):
    data = upload(api, "a.txt", b"hello there").json()["data"]

    r = anon.get(data["download_url"])
    assert r.status_code == 200
    assert _content(r) == b"hello there"

    assert anon.get(data["download_url"] + "x").status_code == 404
    settings.FILES_DOWNLOAD_URL_SECONDS = -1
    r = anon.get(data["download_url"])
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "file_not_found"


@pytest.mark.parametrize("origin", ["upload", "agent"])
def test_list_filters_by_origin(api, local_storage, origin):
    upload(api, "a.txt", b"hello")

    r = api.get(f"/api/v1/files?origin={origin}")

    assert r.status_code == 200
    assert len(r.json()["data"]) == (1 if origin == "upload" else 0)


def test_list_refuses_a_bad_filter_by_name(api, local_storage):
    r = api.get("/api/v1/files?conversation_id=nope")

    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "conversation_id"


def test_list_query_count_does_not_grow_with_files(api, local_storage, django_assert_num_queries):
    # Session, user, membership, one page of files: the same for 3 files or 9.
    for index in range(3):
        upload(api, f"{index}.png", make_png(index + 1, 1))
    with django_assert_num_queries(4):
        assert len(api.get("/api/v1/files").json()["data"]) == 3
    for index in range(3, 9):
        upload(api, f"{index}.png", make_png(index + 1, 1))

    with django_assert_num_queries(4):
        assert len(api.get("/api/v1/files").json()["data"]) == 9

"""The ingestion pipeline: rate limits, crashes, redelivery — a document always ends
`indexed` or `failed` with a reason, and never has its chunks twice."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from apps.core.jobs import job_kind_sweep
from apps.knowledge import services
from apps.knowledge.models import Chunk, Document
from apps.knowledge.services import INGESTION
from apps.knowledge.tasks import ingest_document
from apps.providers.scripted import Reply
from tests.knowledge.factories import add_texts, make_kb
from tests.workers import kill_worker_when

LONG_TEXT = "\n\n".join(f"Paragraph {i} talks about topic number {i} in detail." for i in range(40))


def _kb(user, workspace, **extra):
    return make_kb(user=user, workspace=workspace, chunk_size=32, chunk_overlap=0, **extra)


def _waiting_document(kb, text=LONG_TEXT, name="long.txt"):
    """A document as an upload leaves it, before any worker took it."""
    document = Document(
        knowledge_base=kb,
        name=name,
        source="upload",
        kind="text",
        size=len(text),
        checksum=f"{hash(text):x}",
    )
    document.file.save(name, ContentFile(text.encode()), save=False)
    document.save()
    return document


def _assert_indexed_once(document, expected_chunks):
    document.refresh_from_db()
    assert (document.status, document.error_message) == ("indexed", "")
    chunks = list(Chunk.objects.filter(document=document).order_by("position"))
    assert len(chunks) == document.chunk_count == expected_chunks
    assert [c.position for c in chunks] == list(range(expected_chunks))
    assert len({c.content for c in chunks}) == expected_chunks


@pytest.mark.django_db
def test_a_429_storm_backs_off_and_ends_indexed(
    user, workspace, embedder, scripted_llm, django_capture_on_commit_callbacks
):
    kb = _kb(user, workspace)
    # The runtime tries each call 3 times (max_retries=2): 7 refusals make the document
    # wait twice before the provider lets it through.
    scripted_llm.push_embeddings(*[Reply(status=429, retry_after=0)] * 7)
    with django_capture_on_commit_callbacks(execute=True):
        _, (document,) = add_texts(user=user, kb=kb, texts={"long.txt": LONG_TEXT})
    document.refresh_from_db()
    assert document.rate_limit_retries == 2
    assert document.attempts == 1
    _assert_indexed_once(document, expected_chunks=document.chunk_count)
    assert document.chunk_count > 1


@pytest.mark.django_db
def test_a_provider_that_never_stops_refusing_ends_failed_with_a_reason(
    user, workspace, embedder, scripted_llm, settings, django_capture_on_commit_callbacks
):
    settings.KNOWLEDGE_RATE_LIMIT_RETRIES = 2
    kb = _kb(user, workspace)
    scripted_llm.push_embeddings(*[Reply(status=429, retry_after=0)] * 50)
    with django_capture_on_commit_callbacks(execute=True):
        _batch, (document,) = add_texts(user=user, kb=kb, texts={"long.txt": LONG_TEXT})
    document.refresh_from_db()
    assert document.status == "failed"
    assert document.error_message.startswith(
        "The embedding provider kept failing after 2 retries: "
    )
    assert "429" in document.error_message
    assert Chunk.objects.count() == 0
    embedding_calls = [r for r in scripted_llm.requests if "input" in r]
    assert len(embedding_calls) == 9  # 3 runs x 3 tries, then it stops asking


@pytest.mark.django_db
def test_redelivered_or_stale_tasks_never_duplicate_chunks(user, workspace, embedder):
    kb = _kb(user, workspace)
    document = _waiting_document(kb)
    ingest_document(str(document.id), document.generation)
    document.refresh_from_db()
    count = document.chunk_count
    _assert_indexed_once(document, count)
    calls = Chunk.objects.count()
    # The broker delivers the same message again: nothing happens.
    ingest_document(str(document.id), document.generation)
    # A task of an older generation (superseded by a redo) does nothing either.
    ingest_document(str(document.id), document.generation - 1)
    assert Chunk.objects.count() == calls
    _assert_indexed_once(document, count)
    assert document.attempts == 1


@pytest.mark.django_db
def test_a_document_left_processing_by_a_dead_worker_is_recovered(
    user, workspace, embedder, django_capture_on_commit_callbacks
):
    kb = _kb(user, workspace)
    document = _waiting_document(kb)
    # What a worker killed while embedding leaves behind: no chunks (they are written in
    # the final transaction), status `embedding`, a heartbeat that stopped.
    Document.objects.filter(id=document.id).update(
        status="embedding", attempts=1, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    fresh = _waiting_document(kb, text="fresh words", name="fresh.txt")
    Document.objects.filter(id=fresh.id).update(status="embedding", heartbeat_at=timezone.now())
    assert job_kind_sweep(INGESTION) == 1  # only the stale one; the other worker is alive
    document.refresh_from_db()
    _assert_indexed_once(document, document.chunk_count)
    assert document.attempts == 2
    fresh.refresh_from_db()
    assert fresh.status == "embedding"


@pytest.mark.django_db
def test_a_document_that_keeps_killing_its_worker_ends_failed(user, workspace, embedder, settings):
    settings.KNOWLEDGE_MAX_ATTEMPTS = 3
    kb = _kb(user, workspace)
    document = _waiting_document(kb)
    Document.objects.filter(id=document.id).update(
        status="parsing", attempts=3, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    job_kind_sweep(INGESTION)
    document.refresh_from_db()
    assert document.status == "failed"
    assert document.error_message == (
        "Gave up after 3 attempts: processing stopped before the end each time "
        "(worker crash or time limit)."
    )
    assert Chunk.objects.count() == 0


@pytest.mark.django_db
def test_a_lost_queue_message_is_recovered(user, workspace, embedder):
    kb = _kb(user, workspace)
    document = _waiting_document(kb)
    Document.objects.filter(id=document.id).update(updated_at=timezone.now() - timedelta(hours=2))
    assert job_kind_sweep(INGESTION) == 1
    _assert_indexed_once(document, Document.objects.get(id=document.id).chunk_count)


@pytest.mark.django_db
def test_redo_and_reindex_start_a_new_generation(
    user, workspace, embedder, django_capture_on_commit_callbacks
):
    from tests.knowledge.factories import actor_for

    actor = actor_for(user=user, workspace=workspace)
    kb = _kb(user, workspace)
    with django_capture_on_commit_callbacks(execute=True):
        _, (document,) = add_texts(user=user, kb=kb, texts={"long.txt": LONG_TEXT})
    document.refresh_from_db()
    before = document.chunk_count
    services.knowledge_base_update(actor=actor, knowledge_base=kb, chunk_size=64)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.knowledge_base_reindex(actor=actor, knowledge_base=kb) == 1
    document.refresh_from_db()
    assert document.generation == 2
    _assert_indexed_once(document, document.chunk_count)
    assert document.chunk_count < before


# --- a real worker process, really killed (needs a database two processes share) ------

WORKER = """
import sys
from apps.knowledge.tasks import ingest_document
ingest_document(sys.argv[1], int(sys.argv[2]))
"""


def _kill_worker_while_embedding(document, scripted_llm):
    # The first embedding request hangs: the worker is killed while waiting for it.
    scripted_llm.push_embeddings(Reply(first_byte_delay=20))

    def embedding() -> bool:
        document.refresh_from_db()
        calls = [r for r in scripted_llm.request_log if r["path"].endswith("/embeddings")]
        return document.status == "embedding" and bool(calls)

    kill_worker_when(WORKER, [str(document.id), str(document.generation)], embedding)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_document_then_the_document_finishes_exactly_once(
    user, workspace, embedder, scripted_llm
):
    kb = _kb(user, workspace)
    document = _waiting_document(kb)
    _kill_worker_while_embedding(document, scripted_llm)
    document.refresh_from_db()
    assert (document.status, document.attempts, Chunk.objects.count()) == ("embedding", 1, 0)

    # The broker redelivers the unacknowledged message (acks_late, reject_on_worker_lost)
    # to another worker: here, this process.
    ingest_document(str(document.id), document.generation)
    document.refresh_from_db()
    _assert_indexed_once(document, document.chunk_count)
    assert document.attempts == 2
    # ... and the stale-document sweep, running later, changes nothing.
    Document.objects.filter(id=document.id).update(updated_at=timezone.now() - timedelta(hours=2))
    assert job_kind_sweep(INGESTION) == 0
    _assert_indexed_once(document, document.chunk_count)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_document_is_retried_by_the_sweep_within_its_bound(
    user, workspace, embedder, scripted_llm, settings
):
    """The worker is killed and its message is lost too (no redelivery): the stale sweep
    leaves the document alone until KNOWLEDGE_STALE_SECONDS have passed since the last
    heartbeat, then queues it again, and it ends indexed, once."""
    settings.KNOWLEDGE_STALE_SECONDS = 300
    kb = _kb(user, workspace)
    document = _waiting_document(kb)
    _kill_worker_while_embedding(document, scripted_llm)
    document.refresh_from_db()
    assert (document.status, document.attempts, document.worker_id != "") == (
        "embedding",
        1,
        True,
    )
    last_beat = document.heartbeat_at
    assert job_kind_sweep(INGESTION, now=last_beat + timedelta(seconds=299)) == 0
    assert Document.objects.get(id=document.id).status == "embedding"
    assert job_kind_sweep(INGESTION, now=last_beat + timedelta(seconds=301)) == 1
    document.refresh_from_db()
    _assert_indexed_once(document, document.chunk_count)
    assert (document.attempts, document.chunk_count > 1) == (2, True)

"""Writes of knowledge bases, documents and chunks, and the ingestion pipeline."""

import hashlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from apps.core.events import (
    DocumentFailedNotice,
    DocumentIndexedNotice,
    OutboundEvent,
    RunError,
)
from apps.core.jobs import (
    JobKind,
    job_claim,
    job_enqueue,
    job_finish,
    job_heartbeat,
    job_release,
)
from apps.core.outbound import OutboundError, check_url, fetch
from apps.core.outbox import outbox_emit
from apps.knowledge.choices import (
    ACTIVE_STATUSES,
    PROCESSING_STATUSES,
    DocumentSource,
    DocumentStatus,
    FileKind,
)
from apps.knowledge.chunking import count_tokens, split_text
from apps.knowledge.embedding import embed_batches, embedding_model_resolve
from apps.knowledge.exceptions import (
    DocumentBusy,
    DuplicateDocument,
    EmptyDocument,
    FileTooLarge,
    KnowledgeBaseNameTaken,
    ParseError,
    TooManyFiles,
    UnsupportedFileType,
    UrlImportFailed,
)
from apps.knowledge.limits import limit
from apps.knowledge.models import Chunk, Document, KnowledgeBase, UploadBatch
from apps.knowledge.parsing import declared_kind, extract_text, sniff
from apps.knowledge.rerank import rerank_model_check
from apps.knowledge.search import ensure_vector_index
from apps.providers.exceptions import ProviderError, ProviderRateLimited
from apps.providers.services import model_info
from apps.providers.types import UsageContext
from apps.users.actors import Actor
from apps.users.choices import Role

logger = logging.getLogger(__name__)

KB_FIELDS = (
    "name",
    "description",
    "language",
    "embedding_model_id",
    "chunk_size",
    "chunk_overlap",
    "splitter",
    "top_k",
    "score_threshold",
    "search_mode",
    "rerank_model_id",
    "rerank_candidates",
)


# --- knowledge bases ------------------------------------------------------------------


def _validate_model(*, workspace_id: uuid.UUID, model_id: uuid.UUID | None) -> None:
    if model_id is not None:
        # Raises ModelNotFoundError (404) for a model the workspace may not use.
        model_info(workspace_id=workspace_id, model_id=model_id, kind="embedding")


def _validate_rerank_model(*, workspace_id: uuid.UUID, fields: dict[str, Any]) -> None:
    if fields.get("rerank_model_id") is not None:
        rerank_model_check(
            workspace_id=workspace_id, model_id=fields["rerank_model_id"], field="rerank_model_id"
        )


def knowledge_base_create(*, actor: Actor, **fields: Any) -> KnowledgeBase:
    """Create a knowledge base in the actor's workspace (member role).
    Raises KnowledgeBaseNameTaken, ModelNotFoundError, ValidationFailed (a rerank model
    of another kind or disabled)."""
    actor.require_role(Role.MEMBER)
    unknown = set(fields) - set(KB_FIELDS)
    assert not unknown, unknown
    _validate_model(workspace_id=actor.workspace_id, model_id=fields.get("embedding_model_id"))
    _validate_rerank_model(workspace_id=actor.workspace_id, fields=fields)
    try:
        with transaction.atomic():
            return KnowledgeBase.objects.create(
                workspace=actor.workspace, created_by=actor.user, **fields
            )
    except IntegrityError as exc:
        raise KnowledgeBaseNameTaken() from exc


def knowledge_base_update(
    *, actor: Actor, knowledge_base: KnowledgeBase, **fields: Any
) -> KnowledgeBase:
    """Change settings (member role). A new embedding model or chunking applies to
    documents indexed from now on; `knowledge_base_reindex` re-indexes the others."""
    actor.require_role(Role.MEMBER)
    unknown = set(fields) - set(KB_FIELDS)
    assert not unknown, unknown
    if "embedding_model_id" in fields:
        _validate_model(workspace_id=actor.workspace_id, model_id=fields["embedding_model_id"])
    _validate_rerank_model(workspace_id=actor.workspace_id, fields=fields)
    for name, value in fields.items():
        setattr(knowledge_base, name, value)
    try:
        with transaction.atomic():
            knowledge_base.save()
    except IntegrityError as exc:
        raise KnowledgeBaseNameTaken() from exc
    return knowledge_base


def _delete_files(paths: list[str]) -> None:
    for path in paths:
        if path:
            default_storage.delete(path)


def knowledge_base_delete(*, actor: Actor, knowledge_base: KnowledgeBase) -> None:
    """Delete a knowledge base, its documents, chunks and files (admin role)."""
    actor.require_role(Role.ADMIN)
    paths = list(knowledge_base.documents.values_list("file", flat=True))
    with transaction.atomic():
        knowledge_base.delete()
        transaction.on_commit(lambda: _delete_files(paths))


def knowledge_base_clear(*, actor: Actor, knowledge_base: KnowledgeBase) -> int:
    """Remove every document (and chunk) of a knowledge base; returns how many."""
    actor.require_role(Role.MEMBER)
    documents = Document.objects.filter(knowledge_base=knowledge_base)
    paths = list(documents.values_list("file", flat=True))
    with transaction.atomic():
        Chunk.objects.filter(knowledge_base=knowledge_base).delete()
        _deleted, _ = documents.delete()
        UploadBatch.objects.filter(knowledge_base=knowledge_base).delete()
        transaction.on_commit(lambda: _delete_files(paths))
    return len(paths)


def knowledge_base_reindex(*, actor: Actor, knowledge_base: KnowledgeBase) -> int:
    """Parse, chunk and embed every document again with the current settings (after a
    change of embedding model or chunking). Returns how many documents were queued."""
    actor.require_role(Role.MEMBER)
    with transaction.atomic():
        ids = list(
            Document.objects.filter(knowledge_base=knowledge_base).values_list("id", flat=True)
        )
        _requeue(document_ids=ids)
    return len(ids)


# --- documents ------------------------------------------------------------------------


@dataclass(frozen=True)
class IncomingFile:
    name: str
    data: bytes
    content_type: str = ""


INGEST_TASK = "knowledge.ingest_document"


def _enqueue(document: Document) -> None:
    job_enqueue(INGEST_TASK, str(document.id), document.generation)


def _requeue(*, document_ids: Sequence[uuid.UUID]) -> None:
    """Start documents over in a new generation; tasks of older generations stop."""
    now = timezone.now()
    Document.objects.filter(id__in=document_ids).update(
        status=DocumentStatus.WAITING,
        generation=F("generation") + 1,
        attempts=0,
        rate_limit_retries=0,
        error_code="",
        error_message="",
        progress=0.0,
        worker_id="",
        heartbeat_at=now,  # queued at: the stale sweep measures a lost message from here
        started_at=None,
        finished_at=None,
        updated_at=now,
    )
    for document in Document.objects.filter(id__in=document_ids).only("id", "generation"):
        _enqueue(document)


def _checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_sizes(files: Sequence[IncomingFile]) -> None:
    max_files = int(limit("KNOWLEDGE_MAX_FILES_PER_UPLOAD"))
    if not files:
        raise EmptyDocument("No file was sent.", field="files")
    if len(files) > max_files:
        raise TooManyFiles(f"At most {max_files} files per upload.", field="files")
    max_bytes = int(limit("KNOWLEDGE_MAX_FILE_BYTES"))
    for index, incoming in enumerate(files):
        if len(incoming.data) > max_bytes:
            raise FileTooLarge(
                f"{incoming.name} is {len(incoming.data)} bytes; the limit is {max_bytes}.",
                field=f"files[{index}]",
            )


def documents_add(
    *,
    actor: Actor,
    knowledge_base: KnowledgeBase,
    files: Sequence[IncomingFile],
    source: str = DocumentSource.UPLOAD,
    source_url: str = "",
    override: bool = False,
    metadata: dict[str, Any] | None = None,
) -> tuple[UploadBatch, list[Document]]:
    """Add documents in one batch and queue their ingestion. All or nothing: an empty,
    oversized, unsupported or duplicate file refuses the whole request (EmptyDocument,
    FileTooLarge, UnsupportedFileType, DuplicateDocument). With `override`, a document
    of the same name (or content) is replaced in place."""
    actor.require_role(Role.MEMBER)
    _check_sizes(files)
    prepared = []
    for index, incoming in enumerate(files):
        try:
            sniffed = sniff(
                name=incoming.name, data=incoming.data, content_type=incoming.content_type
            )
        except (EmptyDocument, UnsupportedFileType) as exc:
            exc.details = [{"field": f"files[{index}]", "message": exc.message}]
            raise
        prepared.append((incoming, sniffed.kind, _checksum(incoming.data)))
    checksums = [c for _, _, c in prepared]
    if len(set(checksums)) != len(checksums):
        raise DuplicateDocument("The same file is twice in this upload.", field="files")
    with transaction.atomic():
        batch = UploadBatch.objects.create(knowledge_base=knowledge_base, created_by=actor.user)
        documents = []
        for index, (incoming, kind, checksum) in enumerate(prepared):
            in_base = Document.objects.select_for_update().filter(knowledge_base=knowledge_base)
            duplicate = in_base.filter(checksum=checksum).first()
            if duplicate is not None and not override:
                raise DuplicateDocument(
                    f"{incoming.name} is already in this knowledge base (as {duplicate.name}); "
                    "send override=true to replace it.",
                    field=f"files[{index}]",
                )
            existing = (
                (duplicate or in_base.filter(name=incoming.name).first()) if override else None
            )
            if existing is not None:
                if existing.status in PROCESSING_STATUSES and existing.checksum == checksum:
                    documents.append(existing)
                    continue
                old_path = existing.file.name
                document = existing
                document.generation += 1
                document.batch = batch
                for name, value in {
                    "status": DocumentStatus.WAITING,
                    "attempts": 0,
                    "rate_limit_retries": 0,
                    "error_code": "",
                    "error_message": "",
                    "progress": 0.0,
                    "worker_id": "",
                    "heartbeat_at": timezone.now(),
                    "started_at": None,
                    "finished_at": None,
                }.items():
                    setattr(document, name, value)
                transaction.on_commit(lambda p=old_path: _delete_files([p]))  # type: ignore[misc]
            else:
                document = Document(knowledge_base=knowledge_base, batch=batch)
            document.name = incoming.name[:255]
            document.source = source
            document.source_url = source_url
            document.kind = kind
            document.size = len(incoming.data)
            document.checksum = checksum
            if metadata is not None:
                document.metadata = metadata
            document.file.save(incoming.name, ContentFile(incoming.data), save=False)
            document.save()
            documents.append(document)
            _enqueue(document)
    return batch, documents


def document_add_text(
    *,
    actor: Actor,
    knowledge_base: KnowledgeBase,
    name: str,
    text: str,
    override: bool = False,
    metadata: dict[str, Any] | None = None,
) -> tuple[UploadBatch, Document]:
    """Add raw text as a document (Markdown when `name` ends in .md, else plain text)."""
    filename = name if "." in name.rsplit("/", 1)[-1] else f"{name}.txt"
    batch, documents = documents_add(
        actor=actor,
        knowledge_base=knowledge_base,
        files=[IncomingFile(name=filename, data=text.encode())],
        source=DocumentSource.TEXT,
        override=override,
        metadata=metadata,
    )
    return batch, documents[0]


_URL_KINDS = {
    FileKind.HTML: ".html",
    FileKind.PDF: ".pdf",
    FileKind.DOCX: ".docx",
    FileKind.CSV: ".csv",
    FileKind.JSON: ".json",
    FileKind.MARKDOWN: ".md",
    FileKind.TEXT: ".txt",
}


def document_import_url(
    *,
    actor: Actor,
    knowledge_base: KnowledgeBase,
    url: str,
    name: str = "",
    override: bool = False,
    metadata: dict[str, Any] | None = None,
) -> tuple[UploadBatch, Document]:
    """Fetch `url` through the outbound guard and add it as a document.
    Raises OutboundBlocked (private addresses), UrlImportFailed, and documents_add's errors."""
    actor.require_role(Role.MEMBER)
    check_url(url, field="url")
    max_bytes = int(limit("KNOWLEDGE_MAX_FILE_BYTES"))
    try:
        response = fetch(url, max_bytes=max_bytes, timeout=30.0)
    except OutboundError as exc:
        raise UrlImportFailed(f"The URL could not be fetched: {exc.message}", field="url") from exc
    if response.status_code >= 400:
        raise UrlImportFailed(f"The URL answered HTTP {response.status_code}.", field="url")
    content_type = response.headers.get("content-type", "")
    title = name or (response.url.rstrip("/").rsplit("/", 1)[-1] or response.url)
    kind = declared_kind(title, content_type) or declared_kind("", content_type)
    if declared_kind(title) is None:
        title += _URL_KINDS.get(kind or FileKind.HTML, ".html") if kind else ""
    batch, documents = documents_add(
        actor=actor,
        knowledge_base=knowledge_base,
        files=[IncomingFile(name=title[:255], data=response.content, content_type=content_type)],
        source=DocumentSource.URL,
        source_url=url,
        override=override,
        metadata=metadata,
    )
    return batch, documents[0]


def documents_redo(*, actor: Actor, documents: Sequence[Document]) -> int:
    """Ingest these documents again (a new generation); returns how many."""
    actor.require_role(Role.MEMBER)
    with transaction.atomic():
        _requeue(document_ids=[d.id for d in documents])
    return len(documents)


def batch_redo_failed(*, actor: Actor, batch: UploadBatch) -> int:
    """Ingest the failed documents of a batch again; returns how many."""
    failed = list(batch.documents.filter(status=DocumentStatus.FAILED))
    return documents_redo(actor=actor, documents=failed)


def document_update(
    *,
    actor: Actor,
    document: Document,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Document:
    """Rename a document or replace its metadata (used by search filters)."""
    actor.require_role(Role.MEMBER)
    if name is not None:
        document.name = name
    if metadata is not None:
        document.metadata = metadata
    document.save(update_fields=["name", "metadata", "updated_at"])
    return document


def document_delete(*, actor: Actor, document: Document) -> None:
    """Delete a document, its chunks and its file."""
    actor.require_role(Role.MEMBER)
    path = document.file.name
    with transaction.atomic():
        document.delete()
        transaction.on_commit(lambda: _delete_files([path or ""]))


# --- chunks ---------------------------------------------------------------------------


def _embed_one(
    *, knowledge_base: KnowledgeBase, actor: Actor, text: str
) -> tuple[list[float] | None, str]:
    model = embedding_model_resolve(knowledge_base=knowledge_base)
    if model is None:
        return None, ""
    usage = UsageContext(workspace_id=knowledge_base.workspace_id, user_id=actor.user.id)
    vectors = embed_batches(knowledge_base=knowledge_base, model=model, texts=[text], usage=usage)
    return vectors[0], model.key


def _refresh_counts(document_id: uuid.UUID) -> None:
    chunks = Chunk.objects.filter(document_id=document_id)
    Document.objects.filter(id=document_id).update(
        chunk_count=chunks.count(),
        token_count=sum(chunks.values_list("token_count", flat=True)),
    )


def chunk_create(
    *, actor: Actor, document: Document, content: str, metadata: dict[str, Any] | None = None
) -> Chunk:
    """Add a passage by hand, embedded now, after the document's last one.
    Raises DocumentBusy while the document is being ingested; provider errors."""
    actor.require_role(Role.MEMBER)
    if document.status in ACTIVE_STATUSES:
        raise DocumentBusy()
    knowledge_base = document.knowledge_base
    embedding, model_key = _embed_one(knowledge_base=knowledge_base, actor=actor, text=content)
    with transaction.atomic():
        last = Chunk.objects.filter(document=document).aggregate(m=Max("position"))["m"]
        chunk = Chunk.objects.create(
            knowledge_base=knowledge_base,
            document=document,
            position=0 if last is None else last + 1,
            content=content,
            token_count=count_tokens(content),
            metadata=metadata or {},
            manual=True,
            fts_config=knowledge_base.language,
            embedding=embedding,
            embedding_dims=len(embedding) if embedding else None,
            embedding_model_key=model_key,
        )
        _refresh_counts(document.id)
    if embedding:
        ensure_vector_index(len(embedding))
    return chunk


def chunk_update(
    *,
    actor: Actor,
    chunk: Chunk,
    content: str | None = None,
    enabled: bool | None = None,
    metadata: dict[str, Any] | None = None,
) -> Chunk:
    """Edit a passage (new content is embedded again), or disable/enable it."""
    actor.require_role(Role.MEMBER)
    if content is not None and content != chunk.content:
        embedding, model_key = _embed_one(
            knowledge_base=chunk.knowledge_base, actor=actor, text=content
        )
        chunk.content = content
        chunk.token_count = count_tokens(content)
        chunk.embedding = embedding
        chunk.embedding_dims = len(embedding) if embedding else None
        chunk.embedding_model_key = model_key
        chunk.manual = True
    if enabled is not None:
        chunk.enabled = enabled
    if metadata is not None:
        chunk.metadata = metadata
    with transaction.atomic():
        chunk.save()
        _refresh_counts(chunk.document_id)
    return chunk


def chunk_delete(*, actor: Actor, chunk: Chunk) -> None:
    """Delete one passage."""
    actor.require_role(Role.MEMBER)
    with transaction.atomic():
        chunk.delete()
        _refresh_counts(chunk.document_id)


# --- ingestion ------------------------------------------------------------------------


@contextmanager
def _ingest_write() -> Iterator[None]:
    """A transaction of the ingestion pipeline. On PostgreSQL its commit does not wait for
    the WAL flush: every step is idempotent, so a write lost in a database crash only
    means the document is picked up again by recovery."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def _fail(document_id: uuid.UUID, generation: int, reason: str, *, code: str) -> None:
    logger.info("knowledge document %s failed: %s", document_id, reason)
    with _ingest_write():
        if job_finish(
            Document,
            document_id,
            status=DocumentStatus.FAILED,
            code=code,
            reason=reason,
            where=Q(generation=generation),
        ):
            _outbound_document_event(document_id)


def _outbound_document_event(document_id: uuid.UUID) -> None:
    """The document's outbound event (webhooks, core.outbox), in the transaction of its
    terminal status: document.indexed or document.failed."""
    document = Document.objects.select_related("knowledge_base").filter(id=document_id).first()
    if document is None or document.status not in (
        DocumentStatus.INDEXED,
        DocumentStatus.FAILED,
    ):
        return
    event: OutboundEvent
    if document.status == DocumentStatus.FAILED:
        event = DocumentFailedNotice(
            document_id=document.id,
            knowledge_base_id=document.knowledge_base_id,
            name=document.name,
            status=str(document.status),
            error=RunError(code=document.error_code, message=document.error_message),
        )
    else:
        event = DocumentIndexedNotice(
            document_id=document.id,
            knowledge_base_id=document.knowledge_base_id,
            name=document.name,
            status=str(document.status),
            chunk_count=document.chunk_count,
        )
    outbox_emit(event, workspace_id=document.knowledge_base.workspace_id)


def _beat(document_id: uuid.UUID, generation: int, **changes: Any) -> bool:
    """The ingesting worker's heartbeat (with progress or a move to `embedding`)."""
    with _ingest_write():
        return job_heartbeat(Document, document_id, where=Q(generation=generation), **changes)


def _retry_later(document_id: uuid.UUID, generation: int, *, reason: str, retries: int) -> None:
    base = float(limit("KNOWLEDGE_RATE_LIMIT_BACKOFF_SECONDS"))
    delay = min(base * (2**retries), 15 * 60.0)
    with _ingest_write():
        moved = job_release(
            Document,
            document_id,
            status=DocumentStatus.WAITING,
            code="provider_retry",
            reason=f"{reason} Retrying in {delay:g} s.",
            not_before=timezone.now() + timedelta(seconds=delay),
            where=Q(generation=generation),
            rate_limit_retries=F("rate_limit_retries") + 1,
            attempts=F("attempts") - 1,  # a rate-limit pause is not a failed attempt
        )
    if moved:
        job_enqueue(INGEST_TASK, str(document_id), generation, countdown=delay, after_commit=False)


def document_ingest(*, document_id: uuid.UUID, generation: int) -> None:
    """Parse, chunk, embed and index one document. Idempotent and restartable: a run
    claims the document with a conditional update, writes its chunks and the `indexed`
    status in one transaction that first re-checks the status, so a document killed
    mid-way is redone from the start and never gets chunks twice; a task for an older
    generation, or for a document already indexed or failed, does nothing."""
    with _ingest_write():
        claimed = job_claim(
            Document,
            document_id,
            from_statuses=ACTIVE_STATUSES,
            status=DocumentStatus.PARSING,
            where=Q(generation=generation),
        )
    if not claimed:
        return
    document = Document.objects.select_related("knowledge_base").filter(id=document_id).first()
    if document is None:
        return  # deleted meanwhile
    knowledge_base = document.knowledge_base
    max_attempts = int(limit("KNOWLEDGE_MAX_ATTEMPTS"))
    if document.attempts > max_attempts:
        _fail(document_id, generation, _gave_up_reason(), code="too_many_attempts")
        return
    try:
        with document.file.open("rb") as handle:
            data = handle.read()
        text = extract_text(kind=document.kind, data=data)
        drafts = split_text(
            text=text,
            size=knowledge_base.chunk_size,
            overlap=knowledge_base.chunk_overlap,
            by_headings=knowledge_base.splitter == "headings",
        )
        max_chunks = int(limit("KNOWLEDGE_MAX_CHUNKS_PER_DOCUMENT"))
        if len(drafts) > max_chunks:
            raise ParseError(
                f"The document makes {len(drafts)} passages; the limit is {max_chunks}."
            )
        if not drafts:
            raise ParseError("No text could be extracted from the document.")
    except ParseError as exc:
        _fail(document_id, generation, str(exc), code="parse_failed")
        return
    except (OSError, ValueError) as exc:
        _fail(
            document_id,
            generation,
            f"The stored file could not be read ({exc}).",
            code="file_unreadable",
        )
        return
    if not _beat(document_id, generation, status=DocumentStatus.EMBEDDING, progress=0.0):
        return
    model = embedding_model_resolve(knowledge_base=knowledge_base)
    vectors: list[list[float]] | None = None
    if model is not None:
        total = len(drafts)

        def beat(done: int) -> None:
            if done >= total:
                return  # the final transaction records the end
            _beat(document_id, generation, progress=round(done / total, 4))

        usage = UsageContext(
            workspace_id=knowledge_base.workspace_id,
            user_id=document.batch.created_by_id if document.batch else None,
        )
        try:
            vectors = embed_batches(
                knowledge_base=knowledge_base,
                model=model,
                texts=[d.content for d in drafts],
                usage=usage,
                on_batch=beat,
            )
        except ProviderError as exc:
            retries = document.rate_limit_retries
            max_retries = int(limit("KNOWLEDGE_RATE_LIMIT_RETRIES"))
            transient = isinstance(exc, ProviderRateLimited) or exc.retryable
            if transient and retries < max_retries:
                _retry_later(
                    document_id,
                    generation,
                    reason=f"The embedding provider answered: {exc.message}",
                    retries=retries,
                )
            elif transient:
                _fail(
                    document_id,
                    generation,
                    f"The embedding provider kept failing after {retries} retries: {exc.message}",
                    code=exc.code,
                )
            else:
                _fail(document_id, generation, f"Embedding failed: {exc.message}", code=exc.code)
            return
        if vectors:
            ensure_vector_index(len(vectors[0]))
    with _ingest_write():
        locked = (
            Document.objects.select_for_update()
            .filter(id=document_id, generation=generation, status=DocumentStatus.EMBEDDING)
            .first()
        )
        if locked is None:
            return  # another run finished it, or it was redone / deleted meanwhile
        Chunk.objects.filter(document_id=document_id).delete()
        Chunk.objects.bulk_create(
            [
                Chunk(
                    knowledge_base_id=knowledge_base.id,
                    document_id=document_id,
                    position=position,
                    content=draft.content,
                    token_count=draft.token_count,
                    metadata=draft.metadata,
                    fts_config=knowledge_base.language,
                    embedding=vectors[position] if vectors else None,
                    embedding_dims=len(vectors[position]) if vectors else None,
                    embedding_model_key=model.key if (vectors and model) else "",
                )
                for position, draft in enumerate(drafts)
            ],
            batch_size=500,
        )
        if job_finish(
            Document,
            document_id,
            status=DocumentStatus.INDEXED,
            where=Q(generation=generation),
            progress=1.0,
            chunk_count=len(drafts),
            token_count=sum(d.token_count for d in drafts),
            indexed_at=timezone.now(),
        ):
            _outbound_document_event(document_id)


def _gave_up_reason() -> str:
    return (
        f"Gave up after {int(limit('KNOWLEDGE_MAX_ATTEMPTS'))} attempts: processing stopped "
        "before the end each time (worker crash or time limit)."
    )


def _ingestion_retry(document: Document) -> bool:
    """The stale sweep's retry for a document: one whose message was lost, or whose
    worker stopped before its last attempt, is queued again (same generation: should the
    old worker still be alive, the final transaction lets only one of them write the
    passages); one out of attempts is left to the sweep, which fails it."""
    if document.status in PROCESSING_STATUSES and document.attempts >= int(
        limit("KNOWLEDGE_MAX_ATTEMPTS")
    ):
        return False
    reason = (
        "The worker processing the document stopped; it is queued again."
        if document.status in PROCESSING_STATUSES
        else document.error_message
    )
    with _ingest_write():
        requeued = job_release(
            Document,
            document.id,
            status=DocumentStatus.WAITING,
            code=document.error_code if document.status == DocumentStatus.WAITING else "",
            reason=reason,
            from_statuses=ACTIVE_STATUSES,
            where=Q(
                generation=document.generation,
                status=document.status,
                heartbeat_at=document.heartbeat_at,
            ),
        )
    if requeued:
        job_enqueue(INGEST_TASK, str(document.id), document.generation, after_commit=False)
    return requeued


def _stale_after() -> timedelta:
    return timedelta(seconds=int(limit("KNOWLEDGE_STALE_SECONDS")))


INGESTION = JobKind(
    name="knowledge.ingestion",
    model=Document,
    stale_after=_stale_after,
    stale_status=DocumentStatus.FAILED,
    stale_code="too_many_attempts",
    stale_reason=lambda document: _gave_up_reason(),
    queued_statuses=frozenset({DocumentStatus.WAITING}),
    queued_after=_stale_after,
    queued_reason="The document was never picked up.",
    retry=_ingestion_retry,
    on_ended=lambda document: _outbound_document_event(document.id),
)
"""Document ingestion in the stale sweep (registered by the app's `ready`): a document
whose worker stopped is queued again up to KNOWLEDGE_MAX_ATTEMPTS, then fails; a waiting
one whose message was lost is queued again."""


# --- parsing for other apps (files: chat attachments) ------------------------------------
# The parsers and the chunker are knowledge's; these three functions are what other apps
# use of them (the import contract lets them reach services, not parsing/chunking).


def document_kind(*, name: str, data: bytes, content_type: str = "") -> str:
    """The document type of `data` (a FileKind value) by its content. Raises
    UnsupportedFileType or EmptyDocument for what the parsers cannot read."""
    return str(sniff(name=name, data=data, content_type=content_type).kind)


def document_text(*, kind: str, data: bytes) -> str:
    """The text of a document of `kind`. Raises ParseError with a message a user can read."""
    return extract_text(kind=kind, data=data)


def text_passages(*, text: str, size: int = 400, overlap: int = 40) -> list[str]:
    """`text` cut into passages of about `size` tokens (headings start new passages)."""
    drafts = split_text(text=text, size=size, overlap=overlap, by_headings=True)
    return [draft.content for draft in drafts]

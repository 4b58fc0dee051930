"""Writes of files: upload, delete, parse (in the worker), the agent file workspace, and
what a run needs of attachments.

Bytes live in the "files" storage (Django's storage API: the file system in the embedded
profile, an S3-compatible bucket in production, see docs/deploy.md). A row is created in
the transaction that stores its bytes; bytes are removed only after the transaction that
deletes the row commits, so a rolled-back delete never loses a file and a committed one
never leaves bytes behind.
"""

import base64
import hashlib
import logging
import math
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import filetype
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.db.models import Q, Sum

from apps.core.exceptions import ValidationFailed
from apps.core.jobs import JobKind, job_claim, job_enqueue, job_finish, job_release
from apps.files.choices import FileKind, FileOrigin, ParseStatus
from apps.files.exceptions import (
    FileNotFound,
    FileTooLarge,
    ModelWithoutVision,
    UnsupportedFile,
    WorkspacePathInvalid,
    WorkspaceStorageFull,
)
from apps.files.models import File, FileChunk
from apps.knowledge.exceptions import EmptyDocument, ParseError, UnsupportedFileType
from apps.knowledge.services import document_kind, document_text, text_passages
from apps.users.actors import Actor
from apps.users.choices import Role

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "FILES_MAX_FILE_BYTES": 20 * 1024 * 1024,
    "FILES_MAX_WORKSPACE_BYTES": 1024 * 1024 * 1024,
    "FILES_MAX_IMAGE_BYTES": 5 * 1024 * 1024,  # an image sent to a model (base64 inline)
    "FILES_MAX_ATTACHMENTS": 10,  # per message
    "FILES_INLINE_MAX_CHARS": 16_000,  # longer documents go through attachment_search
    "FILES_MAX_TEXT_CHARS": 2_000_000,  # text kept of one document
    "FILES_PARSE_MAX_ATTEMPTS": 3,
    "FILES_PARSE_STALE_SECONDS": 5 * 60,
    # A parse runs in one blocking child process (no heartbeat), limited by the knowledge
    # parser's KNOWLEDGE_PARSE_TIMEOUT_SECONDS (120): stale only well after that.
    "FILES_PARSE_RUNNING_STALE_SECONDS": 3 * 60,
    "FILES_PARSE_WAIT_SECONDS": 60,  # a run waits this long for its attachments' text
    "FILES_AGENT_MAX_FILE_BYTES": 1024 * 1024,
    "FILES_AGENT_MAX_FILES": 100,
}

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
DOCUMENT_TYPES: dict[str, str] = {
    "text": "text/plain",
    "markdown": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "csv": "text/csv",
    "json": "application/json",
}
MAX_NAME_CHARS = 255
MAX_PATH_DEPTH = 8


def limit(name: str) -> Any:
    """A files limit: the Django setting of that name, else its default above."""
    return getattr(settings, name, DEFAULTS[name])


def files_storage() -> Storage:
    """The storage holding every file's bytes (STORAGES["files"])."""
    return storages["files"]


def delete_bytes_after_commit(keys: Iterable[str]) -> None:
    """Remove stored objects once the current transaction commits (now, outside one)."""
    keys = [key for key in keys if key]
    if not keys:
        return

    def delete() -> None:
        storage = files_storage()
        for key in keys:
            try:
                storage.delete(key)
            except OSError:  # the row is gone; a stray object is logged, not raised
                logger.exception("Could not delete %s from the files storage", key)

    transaction.on_commit(delete)


# --- sniffing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sniffed:
    kind: str  # FileKind
    content_type: str
    document_kind: str = ""  # the knowledge parser's kind, for documents


def sniff(*, name: str, data: bytes, declared_type: str = "") -> Sniffed:
    """What `data` is, decided from its bytes (magic numbers; for text, the knowledge
    parsers' checks), never from the name alone."""
    guess = filetype.guess(data[:8192])
    if guess is not None and guess.mime in IMAGE_TYPES:
        return Sniffed(kind=FileKind.IMAGE, content_type=guess.mime)
    try:
        doc = document_kind(name=name, data=data, content_type=declared_type)
    except (UnsupportedFileType, EmptyDocument):
        mime = guess.mime if guess is not None else "application/octet-stream"
        return Sniffed(kind=FileKind.OTHER, content_type=mime)
    return Sniffed(
        kind=FileKind.DOCUMENT,
        content_type=DOCUMENT_TYPES.get(doc, "text/plain"),
        document_kind=doc,
    )


def _clean_name(name: str) -> str:
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return (base or "file")[:MAX_NAME_CHARS]


def _check_quota(*, workspace_id: uuid.UUID, adding: int, replacing: int = 0) -> None:
    used = File.objects.filter(workspace_id=workspace_id).aggregate(total=Sum("size"))["total"]
    quota = int(limit("FILES_MAX_WORKSPACE_BYTES"))
    if (used or 0) - replacing + adding > quota:
        raise WorkspaceStorageFull(
            f"The workspace uses {used or 0} of its {quota} bytes; this file needs {adding}."
        )


def _store(*, workspace_id: uuid.UUID, file_id: uuid.UUID, data: bytes) -> str:
    """Save `data` under a key made of ids only: nothing a user typed reaches a path."""
    key = f"workspaces/{workspace_id}/{file_id}/{uuid.uuid4().hex}"
    return files_storage().save(key, ContentFile(data))


# --- uploads ---------------------------------------------------------------------------


def file_upload(*, actor: Actor, name: str, data: bytes, declared_type: str = "") -> File:
    """Store an uploaded file of the actor (member role) in their workspace. Raises
    FileTooLarge, WorkspaceStorageFull, ValidationFailed (empty). A document is parsed
    by the worker after commit (status pending -> ready | failed)."""
    actor.require_role(Role.MEMBER)
    max_bytes = int(limit("FILES_MAX_FILE_BYTES"))
    if len(data) > max_bytes:
        raise FileTooLarge(
            f"The file is {len(data)} bytes; the limit is {max_bytes}.", field="file"
        )
    if not data:
        raise ValidationFailed("The file is empty.", field="file")
    name = _clean_name(name)
    sniffed = sniff(name=name, data=data, declared_type=declared_type)
    return _create(
        workspace_id=actor.workspace_id,
        owner_id=actor.user.pk,
        origin=FileOrigin.UPLOAD,
        name=name,
        path="",
        data=data,
        sniffed=sniffed,
        conversation_id=None,
    )


def _create(
    *,
    workspace_id: uuid.UUID,
    owner_id: Any,
    origin: str,
    name: str,
    path: str,
    data: bytes,
    sniffed: Sniffed,
    conversation_id: uuid.UUID | None,
    text: str | None = None,
) -> File:
    """Store the bytes and create the row. A document is parsed by the worker, unless
    its `text` is given (an agent's text file is its own text)."""
    file_id = uuid.uuid4()
    with transaction.atomic():
        _check_quota(workspace_id=workspace_id, adding=len(data))
        key = _store(workspace_id=workspace_id, file_id=file_id, data=data)
        try:
            file = File.objects.create(
                id=file_id,
                workspace_id=workspace_id,
                owner_id=owner_id,
                origin=origin,
                conversation_id=conversation_id,
                name=name,
                path=path,
                content_type=sniffed.content_type,
                kind=sniffed.kind,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                storage_key=key,
                status=_initial_status(sniffed, text),
                text=text or "",
            )
            if text is not None:
                _index(file_id=file_id, text=text)
        except Exception:
            files_storage().delete(key)
            raise
    if file.status == ParseStatus.PENDING:
        _enqueue_parse(file.id)
    return file


def _initial_status(sniffed: Sniffed, text: str | None) -> str:
    if sniffed.kind != FileKind.DOCUMENT:
        return ParseStatus.NONE
    return ParseStatus.PENDING if text is None else ParseStatus.READY


def _index(*, file_id: uuid.UUID, text: str) -> None:
    FileChunk.objects.filter(file_id=file_id).delete()
    FileChunk.objects.bulk_create(
        FileChunk(file_id=file_id, position=i, text=p)
        for i, p in enumerate(text_passages(text=text))
    )


def _enqueue_parse(file_id: uuid.UUID) -> None:
    job_enqueue("files.parse", str(file_id))  # after commit


def file_delete(*, actor: Actor, file: File) -> None:
    """Delete a file (the owner, or a workspace admin) and, after commit, its bytes."""
    if file.owner_id != actor.user.pk:
        actor.require_role(Role.ADMIN)
    file.delete()  # its bytes go after commit (receivers.py)


def files_delete_for_conversation(*, conversation_id: uuid.UUID) -> int:
    """Delete every file of a conversation (its attachments and the agent's file
    workspace) and, after commit, their bytes. Idempotent; returns how many."""
    _, per_model = File.objects.filter(conversation_id=conversation_id).delete()
    return per_model.get(File._meta.label, 0)


def file_read_bytes(*, file: File) -> bytes:
    """All the bytes of a file (bounded by the upload limits)."""
    with files_storage().open(file.storage_key, "rb") as handle:
        data: bytes = handle.read()
    return data


# --- parsing (in the worker) ------------------------------------------------------------


def file_parse(*, file_id: uuid.UUID) -> str:
    """Extract a document's text and index its passages, in a child process limited in
    time and memory. A job (apps/core/jobs.py): claimed pending -> processing by one
    conditional UPDATE, so a duplicate delivery does nothing; ends `ready`, or `failed`
    with a readable reason. Returns the final status ("" when there was nothing to do)."""
    if not job_claim(
        File, file_id, from_statuses=[ParseStatus.PENDING], status=ParseStatus.PROCESSING
    ):
        return ""
    file = File.objects.defer("text").get(id=file_id)
    try:
        data = file_read_bytes(file=file)
        sniffed = sniff(name=file.name, data=data, declared_type=file.content_type)
        if not sniffed.document_kind:
            raise ParseError("The file is not a document whose text can be read.")
        text = document_text(kind=sniffed.document_kind, data=data)
        max_chars = int(limit("FILES_MAX_TEXT_CHARS"))
        if len(text) > max_chars:
            raise ParseError(f"The document has {len(text)} characters; the limit is {max_chars}.")
        passages = text_passages(text=text)
    except (ParseError, OSError) as exc:
        reason = str(exc) if isinstance(exc, ParseError) else "The file could not be read."
        job_finish(File, file_id, status=ParseStatus.FAILED, code="parse_failed", reason=reason)
        return ParseStatus.FAILED
    with transaction.atomic():
        if not job_finish(File, file_id, status=ParseStatus.READY, text=text):
            return ""  # deleted, or swept meanwhile
        FileChunk.objects.filter(file_id=file_id).delete()
        FileChunk.objects.bulk_create(
            FileChunk(file_id=file_id, position=i, text=p) for i, p in enumerate(passages)
        )
    return ParseStatus.READY


def _parse_stale_after() -> timedelta:
    return timedelta(seconds=int(limit("FILES_PARSE_RUNNING_STALE_SECONDS")))


def _parse_queue_lost_after() -> timedelta:
    return timedelta(seconds=int(limit("FILES_PARSE_STALE_SECONDS")))


def _parse_retry(file: File) -> bool:
    """A parse lost with its worker or its queue message goes back to the queue, until
    FILES_PARSE_MAX_ATTEMPTS claims were spent."""
    if file.attempts >= int(limit("FILES_PARSE_MAX_ATTEMPTS")):
        return False
    released = job_release(
        File,
        file.pk,
        status=ParseStatus.PENDING,
        reason="Retrying: the worker reading the document was lost.",
        code="parse_retry",
        from_statuses=[file.status],
        where=Q(heartbeat_at=file.heartbeat_at),
    )
    if released:
        _enqueue_parse(file.pk)
    return released


PARSE_JOBS: JobKind[File] = JobKind(
    name="files.parse",
    model=File,
    stale_after=_parse_stale_after,
    stale_status=ParseStatus.FAILED,
    stale_code="parse_lost",
    stale_reason="Reading the document was interrupted too many times.",
    queued_statuses=frozenset({ParseStatus.PENDING}),
    queued_after=_parse_queue_lost_after,
    queued_code="parse_lost",
    queued_reason="Reading the document was interrupted too many times.",
    retry=_parse_retry,
)
"""Document parses in the core stale sweep (registered by the app's `ready`)."""


# --- attachments --------------------------------------------------------------------------


def attachments_prepare(
    *,
    actor: Actor,
    attachments: Sequence[Any],
    accepts_images: bool,
    conversation_id: uuid.UUID,
) -> list[dict[str, Any]]:
    """Check the files a message attaches ([{"file_id": ...}], the actor's own files of
    the workspace) and bind them to the conversation. Returns what the message stores.
    Raises ValidationFailed (field `attachments`) for a malformed, unknown, unreadable
    or failed file, ModelWithoutVision for an image the agent's model cannot see."""
    max_count = int(limit("FILES_MAX_ATTACHMENTS"))
    if len(attachments) > max_count:
        raise ValidationFailed(f"At most {max_count} attachments.", field="attachments")
    ids: list[uuid.UUID] = []
    for index, item in enumerate(attachments):
        raw = item.get("file_id") if isinstance(item, dict) else None
        try:
            ids.append(uuid.UUID(str(raw)))
        except ValueError:
            raise ValidationFailed(
                'Each attachment is {"file_id": "<uuid>"}.', field=f"attachments[{index}]"
            ) from None
    if len(set(ids)) != len(ids):
        raise ValidationFailed("A file is attached twice.", field="attachments")
    found = {
        f.id: f
        for f in File.objects.filter(
            id__in=ids, workspace_id=actor.workspace_id, owner_id=actor.user.pk
        )
    }
    out: list[dict[str, Any]] = []
    for index, file_id in enumerate(ids):
        field = f"attachments[{index}]"
        file = found.get(file_id)
        if file is None:
            raise ValidationFailed(f"There is no file {file_id}.", field=field)
        if file.conversation_id not in (None, conversation_id):
            raise ValidationFailed(f"{file.name} belongs to another conversation.", field=field)
        if file.kind == FileKind.IMAGE:
            if not accepts_images:
                raise ModelWithoutVision(
                    f"{file.name} is an image and the agent's model does not accept images "
                    "(no vision capability).",
                    field=field,
                )
            if file.size > int(limit("FILES_MAX_IMAGE_BYTES")):
                raise ValidationFailed(
                    f"{file.name} is larger than {limit('FILES_MAX_IMAGE_BYTES')} bytes, "
                    "the limit for an image sent to a model.",
                    field=field,
                )
        elif file.kind == FileKind.OTHER:
            raise UnsupportedFile(
                f"{file.name} ({file.content_type}) is neither an image nor a document "
                "the agent can read.",
                field=field,
            )
        elif file.status == ParseStatus.FAILED:
            raise ValidationFailed(
                f"{file.name} could not be read: {file.error_message}", field=field
            )
        out.append(
            {
                "file_id": str(file.id),
                "name": file.name,
                "content_type": file.content_type,
                "kind": file.kind,
                "size": file.size,
            }
        )
    File.objects.filter(id__in=ids, conversation_id__isnull=True).update(
        conversation_id=conversation_id
    )
    return out


@dataclass(frozen=True)
class AttachmentContent:
    """What a run gives the model of one attached file."""

    file_id: str
    name: str
    kind: str  # FileKind
    status: str  # ParseStatus (documents) or "none"
    error: str = ""
    text: str = ""  # documents: the whole text when short, else a preview
    chars: int = 0  # documents: length of the whole text
    inline: bool = True  # documents: False -> searched with attachment_search
    image_url: str = ""  # images: a data: URL
    missing: bool = False  # deleted since it was attached


def attachment_contents(
    *, workspace_id: uuid.UUID, file_ids: Sequence[str], inline_max_chars: int | None = None
) -> dict[str, AttachmentContent]:
    """The content of attached files, by id (a file deleted since is `missing`). A
    document longer than `inline_max_chars` (at most FILES_INLINE_MAX_CHARS) is not
    inline: only its beginning is given."""
    rows = {
        str(f.id): f
        for f in File.objects.filter(workspace_id=workspace_id, id__in=list(file_ids)).defer("text")
    }
    inline_max = int(limit("FILES_INLINE_MAX_CHARS"))
    if inline_max_chars is not None:
        inline_max = min(inline_max, inline_max_chars)
    out: dict[str, AttachmentContent] = {}
    for file_id in file_ids:
        f = rows.get(file_id)
        if f is None:
            out[file_id] = AttachmentContent(
                file_id=file_id, name="", kind="", status="", missing=True
            )
        elif f.kind == FileKind.IMAGE:
            try:
                data = file_read_bytes(file=f)
            except OSError:
                out[file_id] = AttachmentContent(
                    file_id=file_id, name=f.name, kind=f.kind, status="", missing=True
                )
                continue
            url = f"data:{f.content_type};base64," + base64.b64encode(data).decode()
            out[file_id] = AttachmentContent(
                file_id=file_id, name=f.name, kind=f.kind, status=f.status, image_url=url
            )
        elif f.status != ParseStatus.READY:
            out[file_id] = AttachmentContent(
                file_id=file_id,
                name=f.name,
                kind=f.kind,
                status=f.status,
                error=f.error_message,
            )
        else:
            text = File.objects.values_list("text", flat=True).get(id=f.id)
            inline = len(text) <= inline_max
            out[file_id] = AttachmentContent(
                file_id=file_id,
                name=f.name,
                kind=f.kind,
                status=f.status,
                text=text if inline else text[:1000],
                chars=len(text),
                inline=inline,
            )
    return out


@dataclass(frozen=True)
class Passage:
    file_id: str
    file_name: str
    chunk_id: str
    position: int
    text: str
    score: float


_WORD = re.compile(r"\w+", re.UNICODE)
MAX_SEARCH_CHUNKS = 20_000


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def attachment_search(
    *, workspace_id: uuid.UUID, file_ids: Sequence[str], query: str, limit_count: int = 5
) -> list[Passage]:
    """The passages of the given attached documents that best match `query` (BM25 over
    the conversation's attachment index; exact lexical scoring, no model needed)."""
    terms = set(_words(query))
    if not terms:
        return []
    chunks = list(
        FileChunk.objects.filter(file__workspace_id=workspace_id, file_id__in=list(file_ids))
        .select_related("file")
        .only("id", "position", "text", "file__id", "file__name")[:MAX_SEARCH_CHUNKS]
    )
    if not chunks:
        return []
    docs = [Counter(_words(chunk.text)) for chunk in chunks]
    lengths = [sum(doc.values()) for doc in docs]
    average = sum(lengths) / len(lengths) or 1.0
    frequency = {t: sum(1 for doc in docs if t in doc) for t in terms}
    k1, b = 1.2, 0.75
    scored: list[tuple[float, int]] = []
    for index, doc in enumerate(docs):
        score = 0.0
        for term in terms:
            tf = doc.get(term, 0)
            if not tf:
                continue
            idf = math.log(1 + (len(docs) - frequency[term] + 0.5) / (frequency[term] + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[index] / average))
        if score > 0:
            scored.append((score, index))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [
        Passage(
            file_id=str(chunks[i].file.id),
            file_name=chunks[i].file.name,
            chunk_id=str(chunks[i].id),
            position=chunks[i].position,
            text=chunks[i].text,
            score=round(score, 4),
        )
        for score, i in scored[:limit_count]
    ]


# --- the agent file workspace (one per conversation) ------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def workspace_path_clean(path: Any) -> str:
    """A workspace path, normalised ("a/b.txt"), or WorkspacePathInvalid: relative, no
    "." or ".." segments, no backslashes or control characters, at most 255 characters
    and MAX_PATH_DEPTH segments. The path is only a name in the database (bytes are
    stored under ids), so no path can reach outside the workspace or follow a link."""
    if not isinstance(path, str) or not path.strip():
        raise WorkspacePathInvalid("Give the path as a non-empty string.", field="path")
    path = path.strip()
    if len(path) > MAX_NAME_CHARS:
        raise WorkspacePathInvalid(f"The path is longer than {MAX_NAME_CHARS} characters.")
    if path.startswith("/") or "\\" in path or _CONTROL.search(path) or ":" in path[:3]:
        raise WorkspacePathInvalid(
            f"{path!r} is not a relative path inside the workspace.", field="path"
        )
    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise WorkspacePathInvalid(
            f"{path!r} is not allowed: no '..', '.' or empty segments.", field="path"
        )
    if len(segments) > MAX_PATH_DEPTH:
        raise WorkspacePathInvalid(f"At most {MAX_PATH_DEPTH} folders deep.", field="path")
    return path


def workspace_files(*, conversation_id: uuid.UUID) -> list[File]:
    """The files of a conversation's agent workspace, by path."""
    return list(
        File.objects.filter(conversation_id=conversation_id, origin=FileOrigin.AGENT)
        .defer("text")
        .order_by("path")
    )


def workspace_file(*, conversation_id: uuid.UUID, path: Any) -> File:
    """One workspace file by its path. Raises WorkspacePathInvalid, FileNotFound."""
    clean = workspace_path_clean(path)
    found = (
        File.objects.filter(conversation_id=conversation_id, origin=FileOrigin.AGENT, path=clean)
        .defer("text")
        .first()
    )
    if found is None:
        raise FileNotFound(f"There is no file {clean!r} in the workspace.")
    return found


def workspace_write(
    *,
    workspace_id: uuid.UUID,
    owner_id: Any,
    conversation_id: uuid.UUID,
    path: Any,
    content: str,
) -> File:
    """Create or replace a text file of the conversation's agent workspace. Raises
    WorkspacePathInvalid, FileTooLarge (FILES_AGENT_MAX_FILE_BYTES), ValidationFailed
    (FILES_AGENT_MAX_FILES reached), WorkspaceStorageFull."""
    return workspace_write_bytes(
        workspace_id=workspace_id,
        owner_id=owner_id,
        conversation_id=conversation_id,
        path=path,
        data=content.encode("utf-8"),
        field="content",
    )


def workspace_write_bytes(
    *,
    workspace_id: uuid.UUID,
    owner_id: Any,
    conversation_id: uuid.UUID,
    path: Any,
    data: bytes,
    field: str = "path",
) -> File:
    """Create or replace a workspace file from bytes (what the code sandbox produced):
    UTF-8 text is a text document, as file_write makes; anything else is sniffed (an
    image, a PDF to parse, or other bytes). Same errors as workspace_write."""
    clean = workspace_path_clean(path)
    max_bytes = int(limit("FILES_AGENT_MAX_FILE_BYTES"))
    if len(data) > max_bytes:
        raise FileTooLarge(
            f"The content is {len(data)} bytes; a workspace file holds at most {max_bytes}.",
            field=field,
        )
    name = clean.rsplit("/", 1)[-1]
    text: str | None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and b"\x00" not in data:
        sniffed = Sniffed(kind=FileKind.DOCUMENT, content_type="text/plain", document_kind="text")
        try:
            found = sniff(name=name, data=data)
            if found.kind == FileKind.DOCUMENT:
                sniffed = found
        except (UnsupportedFileType, EmptyDocument):
            pass
    else:
        text = None
        try:
            sniffed = sniff(name=name, data=data)
        except (UnsupportedFileType, EmptyDocument):
            sniffed = Sniffed(kind=FileKind.OTHER, content_type="application/octet-stream")
    with transaction.atomic():
        existing = (
            File.objects.select_for_update()
            .filter(conversation_id=conversation_id, origin=FileOrigin.AGENT, path=clean)
            .first()
        )
        if existing is None:
            count = File.objects.filter(
                conversation_id=conversation_id, origin=FileOrigin.AGENT
            ).count()
            max_files = int(limit("FILES_AGENT_MAX_FILES"))
            if count >= max_files:
                raise ValidationFailed(
                    f"The workspace already holds {count} files, the limit.", field="path"
                )
            return _create(
                workspace_id=workspace_id,
                owner_id=owner_id,
                origin=FileOrigin.AGENT,
                name=name,
                path=clean,
                data=data,
                sniffed=sniffed,
                conversation_id=conversation_id,
                text=text,
            )
        _check_quota(workspace_id=workspace_id, adding=len(data), replacing=existing.size)
        old_key = existing.storage_key
        existing.storage_key = _store(workspace_id=workspace_id, file_id=existing.id, data=data)
        existing.size = len(data)
        existing.sha256 = hashlib.sha256(data).hexdigest()
        existing.content_type = sniffed.content_type
        existing.kind = sniffed.kind
        existing.status = _initial_status(sniffed, text)
        existing.error_message = ""
        existing.error_code = ""
        existing.text = text or ""
        existing.save()
        if text is not None:
            _index(file_id=existing.id, text=text)
        delete_bytes_after_commit([old_key])
    if existing.status == ParseStatus.PENDING:
        _enqueue_parse(existing.id)
    return existing


def workspace_delete(*, conversation_id: uuid.UUID, path: Any) -> None:
    """Delete a workspace file. Raises WorkspacePathInvalid, FileNotFound."""
    workspace_file(conversation_id=conversation_id, path=path).delete()

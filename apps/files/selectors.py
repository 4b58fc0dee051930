"""Reads of files. A file is visible to its owner in its workspace (files are as
private as the conversations they are attached to); anything else is 404."""

import uuid
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.db.models import QuerySet

from apps.files.choices import FileOrigin
from apps.files.exceptions import FileNotFound
from apps.files.models import File
from apps.users.actors import Actor


def file_list(
    *,
    actor: Actor,
    conversation_id: uuid.UUID | None = None,
    origin: str | None = None,
) -> QuerySet[File]:
    """The actor's files in their workspace, newest first; optionally those of one
    conversation and/or one origin (upload, agent)."""
    files = File.objects.filter(workspace_id=actor.workspace_id, owner_id=actor.user.pk).defer(
        "text"
    )
    if conversation_id is not None:
        files = files.filter(conversation_id=conversation_id)
    if origin is not None:
        files = files.filter(origin=origin)
    return files


def access_file(*, actor: Actor, file_id: uuid.UUID) -> File:
    """A file of the actor in their workspace. Raises FileNotFound (never 403)."""
    found = (
        File.objects.filter(id=file_id, workspace_id=actor.workspace_id, owner_id=actor.user.pk)
        .defer("text")
        .first()
    )
    if found is None:
        raise FileNotFound()
    return found


def agent_file_count(*, conversation_id: uuid.UUID) -> int:
    """How many files the agent workspace of a conversation holds."""
    return File.objects.filter(conversation_id=conversation_id, origin=FileOrigin.AGENT).count()


_DOWNLOAD_SALT = "files.download"


def file_download_token(*, file: File) -> str:
    """A signed token naming the file (and its current bytes), for a download link that
    needs no credentials; checked by `file_from_download_token`."""
    return signing.dumps({"f": str(file.id), "k": file.sha256[:16]}, salt=_DOWNLOAD_SALT)


def file_from_download_token(*, token: str) -> File:
    """The file a download token names, while it is valid (FILES_DOWNLOAD_URL_SECONDS,
    default 300) and the file unchanged. Raises FileNotFound otherwise."""
    max_age = int(getattr(settings, "FILES_DOWNLOAD_URL_SECONDS", 300))
    try:
        payload = signing.loads(token, salt=_DOWNLOAD_SALT, max_age=max_age)
        file_id = uuid.UUID(str(payload["f"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise FileNotFound("This download link is invalid or has expired.") from None
    found = File.objects.filter(id=file_id).defer("text").first()
    if found is None or found.sha256[:16] != payload.get("k"):
        raise FileNotFound("This download link is invalid or has expired.")
    return found


def files_written_by_agent(
    *, conversation_id: uuid.UUID, since: datetime, until: datetime | None = None
) -> QuerySet[File]:
    """The files an agent wrote (created or changed) in a conversation's file workspace
    between `since` and `until` (None: now), oldest first (e.g. during one run)."""
    files = File.objects.filter(
        conversation_id=conversation_id, origin=FileOrigin.AGENT, updated_at__gte=since
    ).defer("text")
    if until is not None:
        files = files.filter(updated_at__lte=until)
    return files.order_by("created_at")[:50]

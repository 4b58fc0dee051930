from django.conf import settings
from django.db import models

from apps.core.jobs import Job
from apps.core.models import BaseModel
from apps.files.choices import FileKind, FileOrigin, ParseStatus


class File(BaseModel, Job):
    """A file of a workspace: uploaded by a user, or written by an agent into the file
    workspace of a conversation. The bytes live in the "files" storage under
    `storage_key`; this row is everything else. A document's parse is a job of the core
    lifecycle (apps/core/jobs.py): `status` is its parse status (`none` for a file that
    is not a document), `error_message` why it failed."""

    RUNNING_STATUSES = frozenset({ParseStatus.PROCESSING})
    TERMINAL_STATUSES = frozenset({ParseStatus.READY, ParseStatus.FAILED})

    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="files")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="files"
    )
    origin = models.CharField(max_length=10, choices=FileOrigin.choices)
    # The conversation the file belongs to (files sits left of conversations in the app
    # order, so no foreign key): an agent's workspace file, or an upload once attached to
    # a message. Deleting the conversation deletes these files.
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    # The name as the user gave it (uploads) or the workspace path (agent files).
    name = models.CharField(max_length=255)
    path = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=FileKind.choices)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=300, unique=True)
    status = models.CharField(max_length=20, choices=ParseStatus.choices, default=ParseStatus.NONE)
    text = models.TextField(blank=True)  # the extracted text of a document

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "owner", "created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation_id", "path"],
                condition=models.Q(origin="agent"),
                name="files_one_agent_file_per_path",
            )
        ]

    def __str__(self) -> str:
        return self.path or self.name


class FileChunk(models.Model):
    """A passage of a document's text: the conversation-scoped index the
    `attachment_search` tool reads for attachments too long to give inline."""

    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    text = models.TextField()

    class Meta:
        ordering = ["file", "position"]
        constraints = [
            models.UniqueConstraint(fields=["file", "position"], name="files_chunk_position")
        ]

    def __str__(self) -> str:
        return f"{self.file_id}#{self.position}"

from django.db import models


class FileOrigin(models.TextChoices):
    UPLOAD = "upload", "Uploaded by a user"
    AGENT = "agent", "Written by an agent (conversation file workspace)"


class FileKind(models.TextChoices):
    IMAGE = "image", "Image"
    DOCUMENT = "document", "Document (text the agent can read)"
    OTHER = "other", "Other"


class ParseStatus(models.TextChoices):
    NONE = "none", "Not a document"
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


PARSE_WAITING = (ParseStatus.PENDING, ParseStatus.PROCESSING)

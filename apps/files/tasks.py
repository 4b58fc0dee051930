"""Celery entry points of the files app."""

import uuid

from celery import shared_task

from apps.files import services


@shared_task(name="files.parse", soft_time_limit=300, time_limit=330, acks_late=True)
def parse_file(file_id: str) -> str:
    """Extract a document's text (idempotent: claims pending files only)."""
    return services.file_parse(file_id=uuid.UUID(file_id))

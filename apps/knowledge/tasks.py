"""Celery entry points of the knowledge app: they take ids and call one service."""

import uuid

from celery import shared_task

from apps.knowledge import services


@shared_task(name="knowledge.ingest_document", acks_late=True, reject_on_worker_lost=True)
def ingest_document(document_id: str, generation: int) -> None:
    services.document_ingest(document_id=uuid.UUID(document_id), generation=generation)

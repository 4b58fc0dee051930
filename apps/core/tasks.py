from celery import shared_task

from apps.core.services import idempotency_purge_expired


@shared_task(name="core.purge_idempotency_records")
def purge_idempotency_records() -> int:
    return idempotency_purge_expired()

from celery import shared_task

from apps.core.jobs import jobs_sweep
from apps.core.services import idempotency_purge_expired


@shared_task(name="core.purge_idempotency_records")
def purge_idempotency_records() -> int:
    return idempotency_purge_expired()


@shared_task(name="core.sweep_stale_jobs")
def sweep_stale_jobs() -> dict[str, int]:
    """End (or retry) jobs of every registered kind whose worker stopped (beat)."""
    return jobs_sweep()

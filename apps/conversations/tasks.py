import uuid

from asgiref.sync import async_to_sync
from celery import shared_task

from apps.conversations import runner


@shared_task(name="conversations.drive")
def drive_task(conversation_id: str, resume_run_id: str | None = None) -> None:
    """Execute a conversation's queued runs (or resume a paused one) in this worker."""
    if resume_run_id:
        async_to_sync(runner.resume_paused_run)(uuid.UUID(resume_run_id))
    else:
        async_to_sync(runner.drive_conversation)(uuid.UUID(conversation_id))


@shared_task(name="conversations.interrupt_stale_runs")
def interrupt_stale_runs_task() -> int:
    """Mark runs of dead processes `interrupted` (beat, every minute)."""
    return async_to_sync(runner.interrupt_stale_runs)()

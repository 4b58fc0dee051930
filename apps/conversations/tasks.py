"""Celery entry points of conversations: background runs and the stale-run sweep."""

import uuid

from asgiref.sync import async_to_sync
from celery import shared_task

from apps.conversations.executor import executor
from apps.conversations.services import runs_interrupt_stale


@shared_task(name="conversations.drive")
def drive_task(conversation_id: str, resume_run_id: str | None = None) -> None:
    """Execute a conversation's queued runs (or resume a paused one) in this worker, on
    this task's event loop, through the process's executor."""
    conversation = uuid.UUID(conversation_id)
    if resume_run_id:
        async_to_sync(executor.drive_resumed)(uuid.UUID(resume_run_id), conversation)
    else:
        async_to_sync(executor.drive)(conversation)


def enqueue_drive(conversation_id: uuid.UUID, resume_run_id: uuid.UUID | None) -> None:
    """The executor's way to hand a conversation (or a paused run) to a worker."""
    drive_task.delay(str(conversation_id), str(resume_run_id) if resume_run_id else None)


@shared_task(name="conversations.interrupt_stale_runs")
def interrupt_stale_runs_task() -> int:
    """Mark runs of dead processes `interrupted` (beat, every minute)."""
    return runs_interrupt_stale()

"""Celery entrypoints of the workflows app: they take ids and call one service."""

from celery import shared_task

from apps.workflows.services import run_execute


@shared_task(name="workflows.execute_run")
def execute_run(run_id: str) -> None:
    """Drive one workflow run (idempotent: a run that is not queued is left alone)."""
    run_execute(run_id=run_id)

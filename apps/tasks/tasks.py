"""Celery entrypoints of the tasks app: they take ids and call one service."""

from celery import shared_task

from apps.tasks.services import execution_start, tasks_tick, webhook_deliver


@shared_task(name="tasks.tick")
def tick() -> int:
    """The one beat entry: sweep executions and fire every due task."""
    return tasks_tick()


@shared_task(name="tasks.execute")
def execute_task(execution_id: str) -> None:
    """Start one execution's run (idempotent: a redelivery finds nothing to claim)."""
    execution_start(execution_id=execution_id)


@shared_task(name="tasks.deliver_webhook")
def deliver_webhook(delivery_id: str) -> None:
    """One attempt of one webhook delivery (idempotent: only a due, pending one runs)."""
    webhook_deliver(delivery_id=delivery_id)

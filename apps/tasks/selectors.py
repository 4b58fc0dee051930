"""Reads of the tasks app. Every `access_*` raises a not-found error (404) for an object
of another workspace."""

import uuid
from typing import Any

from django.db.models import QuerySet

from apps.tasks.exceptions import ExecutionNotFound, TaskNotFound
from apps.tasks.models import ScheduledTask, TaskExecution
from apps.users.actors import Actor


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def task_list(*, actor: Actor, archived: bool = False) -> QuerySet[ScheduledTask]:
    """The workspace's tasks (archived ones when asked), newest first."""
    return ScheduledTask.objects.filter(
        workspace_id=actor.workspace_id, archived_at__isnull=not archived
    ).order_by("-created_at")


def access_task(*, actor: Actor, task_id: Any) -> ScheduledTask:
    """A task of the actor's workspace (archived included). Raises TaskNotFound."""
    pk = _uuid(task_id)
    task = (
        ScheduledTask.objects.filter(workspace_id=actor.workspace_id, pk=pk).first() if pk else None
    )
    if task is None:
        raise TaskNotFound()
    return task


def execution_list(*, task: ScheduledTask) -> QuerySet[TaskExecution]:
    """The history of a task the caller already accessed."""
    return TaskExecution.objects.filter(task=task).order_by("-created_at")


def access_execution(*, task: ScheduledTask, execution_id: Any) -> TaskExecution:
    """One execution of an accessed task. Raises ExecutionNotFound."""
    pk = _uuid(execution_id)
    execution = TaskExecution.objects.filter(task=task, pk=pk).first() if pk else None
    if execution is None:
        raise ExecutionNotFound()
    return execution

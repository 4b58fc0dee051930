"""Reads of the tasks app. Every `access_*` raises a not-found error (404) for an object
of another workspace."""

import uuid
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from apps.tasks.exceptions import (
    ExecutionNotFound,
    TaskNotFound,
    TriggerNotFound,
    WebhookDeliveryNotFound,
    WebhookEndpointNotFound,
)
from apps.tasks.models import (
    InboundTrigger,
    ScheduledTask,
    TaskExecution,
    WebhookDelivery,
    WebhookEndpoint,
)
from apps.users.actors import Actor
from apps.users.models import AuditEvent


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


def task_overview(*, actor: Actor) -> QuerySet[ScheduledTask]:
    """The workspace's tasks for a list page: with their agent and the status of their
    latest execution (`last_status`), in one query."""
    latest = TaskExecution.objects.filter(task=OuterRef("pk")).order_by("-created_at")
    return (
        task_list(actor=actor)
        .select_related("agent")
        .annotate(last_status=Subquery(latest.values("status")[:1]))
    )


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


def webhook_endpoint_list(*, actor: Actor) -> QuerySet[WebhookEndpoint]:
    """The workspace's webhook endpoints, newest first."""
    return WebhookEndpoint.objects.filter(workspace_id=actor.workspace_id).order_by("-created_at")


def access_webhook_endpoint(*, actor: Actor, endpoint_id: Any) -> WebhookEndpoint:
    """An endpoint of the actor's workspace. Raises WebhookEndpointNotFound."""
    pk = _uuid(endpoint_id)
    endpoint = webhook_endpoint_list(actor=actor).filter(pk=pk).first() if pk else None
    if endpoint is None:
        raise WebhookEndpointNotFound()
    return endpoint


def webhook_delivery_list(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """An accessed endpoint's deliveries, newest first."""
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .order_by("-created_at")
    )


def access_webhook_delivery(*, endpoint: WebhookEndpoint, delivery_id: Any) -> WebhookDelivery:
    """One delivery of an accessed endpoint, with its attempts. Raises
    WebhookDeliveryNotFound."""
    pk = _uuid(delivery_id)
    delivery = (
        webhook_delivery_list(endpoint=endpoint).prefetch_related("log").filter(pk=pk).first()
        if pk
        else None
    )
    if delivery is None:
        raise WebhookDeliveryNotFound()
    return delivery


def trigger_list(*, actor: Actor) -> QuerySet[InboundTrigger]:
    """The workspace's triggers, newest first."""
    return InboundTrigger.objects.filter(workspace_id=actor.workspace_id).order_by("-created_at")


def access_trigger(*, actor: Actor, trigger_id: Any) -> InboundTrigger:
    """A trigger of the actor's workspace. Raises TriggerNotFound."""
    pk = _uuid(trigger_id)
    trigger = trigger_list(actor=actor).filter(pk=pk).first() if pk else None
    if trigger is None:
        raise TriggerNotFound()
    return trigger


def trigger_calls(*, trigger: InboundTrigger, limit: int = 20) -> QuerySet[AuditEvent]:
    """The latest calls of an accessed trigger, as audited (outcome, IP, run), newest
    first."""
    return AuditEvent.objects.filter(
        workspace_id=trigger.workspace_id,
        action="trigger.call",
        target_type="trigger",
        target_id=str(trigger.id),
    ).order_by("-created_at")[:limit]

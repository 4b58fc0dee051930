"""Scheduled tasks and their executions, outbound webhooks and their deliveries, inbound
triggers. Executions and deliveries are jobs of the platform's one lifecycle
(`core.jobs.Job`: status, error code and message, attempts, heartbeat, timing)."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.crypto import EncryptedTextField
from apps.core.jobs import Job
from apps.core.models import BaseModel
from apps.tasks.choices import (
    ConversationMode,
    DeliveryStatus,
    ExecutionStatus,
    ExecutionTrigger,
    MissedPolicy,
    OverlapPolicy,
    ScheduleKind,
)


class ScheduledTask(BaseModel):
    """An agent run (with a prompt rendered per execution) or a workflow run (with fixed
    inputs) on a schedule, as its owner."""

    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    workflow = models.ForeignKey(
        "workflows.Workflow", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    workflow_inputs = models.JSONField(default=dict, blank=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    prompt_template = models.TextField()

    schedule_kind = models.CharField(max_length=16, choices=ScheduleKind.choices)
    run_at = models.DateTimeField(null=True, blank=True)
    cron = models.CharField(max_length=120, blank=True)
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)

    conversation_mode = models.CharField(
        max_length=8, choices=ConversationMode.choices, default=ConversationMode.NEW
    )
    conversation = models.ForeignKey(
        "conversations.Conversation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    overlap_policy = models.CharField(
        max_length=8, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP
    )
    missed_policy = models.CharField(
        max_length=16, choices=MissedPolicy.choices, default=MissedPolicy.RUN_ONCE
    )
    time_limit_seconds = models.PositiveIntegerField(default=15 * 60)
    max_retries = models.PositiveSmallIntegerField(default=2)
    retry_backoff_seconds = models.PositiveIntegerField(default=60)
    max_consecutive_failures = models.PositiveSmallIntegerField(default=3)

    enabled = models.BooleanField(default=True)
    paused_reason = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_run_at"],
                name="task_due_idx",
                condition=Q(enabled=True, archived_at__isnull=True),
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(agent__isnull=False) | Q(workflow__isnull=False),
                name="task_has_agent_or_workflow",
            )
        ]

    def __str__(self) -> str:
        return self.name


class TaskExecution(BaseModel, Job):
    """One execution of a task for one due time (unique per task and due time). A job:
    claimed by a worker that starts its run, settled when the run ends."""

    RUNNING_STATUSES: ClassVar[frozenset[str]] = frozenset({ExecutionStatus.RUNNING})
    TERMINAL_STATUSES: ClassVar[frozenset[str]] = frozenset(
        {ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.SKIPPED}
    )

    task = models.ForeignKey(ScheduledTask, on_delete=models.CASCADE, related_name="executions")
    due_at = models.DateTimeField()
    trigger = models.CharField(
        max_length=16, choices=ExecutionTrigger.choices, default=ExecutionTrigger.SCHEDULE
    )
    status = models.CharField(
        max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING
    )
    available_at = models.DateTimeField(help_text="Not started before (retry backoff).")
    run = models.ForeignKey(
        "conversations.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    conversation = models.ForeignKey(
        "conversations.Conversation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    workflow_run = models.ForeignKey(
        "workflows.WorkflowRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prompt = models.TextField(blank=True)
    answer = models.TextField(blank=True)
    variables = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "due_at"], name="task_execution_due_unique")
        ]
        indexes = [models.Index(fields=["status", "available_at"], name="task_exec_status_idx")]

    def __str__(self) -> str:
        return f"{self.task_id} @ {self.due_at:%Y-%m-%d %H:%M} ({self.status})"


class WebhookEndpoint(BaseModel):
    """A URL of a workspace that receives signed events it subscribed to."""

    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    event_types = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True)
    secret = EncryptedTextField()
    previous_secret = EncryptedTextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.url


class WebhookEvent(BaseModel):
    """An event of the outbox: written in the transaction of what caused it. Its id is
    the `webhook-id` receivers deduplicate on."""

    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=64)
    payload = models.JSONField()

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class WebhookDelivery(BaseModel, Job):
    """One event to one endpoint: a job attempted until delivered or given up."""

    RUNNING_STATUSES: ClassVar[frozenset[str]] = frozenset({DeliveryStatus.DELIVERING})
    TERMINAL_STATUSES: ClassVar[frozenset[str]] = frozenset(
        {DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED}
    )

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    next_attempt_at = models.DateTimeField()
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_due_idx")]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery, as it went."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    requested_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"


class InboundTrigger(BaseModel):
    """A URL with its own secret that starts a run of an agent, a task's execution, or a
    workflow run (the JSON body is its inputs)."""

    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    task = models.ForeignKey(
        ScheduledTask, null=True, blank=True, on_delete=models.CASCADE, related_name="triggers"
    )
    workflow = models.ForeignKey(
        "workflows.Workflow", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    prompt_template = models.TextField(blank=True)
    secret = EncryptedTextField()
    enabled = models.BooleanField(default=True)
    last_called_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(agent__isnull=False)
                | Q(task__isnull=False)
                | Q(workflow__isnull=False),
                name="trigger_has_a_target",
            )
        ]

    def __str__(self) -> str:
        return self.name

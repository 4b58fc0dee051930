"""Workflows: versioned graphs of typed steps, their runs (jobs of the platform's one
lifecycle, `core.jobs.Job`), each step's run, and each run's durable event log."""

from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.db import models

from apps.core.jobs import Job
from apps.core.models import BaseModel
from apps.workflows.choices import RunSource, RunStatus, StepStatus


class Workflow(BaseModel):
    """A workflow of a workspace: its draft definition, and which version is published."""

    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    definition = models.JSONField(default=dict, help_text="The draft (latest saved) definition.")
    version = models.PositiveIntegerField(default=0, help_text="The draft's version number.")
    published_version = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["workspace", "-created_at"], name="workflow_ws_idx")]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(BaseModel):
    """One saved definition of a workflow (every save is a version; never edited)."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="workflow_version_unique")
        ]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.number}"


class WorkflowRun(BaseModel, Job):
    """One execution of one version of a workflow with its inputs: a job claimed by a
    worker that drives its steps; its state (and every step's output) lives here."""

    RUNNING_STATUSES: ClassVar[frozenset[str]] = frozenset({RunStatus.RUNNING})
    TERMINAL_STATUSES: ClassVar[frozenset[str]] = frozenset(
        {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
    )

    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="+")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    version_number = models.PositiveIntegerField()
    definition = models.JSONField(help_text="The definition the run executes (a snapshot).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    source = models.CharField(max_length=16, choices=RunSource.choices, default=RunSource.API)
    status = models.CharField(
        max_length=24, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    error_step = models.CharField(max_length=64, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal(0))
    parent_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    depth = models.PositiveSmallIntegerField(default=0)
    event_seq = models.BigIntegerField(default=0, help_text="The last event cursor handed out.")

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="wfrun_ws_idx"),
            models.Index(fields=["workflow", "-created_at"], name="wfrun_wf_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} run {self.id} ({self.status})"


class WorkflowStepRun(models.Model):
    """One step of one run: its status, inputs, output or error, timing, usage."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=64)
    step_type = models.CharField(max_length=24)
    status = models.CharField(max_length=24, choices=StepStatus.choices, default=StepStatus.PENDING)
    inputs = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    executions = models.PositiveIntegerField(
        default=0, help_text="How many times the step's executor was called (all runs)."
    )
    reused = models.BooleanField(default=False, help_text="Output copied from an earlier run.")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal(0))
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "step_id"], name="wfstep_run_step_unique")
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.step_id} ({self.status})"


class WorkflowEvent(models.Model):
    """One event of a run's durable log (`cursor` is monotonic per run)."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="events")
    cursor = models.BigIntegerField()
    type = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "cursor"], name="wfevent_run_cursor_unique")
        ]
        ordering = ["run", "cursor"]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.cursor} {self.type}"

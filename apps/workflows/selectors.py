"""Reads of the workflows app. Every `access_*` raises a not-found error (404) for an
object of another workspace."""

import uuid
from typing import Any

from django.db.models import Count, OuterRef, QuerySet, Subquery

from apps.skills.choices import ToolSource
from apps.skills.models import Tool
from apps.users.actors import Actor
from apps.workflows.exceptions import (
    WorkflowNotFound,
    WorkflowRunNotFound,
    WorkflowVersionNotFound,
)
from apps.workflows.models import (
    Workflow,
    WorkflowEvent,
    WorkflowRun,
    WorkflowStepRun,
    WorkflowVersion,
)


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def workflow_list(*, actor: Actor) -> QuerySet[Workflow]:
    """The workspace's workflows, newest first."""
    return (
        Workflow.objects.filter(workspace_id=actor.workspace_id)
        .select_related("published_version")
        .order_by("-created_at")
    )


def workflow_overview(*, actor: Actor) -> QuerySet[Workflow]:
    """The workspace's workflows, newest first, each with `runs_count` (its top-level
    runs) and `last_run_status` (of its newest top-level run, None before any)."""
    top = WorkflowRun.objects.filter(workflow=OuterRef("pk"), parent_run__isnull=True)
    return workflow_list(actor=actor).annotate(
        runs_count=Subquery(
            top.order_by().values("workflow").annotate(n=Count("id")).values("n")[:1]
        ),
        last_run_status=Subquery(top.order_by("-created_at").values("status")[:1]),
    )


def access_workflow(*, actor: Actor, workflow_id: Any) -> Workflow:
    """A workflow of the actor's workspace. Raises WorkflowNotFound."""
    pk = _uuid(workflow_id)
    workflow = (
        Workflow.objects.filter(workspace_id=actor.workspace_id, pk=pk)
        .select_related("published_version")
        .first()
        if pk
        else None
    )
    if workflow is None:
        raise WorkflowNotFound()
    return workflow


def workflow_versions(*, workflow: Workflow) -> QuerySet[WorkflowVersion]:
    """The workflow's versions, newest first."""
    return WorkflowVersion.objects.filter(workflow=workflow).order_by("-number")


def access_version(*, workflow: Workflow, number: int) -> WorkflowVersion:
    """One version of the workflow. Raises WorkflowVersionNotFound."""
    version = WorkflowVersion.objects.filter(workflow=workflow, number=number).first()
    if version is None:
        raise WorkflowVersionNotFound()
    return version


def run_list(
    *,
    actor: Actor,
    workflow_id: uuid.UUID | None = None,
    status: str | None = None,
    source: str | None = None,
) -> QuerySet[WorkflowRun]:
    """The workspace's top-level runs (sub-workflow runs are reached from their step),
    newest first, filtered by workflow, status and source when given."""
    runs = WorkflowRun.objects.filter(workspace_id=actor.workspace_id, parent_run__isnull=True)
    if workflow_id is not None:
        runs = runs.filter(workflow_id=workflow_id)
    if status:
        runs = runs.filter(status=status)
    if source:
        runs = runs.filter(source=source)
    return runs.order_by("-created_at")


def access_run(*, actor: Actor, run_id: Any) -> WorkflowRun:
    """A run of the actor's workspace. Raises WorkflowRunNotFound."""
    pk = _uuid(run_id)
    run = WorkflowRun.objects.filter(workspace_id=actor.workspace_id, pk=pk).first() if pk else None
    if run is None:
        raise WorkflowRunNotFound()
    return run


def run_steps(*, run: WorkflowRun) -> QuerySet[WorkflowStepRun]:
    """The run's step runs, in creation order."""
    return WorkflowStepRun.objects.filter(run=run).order_by("id")


def run_events_after(*, run_id: uuid.UUID, after: int, limit: int = 500) -> list[WorkflowEvent]:
    """The run's logged events with a cursor above `after`, in order."""
    return list(
        WorkflowEvent.objects.filter(run_id=run_id, cursor__gt=after).order_by("cursor")[:limit]
    )


def workflow_tool(*, workflow: Workflow, for_update: bool = False) -> Tool | None:
    """The registry tool exposing the workflow (source `workflow`), if it has one."""
    qs = Tool.objects.filter(
        workspace_id=workflow.workspace_id,
        source=ToolSource.WORKFLOW,
        operation__workflow_id=str(workflow.id),
    )
    if for_update:
        qs = qs.select_for_update()
    return qs.first()

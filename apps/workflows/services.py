"""Writes of the workflows app: workflows and their versions, and the run service
(start, cancel, approve/reject, rerun, execute, the stale-run sweep).

Runs execute in Celery (`workflows.execute_run`, enqueued after commit); the engine
(`engine.drive`) keeps every step's state in the database, so a run whose worker died is
resumed by the stale sweep without repeating a completed step.
"""

import difflib
import json
import uuid
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.agents.models import Agent
from apps.core.exceptions import ValidationFailed
from apps.core.jobs import JobKind, job_enqueue, job_finish, job_release
from apps.knowledge.models import KnowledgeBase
from apps.providers.selectors import model_list
from apps.skills.choices import ToolSource
from apps.skills.models import Tool
from apps.skills.services import tool_name
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.services import audit_record
from apps.workflows import engine
from apps.workflows.choices import RunSource, RunStatus, StepStatus
from apps.workflows.definition import (
    Graph,
    Lookups,
    check_inputs,
    start_input_schema,
    validate_definition,
)
from apps.workflows.exceptions import (
    NotPublished,
    RunNotCancellable,
    RunNotFailed,
    RunNotWaiting,
    WorkflowToolNotFound,
)
from apps.workflows.models import Workflow, WorkflowRun, WorkflowStepRun, WorkflowVersion
from apps.workflows.selectors import access_version, workflow_tool

EXECUTE_TASK = "workflows.execute_run"
MAX_RUN_ATTEMPTS = 3
MAX_DEFINITION_BYTES = 512_000
EXPORT_FORMAT = "workflow/v1"


# --- definitions and versions --------------------------------------------------------------------


def workspace_lookups(*, actor: Actor) -> Lookups:
    """The ids a definition may name in the actor's workspace."""
    ws = actor.workspace_id
    return Lookups(
        agents={str(i) for i in Agent.objects.filter(workspace_id=ws).values_list("id", flat=True)},
        tools={str(i) for i in Tool.objects.filter(workspace_id=ws).values_list("id", flat=True)},
        knowledge_bases={
            str(i)
            for i in KnowledgeBase.objects.filter(workspace_id=ws).values_list("id", flat=True)
        },
        workflows={
            str(i) for i in Workflow.objects.filter(workspace_id=ws).values_list("id", flat=True)
        },
        models={str(i) for i in model_list(actor=actor).values_list("id", flat=True)},
    )


def definition_validate(*, actor: Actor, definition: Any) -> Graph:
    """The definition checked: shape, step types and fields, references, cycles,
    reachability, bounds, and that every agent, tool, knowledge base, model and
    sub-workflow it names is of the actor's workspace. Raises InvalidDefinition (one
    detail per problem, fields `steps.<id>.<field>`)."""
    if len(json.dumps(definition, default=str)) > MAX_DEFINITION_BYTES:
        raise ValidationFailed(
            f"The definition is larger than {MAX_DEFINITION_BYTES} bytes.", field="definition"
        )
    return validate_definition(definition, lookups=workspace_lookups(actor=actor))


def _save_version(*, actor: Actor, workflow: Workflow, definition: Any, note: str = "") -> None:
    number = workflow.version + 1
    WorkflowVersion.objects.create(
        workflow=workflow, number=number, definition=definition, created_by=actor.user, note=note
    )
    workflow.version = number
    workflow.definition = definition


def workflow_create(*, actor: Actor, name: str, description: str = "", definition: Any) -> Workflow:
    """A new workflow with its definition as version 1 (validated first). Raises
    InvalidDefinition, PermissionDenied below the member role."""
    actor.require_role(Role.MEMBER)
    definition_validate(actor=actor, definition=definition)
    with transaction.atomic():
        workflow = Workflow.objects.create(
            workspace=actor.workspace, created_by=actor.user, name=name, description=description
        )
        _save_version(actor=actor, workflow=workflow, definition=definition, note="created")
        workflow.save(update_fields=["version", "definition", "updated_at"])
        audit_record(
            actor_user=actor.user,
            workspace_id=actor.workspace_id,
            action="workflow.create",
            target_type="workflow",
            target_id=str(workflow.id),
        )
    return workflow


def workflow_update(
    *,
    actor: Actor,
    workflow: Workflow,
    name: str | None = None,
    description: str | None = None,
    definition: Any = None,
    note: str = "",
) -> Workflow:
    """Change a workflow; a new definition (validated) is saved as a new version (an
    unchanged one is not). Raises InvalidDefinition."""
    actor.require_role(Role.MEMBER)
    if definition is not None:
        definition_validate(actor=actor, definition=definition)
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(id=workflow.id)
        if name is not None:
            workflow.name = name
        if description is not None:
            workflow.description = description
        if definition is not None and definition != workflow.definition:
            _save_version(actor=actor, workflow=workflow, definition=definition, note=note)
        workflow.save()
    return workflow


def workflow_delete(*, actor: Actor, workflow: Workflow) -> None:
    """Delete a workflow with its versions and runs."""
    actor.require_role(Role.MEMBER)
    with transaction.atomic():
        Tool.objects.filter(
            workspace_id=workflow.workspace_id,
            source=ToolSource.WORKFLOW,
            operation__workflow_id=str(workflow.id),
        ).delete()
        workflow.delete()


def workflow_publish(*, actor: Actor, workflow: Workflow, number: int | None = None) -> Workflow:
    """Publish a version (default: the draft): runs started without a version use it.
    Raises WorkflowVersionNotFound."""
    actor.require_role(Role.MEMBER)
    version = access_version(workflow=workflow, number=number or workflow.version)
    with transaction.atomic():
        Workflow.objects.filter(id=workflow.id).update(published_version=version)
        workflow.refresh_from_db()
        if workflow_tool(workflow=workflow) is not None:
            workflow_tool_save(actor=actor, workflow=workflow)  # its schema follows
    return workflow


# --- the workflow as an agent's tool ------------------------------------------------------------


def workflow_tool_save(*, actor: Actor, workflow: Workflow) -> tuple[Tool, bool]:
    """Expose the published workflow as a registry tool (source `workflow`), or refresh
    the one it has: name and description from the workflow, parameters (JSON Schema) from
    the published start step's inputs. Returns (tool, created). Raises NotPublished."""
    actor.require_role(Role.MEMBER)
    if workflow.published_version_id is None:
        raise NotPublished()
    published = WorkflowVersion.objects.get(id=workflow.published_version_id)
    start_inputs = validate_definition(published.definition).start.get("inputs", {}) or {}
    description = (workflow.description or f"Run the workflow {workflow.name!r}.")[:4000]
    description += " Returns the workflow's outputs as JSON."
    with transaction.atomic():
        tool = workflow_tool(workflow=workflow, for_update=True)
        created = tool is None
        if tool is None:
            taken = set(
                Tool.objects.filter(workspace_id=workflow.workspace_id).values_list(
                    "name", flat=True
                )
            )
            tool = Tool(
                workspace_id=workflow.workspace_id,
                source=ToolSource.WORKFLOW,
                name=tool_name(workflow.name.lower(), taken=taken),
                operation={"workflow_id": str(workflow.id)},
            )
        tool.description = description
        tool.parameters = start_input_schema(start_inputs)
        tool.save()
        audit_record(
            actor_user=actor.user,
            workspace_id=actor.workspace_id,
            action="workflow.tool.create" if created else "workflow.tool.update",
            target_type="tool",
            target_id=str(tool.id),
        )
    return tool, created


def workflow_tool_delete(*, actor: Actor, workflow: Workflow) -> None:
    """Stop exposing the workflow as a tool (agents lose it). Raises WorkflowToolNotFound."""
    actor.require_role(Role.MEMBER)
    tool = workflow_tool(workflow=workflow)
    if tool is None:
        raise WorkflowToolNotFound()
    tool.delete()


def workflow_restore(*, actor: Actor, workflow: Workflow, number: int) -> Workflow:
    """Make an earlier version the draft again, as a new version (history is kept).
    Raises WorkflowVersionNotFound, InvalidDefinition (it names what no longer exists)."""
    version = access_version(workflow=workflow, number=number)
    return workflow_update(
        actor=actor, workflow=workflow, definition=version.definition, note=f"restored v{number}"
    )


def version_diff(*, before: WorkflowVersion, after: WorkflowVersion) -> dict[str, Any]:
    """What changed between two versions: steps added, removed and changed (with a
    unified diff of each changed step's JSON)."""

    def by_id(definition: Any) -> dict[str, Any]:
        steps = definition.get("steps", []) if isinstance(definition, dict) else []
        return {str(s.get("id")): s for s in steps if isinstance(s, dict)}

    old, new = by_id(before.definition), by_id(after.definition)
    changed = []
    for sid in sorted(set(old) & set(new)):
        if old[sid] != new[sid]:
            a = json.dumps(old[sid], indent=2, sort_keys=True).splitlines()
            b = json.dumps(new[sid], indent=2, sort_keys=True).splitlines()
            changed.append(
                {"step_id": sid, "diff": "\n".join(difflib.unified_diff(a, b, lineterm=""))}
            )
    return {
        "before": before.number,
        "after": after.number,
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": changed,
    }


def workflow_export(*, workflow: Workflow) -> dict[str, Any]:
    """The portable document of a workflow (its draft definition)."""
    return {
        "format": EXPORT_FORMAT,
        "name": workflow.name,
        "description": workflow.description,
        "definition": workflow.definition,
    }


def workflow_import(*, actor: Actor, document: Any) -> Workflow:
    """A new workflow from an exported document. Raises ValidationFailed (field
    `format`, `name`), InvalidDefinition (ids of another workspace are refused)."""
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise ValidationFailed(f"format must be {EXPORT_FORMAT!r}.", field="format")
    name = document.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValidationFailed("name is 1..200 characters.", field="name")
    return workflow_create(
        actor=actor,
        name=name,
        description=str(document.get("description", ""))[:5000],
        definition=document.get("definition"),
    )


# --- runs ---------------------------------------------------------------------------------------


def run_start(
    *,
    actor: Actor,
    workflow: Workflow,
    inputs: Any,
    version: int | None = None,
    source: str = RunSource.API,
) -> WorkflowRun:
    """A queued run of the published version (or of `version`) with `inputs` (checked
    against the start step), executed by a worker after commit. Raises NotPublished,
    WorkflowVersionNotFound, InvalidInputs (fields `inputs.<name>`)."""
    actor.require_role(Role.MEMBER)
    if version is not None:
        chosen = access_version(workflow=workflow, number=version)
    elif workflow.published_version_id is not None:
        chosen = WorkflowVersion.objects.get(id=workflow.published_version_id)
    else:
        raise NotPublished()
    graph = validate_definition(chosen.definition)
    checked = check_inputs(graph, inputs)
    with transaction.atomic():
        run = WorkflowRun.objects.create(
            workspace_id=workflow.workspace_id,
            workflow=workflow,
            version_number=chosen.number,
            definition=chosen.definition,
            created_by=actor.user,
            source=source,
            inputs=checked,
            heartbeat_at=timezone.now(),
        )
        WorkflowStepRun.objects.bulk_create(
            WorkflowStepRun(run=run, step_id=sid, step_type=step["type"])
            for sid, step in graph.steps.items()
        )
        job_enqueue(EXECUTE_TASK, str(run.id))
    return run


def run_execute(*, run_id: uuid.UUID | str) -> None:
    """Drive a queued run to its end or to an approval (what the Celery task calls).
    Idempotent: a run that is not queued is left alone."""
    async_to_sync(engine.drive)(uuid.UUID(str(run_id)))


def run_cancel(*, actor: Actor, run: WorkflowRun) -> WorkflowRun:
    """Cancel a run that has not ended (its worker stops at its next step boundary).
    Raises RunNotCancellable."""
    actor.require_role(Role.MEMBER)
    with transaction.atomic():
        done = job_finish(
            WorkflowRun,
            run.id,
            status=RunStatus.CANCELLED,
            code="cancelled",
            reason=f"Cancelled by {actor.user.email}.",
        )
        if not done:
            raise RunNotCancellable()
        WorkflowStepRun.objects.filter(
            run=run,
            status__in=[StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING_FOR_APPROVAL],
        ).update(status=StepStatus.CANCELLED, finished_at=timezone.now())
        engine.run_finished(run.id)
    run.refresh_from_db()
    return run


def run_decide(
    *, actor: Actor, run: WorkflowRun, approved: bool, step_id: str | None = None, comment: str = ""
) -> WorkflowRun:
    """Approve or reject the run's waiting approval step (`step_id`: which one when
    several wait). Approved: the step succeeds (`{"approved": true, ...}`) and the run is
    queued again. Rejected: the step fails and so does the run (unless the step says
    `continue_on_error`, then it continues with `approved: false`). Raises RunNotWaiting."""
    actor.require_role(Role.MEMBER)
    with transaction.atomic():
        waiting = WorkflowStepRun.objects.select_for_update().filter(
            run=run, status=StepStatus.WAITING_FOR_APPROVAL
        )
        if step_id:
            waiting = waiting.filter(step_id=step_id)
        step = waiting.order_by("id").first()
        fresh = WorkflowRun.objects.get(id=run.id)
        if step is None or fresh.status != RunStatus.WAITING_FOR_APPROVAL:
            raise RunNotWaiting()
        graph = validate_definition(fresh.definition)
        continues = bool(graph.steps[step.step_id].get("continue_on_error"))
        output = {
            "approved": approved,
            "comment": comment[:2000],
            "decided_by": actor.user.email,
            "message": (step.output or {}).get("message", ""),
        }
        now = timezone.now()
        status = StepStatus.SUCCEEDED if approved or continues else StepStatus.FAILED
        WorkflowStepRun.objects.filter(id=step.id).update(
            status=status,
            output=output,
            decided_by=actor.user,
            finished_at=now,
            error_code="" if status == StepStatus.SUCCEEDED else "approval_rejected",
            error_message="" if status == StepStatus.SUCCEEDED else "The approval was rejected.",
        )
        engine.emit(
            run.id,
            engine.WorkflowStepFinished(
                step_id=step.step_id,
                step_type=step.step_type,
                status=status,
                usage=engine.Usage(0, 0),
                error=None
                if status == StepStatus.SUCCEEDED
                else engine.RunError(
                    code="approval_rejected", message="The approval was rejected."
                ),
            ),
        )
        if status == StepStatus.FAILED:
            job_finish(
                WorkflowRun,
                run.id,
                status=RunStatus.FAILED,
                code="approval_rejected",
                reason=f"Step {step.step_id}: rejected by {actor.user.email}.",
                error_step=step.step_id,
            )
            WorkflowStepRun.objects.filter(run=run, status=StepStatus.PENDING).update(
                status=StepStatus.CANCELLED
            )
            engine.run_finished(run.id)
        elif not WorkflowStepRun.objects.filter(
            run=run, status=StepStatus.WAITING_FOR_APPROVAL
        ).exists():
            job_release(
                WorkflowRun,
                run.id,
                status=RunStatus.QUEUED,
                reason="Approved; queued to continue.",
                from_statuses=[RunStatus.WAITING_FOR_APPROVAL],
            )
            job_enqueue(EXECUTE_TASK, str(run.id))
    run.refresh_from_db()
    return run


def run_rerun(*, actor: Actor, run: WorkflowRun) -> WorkflowRun:
    """A new run of a failed or cancelled run's definition and inputs that starts from
    where it failed: every step that succeeded (or was skipped) keeps its recorded
    output (`reused`), the rest execute. Raises RunNotFailed."""
    actor.require_role(Role.MEMBER)
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise RunNotFailed()
    with transaction.atomic():
        new = WorkflowRun.objects.create(
            workspace_id=run.workspace_id,
            workflow_id=run.workflow_id,
            version_number=run.version_number,
            definition=run.definition,
            created_by=actor.user,
            source=RunSource.RERUN,
            inputs=run.inputs,
            rerun_of=run,
            heartbeat_at=timezone.now(),
        )
        rows = []
        for old in WorkflowStepRun.objects.filter(run=run).order_by("id"):
            keep = old.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)
            rows.append(
                WorkflowStepRun(
                    run=new,
                    step_id=old.step_id,
                    step_type=old.step_type,
                    status=old.status if keep else StepStatus.PENDING,
                    inputs=old.inputs if keep else {},
                    output=old.output if keep else None,
                    reused=keep,
                    started_at=old.started_at if keep else None,
                    finished_at=old.finished_at if keep else None,
                )
            )
        WorkflowStepRun.objects.bulk_create(rows)
        job_enqueue(EXECUTE_TASK, str(new.id))
    return new


# --- the stale sweep ------------------------------------------------------------------------


def _retry_stale(run: WorkflowRun) -> bool:
    """A running run without a heartbeat lost its worker: queue it again (its finished
    steps are kept) while attempts remain; else the sweep fails it."""
    if run.attempts >= MAX_RUN_ATTEMPTS:
        return False
    with transaction.atomic():
        released = job_release(
            WorkflowRun,
            run.id,
            status=RunStatus.QUEUED,
            code="worker_lost",
            reason="The worker stopped; the run resumes where it was.",
            where=Q(heartbeat_at=run.heartbeat_at),
        )
        if released:
            job_enqueue(EXECUTE_TASK, str(run.id))
    return released


def _ended_by_sweep(run: WorkflowRun) -> None:
    with transaction.atomic():
        engine.run_finished(run.id)


def _stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "WORKFLOW_STALE_SECONDS", 60))


RUN_JOBS = JobKind(
    name="workflows.run",
    model=WorkflowRun,
    stale_after=_stale_after,
    stale_status=RunStatus.FAILED,
    stale_reason="The worker running the workflow stopped, on every attempt.",
    queued_statuses=frozenset({RunStatus.QUEUED}),
    queued_after=lambda: _stale_after() * 5,
    queued_reason="The run was never picked up by a worker.",
    retry=_retry_stale,
    on_ended=_ended_by_sweep,
)

"""A published workflow as an agent's tool.

The tool is a registry row of apps.skills (`Tool`, source `workflow`, `operation`
`{"workflow_id": ...}`), so it is attached to agents like any tool. Skills cannot import
this app (the import contracts), so `WorkflowsConfig.ready` registers `executor_for` in
`apps.core.tools` and skills builds the row's executor through it.

A call starts a run (source `agent_tool`) of the published version with the arguments as
inputs, as the tool's user, and waits for it (at most `WORKFLOW_TOOL_WAIT_SECONDS`, below
the engine's tool timeout): its outputs are the result; a run waiting for approval is a
result saying so with the run id; a failed run is a tool error naming the step and reason.
"""

import asyncio
import json
import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.core.exceptions import ApplicationError
from apps.core.tools import ToolContext, ToolExecutor, ToolResult
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.models import Membership
from apps.workflows.choices import RunSource, RunStatus, StepStatus
from apps.workflows.models import Workflow, WorkflowRun, WorkflowStepRun
from apps.workflows.services import run_start

RESULT_MAX_CHARS = 50_000


def wait_seconds() -> float:
    """How long a call waits for its run: the setting, else a little under the engine's
    tool timeout (so the answer is ours, not the engine's generic timeout)."""
    configured = getattr(settings, "WORKFLOW_TOOL_WAIT_SECONDS", None)
    if configured is not None:
        return float(configured)
    return max(1.0, float(getattr(settings, "AGENT_TOOL_TIMEOUT_SECONDS", 120)) - 5.0)


def _start(workflow_id: str, args: dict[str, Any], ctx: ToolContext) -> WorkflowRun | str:
    """The started run, or why it could not start (a message for the model)."""
    workflow = Workflow.objects.filter(id=workflow_id, workspace_id=ctx.workspace_id).first()
    if workflow is None:
        return "The workflow of this tool no longer exists."
    if ctx.user_id is None:
        return "The workflow can only run for a member of its workspace."
    membership = (
        Membership.objects.filter(user_id=ctx.user_id, workspace_id=ctx.workspace_id)
        .select_related("user", "workspace")
        .first()
    )
    if membership is None or not membership.user.is_active:
        return "The workflow can only run for a member of its workspace."
    actor = Actor(user=membership.user, workspace=membership.workspace, role=Role(membership.role))
    try:
        return run_start(actor=actor, workflow=workflow, inputs=args, source=RunSource.AGENT_TOOL)
    except ApplicationError as exc:
        details = "; ".join(f"{d['field']}: {d['message']}" for d in exc.details)
        return f"{exc.code}: {exc.message}" + (f" ({details})" if details else "")


def _waiting_message(run_id: uuid.UUID) -> str:
    step = (
        WorkflowStepRun.objects.filter(run_id=run_id, status=StepStatus.WAITING_FOR_APPROVAL)
        .order_by("id")
        .first()
    )
    if step is None:
        return ""
    return f" at step {step.step_id}: {(step.output or {}).get('message', '')}".rstrip(": ")


def _outcome(run: WorkflowRun) -> ToolResult:
    data = {"workflow_run_id": str(run.id), "status": run.status}
    if run.status == RunStatus.SUCCEEDED:
        text = json.dumps(run.outputs, ensure_ascii=False, default=str)
        if len(text) > RESULT_MAX_CHARS:
            text = text[:RESULT_MAX_CHARS] + "\n[truncated]"
        return ToolResult(content=text, data={**data, "outputs": run.outputs})
    if run.status == RunStatus.WAITING_FOR_APPROVAL:
        return ToolResult(
            content=f"The workflow run {run.id} is waiting for a member's approval"
            f"{_waiting_message(run.id)}. It continues once approved; its outputs are not "
            "available yet.",
            data=data,
        )
    if run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        where = f" at step {run.error_step}" if run.error_step else ""
        reason = run.error_message or run.error_code or run.status
        reason = reason.removeprefix(f"Step {run.error_step}: ")
        return ToolResult(
            content=f"The workflow run {run.id} {run.status}{where}: {reason}",
            is_error=True,
            data={**data, "step_id": run.error_step, "code": run.error_code},
        )
    return ToolResult(
        content=f"The workflow run {run.id} is still {run.status} after {wait_seconds():g} "
        "seconds; its outputs are not available yet.",
        is_error=True,
        data=data,
    )


def executor_for(operation: dict[str, Any]) -> ToolExecutor:
    """The executor of a workflow tool row (registered in apps.core.tools)."""
    workflow_id = str(operation.get("workflow_id", ""))

    async def run(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        started = await sync_to_async(_start)(workflow_id, args, ctx)
        if isinstance(started, str):
            return ToolResult(content=started, is_error=True)
        deadline = time.monotonic() + wait_seconds()
        pause = 0.05
        while True:
            run_row = await WorkflowRun.objects.aget(id=started.id)
            if run_row.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
                break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)
        return await sync_to_async(_outcome)(run_row)

    return run

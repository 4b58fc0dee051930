"""The workflow engine: drives one run's steps in a worker.

Durable by construction: every step's status, inputs and output live in the database
(`WorkflowStepRun`), written as the step starts and ends. A worker that claims a run
(`drive`) loads what is recorded, reuses every finished step's output (a completed step
is never executed again), and executes what is left: a step that was running when its
worker died runs again (at least once). Independent steps run concurrently on the
worker's event loop (asyncio); database work runs on the calling thread
(`sync_to_async(thread_sensitive=True)`), so one connection serves the whole run.

Step executors get the step's resolved fields (its templates rendered against
`{"inputs", "steps", "run"}`) and return a `StepOutcome`, raise `StepFailed` (a readable
failure), or `WaitForApproval` (an approval step with no decision yet).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import jsonschema
from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.agents.exceptions import AgentNotFound
from apps.agents.selectors import access_agent
from apps.conversations.choices import TERMINAL_STATUSES as CONV_TERMINAL
from apps.conversations.choices import ConversationSource
from apps.conversations.choices import RunStatus as ConvRunStatus
from apps.conversations.models import Run
from apps.conversations.services import conversation_create, message_send
from apps.core.events import (
    OutboundEvent,
    RunError,
    Usage,
    WorkflowApprovalRequired,
    WorkflowEvent,
    WorkflowRunCompletedNotice,
    WorkflowRunFailedNotice,
    WorkflowRunFinished,
    WorkflowRunRequiresActionNotice,
    WorkflowRunStarted,
    WorkflowStepFinished,
    WorkflowStepStarted,
)
from apps.core.exceptions import ApplicationError
from apps.core.jobs import job_claim, job_finish, job_heartbeat, job_release
from apps.core.outbound import afetch
from apps.core.outbox import outbox_emit
from apps.core.tools import ToolContext
from apps.knowledge.selectors import format_hits, knowledge_search
from apps.providers.services import chat_complete, usage_context
from apps.skills.selectors import tool_specs_for
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.models import Membership
from apps.workflows.choices import STEP_DONE, RunSource, RunStatus, StepStatus, StepType
from apps.workflows.definition import (
    DEFAULT_TIMEOUT_SECONDS,
    LOOP_MAX_ITEMS,
    MAX_SUB_WORKFLOW_DEPTH,
    ExpressionError,
    Graph,
    check_inputs,
    evaluate,
    truthy,
    validate_definition,
)
from apps.workflows.models import Workflow, WorkflowRun, WorkflowStepRun
from apps.workflows.models import WorkflowEvent as EventRow

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _db(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`func` run on the run's thread (database work), awaited from the event loop."""
    return sync_to_async(func, thread_sensitive=True)


HEARTBEAT_SECONDS = 2.0
AGENT_POLL_SECONDS = 0.2
# Fields of a step that are not templates (ids, numbers, policies, nested bodies).
_LITERAL_FIELDS = {
    "id",
    "type",
    "name",
    "after",
    "timeout_seconds",
    "retry",
    "continue_on_error",
    "then",
    "else",
    "body",
    "max_items",
    "output_schema",
    "inputs_schema",
}


class StepFailed(Exception):
    """A step's readable failure (`code` stable, `message` for people)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class WaitForApproval(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class StepOutcome:
    output: Any
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)


@dataclass
class RunContext:
    run: WorkflowRun
    actor: Actor
    graph: Graph
    status: dict[str, str]
    outputs: dict[str, Any]
    decisions: dict[str, Any]  # approval steps already decided: their output
    failure: tuple[str, str, str] | None = None  # (step id, code, message)
    steps_meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    def variables(self, **extra: Any) -> dict[str, Any]:
        steps = {
            sid: {"output": self.outputs.get(sid), "status": self.status.get(sid)}
            for sid in self.graph.steps
        }
        return {
            "inputs": self.run.inputs,
            "steps": steps,
            "run": {"id": str(self.run.id), "source": self.run.source},
            **extra,
        }


Executor = Callable[[RunContext, dict[str, Any], dict[str, Any]], Awaitable[StepOutcome]]


# --- events and the log ------------------------------------------------------------------------


def emit(run_id: uuid.UUID, event: WorkflowEvent) -> int:
    """Append `event` to the run's durable log with the run's next cursor. Returns it."""
    with transaction.atomic():
        WorkflowRun.objects.filter(id=run_id).update(event_seq=F("event_seq") + 1)
        cursor = WorkflowRun.objects.filter(id=run_id).values_list("event_seq", flat=True).get()
        EventRow.objects.create(run_id=run_id, cursor=cursor, type=event.type, data=event.to_dict())
    return cursor


def _usage(run: WorkflowRun) -> Usage:
    return Usage(input_tokens=run.input_tokens, output_tokens=run.output_tokens)


def notice_for(run: WorkflowRun, *, step_id: str = "", message: str = "") -> OutboundEvent | None:
    """The webhook event of a run in its current status (None: nothing to tell)."""
    common: dict[str, Any] = {
        "workflow_id": run.workflow_id,
        "workflow_run_id": run.id,
        "workflow_version": run.version_number,
        "source": str(run.source),
        "status": str(run.status),
        "usage": _usage(run),
    }
    if run.status == RunStatus.SUCCEEDED:
        return WorkflowRunCompletedNotice(**common, outputs=run.outputs)
    if run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        error = RunError(code=run.error_code, message=run.error_message)
        return WorkflowRunFailedNotice(**common, step_id=run.error_step, error=error)
    if run.status == RunStatus.WAITING_FOR_APPROVAL:
        return WorkflowRunRequiresActionNotice(**common, step_id=step_id, message=message)
    return None


def run_finished(run_id: uuid.UUID) -> None:
    """After a run's terminal transition (in its transaction): the last event of its
    log and its webhook event."""
    run = WorkflowRun.objects.get(id=run_id)
    error = RunError(code=run.error_code, message=run.error_message) if run.error_code else None
    emit(
        run.id,
        WorkflowRunFinished(
            status=str(run.status),
            outputs=run.outputs,
            usage=_usage(run),
            error_step=run.error_step or None,
            error=error,
        ),
    )
    if run.parent_run_id is None:
        notice = notice_for(run)
        if notice is not None:
            outbox_emit(notice, workspace_id=run.workspace_id)


# --- database work of a run (sync, on the run's thread) ------------------------------------------


def actor_for(run: WorkflowRun) -> Actor | None:
    """The run's creator acting in its workspace (None: no longer a member who may run)."""
    user = run.created_by
    membership = (
        Membership.objects.filter(user=user, workspace_id=run.workspace_id)
        .select_related("workspace")
        .first()
    )
    if not user.is_active or membership is None or not Role(membership.role).at_least(Role.MEMBER):
        return None
    return Actor(user=user, workspace=membership.workspace, role=Role(membership.role))


def _claim(run_id: uuid.UUID) -> bool:
    claimed = job_claim(
        WorkflowRun, run_id, from_statuses=[RunStatus.QUEUED], status=RunStatus.RUNNING
    )
    if claimed:
        # A step left running by a dead worker runs again (at least once); its recorded
        # executions count keeps the history.
        WorkflowStepRun.objects.filter(run_id=run_id, status=StepStatus.RUNNING).update(
            status=StepStatus.PENDING
        )
    return claimed


def _load(run_id: uuid.UUID) -> RunContext | None:
    run = WorkflowRun.objects.select_related("created_by").get(id=run_id)
    actor = actor_for(run)
    if actor is None:
        _finish(run.id, RunStatus.FAILED, "owner_lost_access", "The run's owner lost access.")
        return None
    graph = validate_definition(run.definition)
    status: dict[str, str] = {}
    outputs: dict[str, Any] = {}
    decisions: dict[str, Any] = {}
    rows = {r.step_id: r for r in WorkflowStepRun.objects.filter(run_id=run_id)}
    missing = [
        WorkflowStepRun(run_id=run_id, step_id=sid, step_type=step["type"])
        for sid, step in graph.steps.items()
        if sid not in rows
    ]
    WorkflowStepRun.objects.bulk_create(missing)
    for sid in graph.steps:
        row = rows.get(sid)
        status[sid] = row.status if row else StepStatus.PENDING
        if row and row.status == StepStatus.SUCCEEDED:
            outputs[sid] = row.output
        if row and row.status == StepStatus.FAILED:
            outputs[sid] = row.output
    emit(
        run.id,
        WorkflowRunStarted(
            workflow_id=run.workflow_id, version=run.version_number, attempt=run.attempts
        ),
    )
    return RunContext(
        run=run, actor=actor, graph=graph, status=status, outputs=outputs, decisions=decisions
    )


def _step_started(run_id: uuid.UUID, step: dict[str, Any], inputs: Any, attempt: int) -> bool:
    now = timezone.now()
    changed = WorkflowStepRun.objects.filter(
        run_id=run_id,
        step_id=step["id"],
        status__in=[StepStatus.PENDING, StepStatus.RUNNING],
        run__status=RunStatus.RUNNING,
    ).update(
        status=StepStatus.RUNNING,
        inputs=inputs,
        attempts=attempt,
        executions=F("executions") + 1,
        started_at=now,
        finished_at=None,
    )
    if changed:
        emit(
            run_id,
            WorkflowStepStarted(step_id=step["id"], step_type=step["type"], attempt=attempt),
        )
    return bool(changed)


def _step_finished(
    run_id: uuid.UUID,
    step: dict[str, Any],
    *,
    status: str,
    outcome: StepOutcome | None = None,
    code: str = "",
    message: str = "",
    output: Any = None,
) -> bool:
    outcome = outcome or StepOutcome(output=output)
    with transaction.atomic():
        changed = WorkflowStepRun.objects.filter(
            run_id=run_id,
            step_id=step["id"],
            status__in=[StepStatus.PENDING, StepStatus.RUNNING],
            run__status=RunStatus.RUNNING,
        ).update(
            status=status,
            output=outcome.output,
            error_code=code,
            error_message=message[:2000],
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            cost=outcome.cost,
            finished_at=timezone.now(),
        )
        if not changed:
            return False
        if outcome.input_tokens or outcome.output_tokens or outcome.cost:
            WorkflowRun.objects.filter(id=run_id).update(
                input_tokens=F("input_tokens") + outcome.input_tokens,
                output_tokens=F("output_tokens") + outcome.output_tokens,
                cost=F("cost") + outcome.cost,
            )
        error = RunError(code=code, message=message) if code else None
        emit(
            run_id,
            WorkflowStepFinished(
                step_id=step["id"],
                step_type=step["type"],
                status=status,
                usage=Usage(outcome.input_tokens, outcome.output_tokens),
                error=error,
            ),
        )
    return True


def _step_waiting(run_id: uuid.UUID, step: dict[str, Any], message: str) -> None:
    with transaction.atomic():
        changed = WorkflowStepRun.objects.filter(
            run_id=run_id, step_id=step["id"], status=StepStatus.RUNNING
        ).update(status=StepStatus.WAITING_FOR_APPROVAL, output={"message": message})
        if changed:
            emit(run_id, WorkflowApprovalRequired(step_id=step["id"], message=message))


def _finish(
    run_id: uuid.UUID,
    status: str,
    code: str = "",
    reason: str = "",
    *,
    step_id: str = "",
    outputs: dict[str, Any] | None = None,
) -> bool:
    with transaction.atomic():
        done = job_finish(
            WorkflowRun,
            run_id,
            status=status,
            code=code,
            reason=reason,
            from_statuses=[RunStatus.RUNNING],
            error_step=step_id,
            outputs=outputs or {},
        )
        if done:
            WorkflowStepRun.objects.filter(
                run_id=run_id, status__in=[StepStatus.PENDING, StepStatus.RUNNING]
            ).update(
                status=StepStatus.CANCELLED if status == RunStatus.CANCELLED else StepStatus.PENDING
            )
            run_finished(run_id)
    return done


def _wait(run_id: uuid.UUID, step_id: str, message: str) -> bool:
    with transaction.atomic():
        released = job_release(
            WorkflowRun,
            run_id,
            status=RunStatus.WAITING_FOR_APPROVAL,
            code="approval_required",
            reason=f"Step {step_id} waits for an approval.",
        )
        if released:
            run = WorkflowRun.objects.get(id=run_id)
            if run.parent_run_id is None:
                notice = notice_for(run, step_id=step_id, message=message)
                if notice is not None:
                    outbox_emit(notice, workspace_id=run.workspace_id)
    return released


# --- the executors ----------------------------------------------------------------------------


async def _start(ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]) -> StepOutcome:
    return StepOutcome(output=dict(ctx.run.inputs))


async def _template(ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]) -> StepOutcome:
    if "value" in resolved:
        return StepOutcome(output=resolved["value"])
    return StepOutcome(output={"text": str(resolved.get("template", ""))})


async def _condition(
    ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]
) -> StepOutcome:
    result = truthy(resolved["if"])
    return StepOutcome(output={"result": result, "branch": "then" if result else "else"})


async def _end(ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]) -> StepOutcome:
    outputs = resolved.get("outputs") or {}
    if not isinstance(outputs, dict):
        raise StepFailed("invalid_outputs", "outputs is an object of templates.")
    return StepOutcome(output=outputs)


def _json_from(text: str) -> Any:
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`")
        body = body.split("\n", 1)[1] if "\n" in body else ""
    return json.loads(body)


async def _model_call(
    ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]
) -> StepOutcome:
    messages: list[dict[str, Any]] = []
    if resolved.get("system"):
        messages.append({"role": "system", "content": str(resolved["system"])})
    messages.append({"role": "user", "content": str(resolved["prompt"])})
    model_id = uuid.UUID(str(step["model_id"])) if step.get("model_id") else None
    result = await chat_complete(
        workspace_id=ctx.run.workspace_id,
        model_id=model_id,
        messages=messages,
        temperature=step.get("temperature"),
        max_tokens=step.get("max_tokens"),
        usage=usage_context(actor=ctx.actor),
    )
    output: dict[str, Any] = {"text": result.text}
    schema = step.get("output_schema")
    if schema:
        try:
            value = _json_from(result.text)
            jsonschema.validate(value, schema)
        except json.JSONDecodeError as exc:
            raise StepFailed("invalid_model_output", f"The answer is not JSON: {exc}.") from exc
        except jsonschema.ValidationError as exc:
            raise StepFailed(
                "invalid_model_output", f"The answer does not match output_schema: {exc.message}"
            ) from exc
        except jsonschema.SchemaError as exc:
            raise StepFailed("invalid_output_schema", exc.message) from exc
        output["json"] = value
    return StepOutcome(
        output=output,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
    )


def _retrieve_sync(ctx: RunContext, resolved: dict[str, Any], top_k: int) -> dict[str, Any]:
    ids = [uuid.UUID(str(x)) for x in resolved["knowledge_base_ids"]]
    hits = knowledge_search(
        workspace_id=ctx.run.workspace_id,
        knowledge_base_ids=ids,
        query=str(resolved["query"]),
        top_k=top_k,
        usage=usage_context(actor=ctx.actor),
    )
    chunks = [
        {
            "content": h.content,
            "document_id": str(h.document_id),
            "document_name": h.document_name,
            "knowledge_base_id": str(h.knowledge_base_id),
            "chunk_id": str(h.chunk_id),
            "score": h.score,
        }
        for h in hits
    ]
    return {"chunks": chunks, "text": format_hits(hits), "count": len(chunks)}


async def _retrieval(
    ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]
) -> StepOutcome:
    output = await _db(_retrieve_sync)(ctx, resolved, int(step.get("top_k", 5)))
    return StepOutcome(output=output)


async def _tool_call(
    ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]
) -> StepOutcome:
    specs = await _db(tool_specs_for)(
        workspace_id=ctx.run.workspace_id, tool_ids=[uuid.UUID(str(step["tool_id"]))]
    )
    if not specs:
        raise StepFailed("tool_unavailable", f"The tool {step['tool_id']} is disabled or gone.")
    arguments = resolved.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise StepFailed("invalid_arguments", "arguments is an object.")
    context = ToolContext(workspace_id=ctx.run.workspace_id, user_id=ctx.actor.user.pk)
    result = await specs[0].execute(arguments, context)
    if result.is_error:
        raise StepFailed("tool_error", result.content[:2000])
    return StepOutcome(output={"content": result.content, "data": result.data})


async def _http_request(
    ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]
) -> StepOutcome:
    method = str(step.get("method", "GET"))
    headers = {str(k): str(v) for k, v in (resolved.get("headers") or {}).items()}
    body = resolved.get("body")
    timeout = float(step.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
    content = None
    if body is not None and method not in ("GET", "HEAD"):
        content = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    response = await afetch(
        str(resolved["url"]),
        method=method,
        headers=headers,
        content=content,
        timeout=timeout,
        max_bytes=1_000_000,
    )
    try:
        parsed: Any = response.json()
    except ValueError:
        parsed = response.text
    output = {"status_code": response.status_code, "body": parsed}
    if response.status_code >= 400:
        raise StepFailed(
            "http_error", f"{method} {resolved['url']} answered {response.status_code}."
        )
    return StepOutcome(output=output)


def _agent_send(ctx: RunContext, step: dict[str, Any], prompt: str) -> uuid.UUID:
    try:
        agent = access_agent(actor=ctx.actor, agent_id=str(step["agent_id"]))
    except AgentNotFound as exc:
        raise StepFailed("agent_not_found", "The step's agent is gone or not usable.") from exc
    if agent.is_archived:
        raise StepFailed("agent_archived", "The step's agent was archived.")
    conversation = conversation_create(
        actor=ctx.actor,
        agent=agent,
        title=f"Workflow run {ctx.run.id} · {step['id']}",
        source=ConversationSource.TASK,
    )
    run = message_send(
        actor=ctx.actor, conversation=conversation, content=prompt.strip() or "-", background=True
    )
    return run.id


def _agent_state(run_id: uuid.UUID) -> Run:
    return Run.objects.select_related("answer_message").get(id=run_id)


async def _agent(ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]) -> StepOutcome:
    # The one run service: the agent's run goes through message_send like any other.
    run_id = await _db(_agent_send)(ctx, step, str(resolved["prompt"]))
    while True:
        run = await _db(_agent_state)(run_id)
        if run.status in CONV_TERMINAL:
            break
        if run.status == ConvRunStatus.REQUIRES_ACTION:
            raise StepFailed(
                "agent_requires_action",
                "The agent's run waits for a tool approval; approve it in its conversation.",
            )
        await asyncio.sleep(AGENT_POLL_SECONDS)
    if run.status != ConvRunStatus.COMPLETED:
        raise StepFailed(
            run.error_code or f"agent_run_{run.status}",
            run.error_message or f"The agent's run ended {run.status}.",
        )
    text = run.answer_message.text if run.answer_message is not None else ""
    return StepOutcome(
        output={"text": text, "run_id": str(run.id), "conversation_id": str(run.conversation_id)},
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
    )


async def _loop(ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]) -> StepOutcome:
    items = resolved["items"]
    if not isinstance(items, list):
        raise StepFailed("invalid_items", f"items is not a list (got {type(items).__name__}).")
    limit = min(int(step.get("max_items", LOOP_MAX_ITEMS)), LOOP_MAX_ITEMS)
    if len(items) > limit:
        raise StepFailed("too_many_items", f"{len(items)} items; the loop takes at most {limit}.")
    body = dict(step["body"])
    body.setdefault("id", step["id"])
    executor = EXECUTORS[body["type"]]
    results: list[Any] = []
    total = StepOutcome(output=None)
    for index, item in enumerate(items):
        body_resolved = resolve(body, ctx.variables(item=item, index=index))
        outcome = await executor(ctx, body, body_resolved)
        results.append(outcome.output)
        total.input_tokens += outcome.input_tokens
        total.output_tokens += outcome.output_tokens
        total.cost += outcome.cost
    total.output = {"items": results, "count": len(results)}
    return total


async def _approval(ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]) -> StepOutcome:
    raise WaitForApproval(str(resolved.get("message") or "Approve to continue."))


def _child_create(ctx: RunContext, step: dict[str, Any], inputs: dict[str, Any]) -> uuid.UUID:
    workflow = (
        Workflow.objects.filter(id=str(step["workflow_id"]), workspace_id=ctx.run.workspace_id)
        .select_related("published_version")
        .first()
    )
    if workflow is None or workflow.published_version is None:
        raise StepFailed("sub_workflow_not_published", "The sub-workflow has no published version.")
    if ctx.run.depth + 1 > MAX_SUB_WORKFLOW_DEPTH:
        raise StepFailed(
            "sub_workflow_too_deep", f"Sub-workflows nest at most {MAX_SUB_WORKFLOW_DEPTH} deep."
        )
    existing = (
        WorkflowRun.objects.filter(parent_run=ctx.run, workflow=workflow)
        .order_by("-created_at")
        .first()
    )
    if existing is not None and existing.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        return existing.id  # resumed: the child of the earlier attempt continues
    version = workflow.published_version
    child = WorkflowRun.objects.create(
        workspace_id=ctx.run.workspace_id,
        workflow=workflow,
        version_number=version.number,
        definition=version.definition,
        created_by=ctx.run.created_by,
        source=RunSource.WORKFLOW,
        inputs=inputs,
        parent_run=ctx.run,
        depth=ctx.run.depth + 1,
    )
    return child.id


async def _sub_workflow(
    ctx: RunContext, step: dict[str, Any], resolved: dict[str, Any]
) -> StepOutcome:
    inputs = resolved.get("inputs") or {}
    child_id = await _db(_child_create)(ctx, step, inputs)
    child = await _db(WorkflowRun.objects.get)(id=child_id)
    try:
        check_inputs(validate_definition(child.definition), inputs)
    except ApplicationError as exc:
        await _db(_finish_queued)(child_id, exc.message)
        raise StepFailed(
            "invalid_inputs", f"The sub-workflow's inputs: {exc.details or exc.message}"
        ) from exc
    if child.status == RunStatus.QUEUED:
        await drive(child_id)
    child = await _db(WorkflowRun.objects.get)(id=child_id)
    if child.status == RunStatus.SUCCEEDED:
        return StepOutcome(
            output=child.outputs,
            input_tokens=child.input_tokens,
            output_tokens=child.output_tokens,
            cost=child.cost,
        )
    if child.status == RunStatus.WAITING_FOR_APPROVAL:
        raise StepFailed(
            "sub_workflow_waiting", "An approval inside a sub-workflow is not supported."
        )
    raise StepFailed(
        child.error_code or "sub_workflow_failed",
        child.error_message or f"The sub-workflow ended {child.status}.",
    )


def _finish_queued(run_id: uuid.UUID, reason: str) -> None:
    with transaction.atomic():
        if job_finish(
            WorkflowRun, run_id, status=RunStatus.FAILED, code="invalid_inputs", reason=reason
        ):
            run_finished(run_id)


EXECUTORS: dict[str, Executor] = {
    StepType.START: _start,
    StepType.TEMPLATE: _template,
    StepType.CONDITION: _condition,
    StepType.END: _end,
    StepType.MODEL_CALL: _model_call,
    StepType.KNOWLEDGE_RETRIEVAL: _retrieval,
    StepType.TOOL_CALL: _tool_call,
    StepType.HTTP_REQUEST: _http_request,
    StepType.AGENT: _agent,
    StepType.LOOP: _loop,
    StepType.APPROVAL: _approval,
    StepType.SUB_WORKFLOW: _sub_workflow,
}


def resolve(step: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    """The step's template fields rendered (ids, policies and bodies are left as they are).
    Raises ExpressionError."""
    literal = _LITERAL_FIELDS if step.get("type") == StepType.LOOP else _LITERAL_FIELDS - {"body"}
    return {
        name: evaluate(value, variables)
        for name, value in step.items()
        if name not in literal and not name.endswith("_id") and name != "knowledge_base_ids"
    } | ({"knowledge_base_ids": step["knowledge_base_ids"]} if "knowledge_base_ids" in step else {})


# --- the driver -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value as JSON can hold it (what a template produced may be a Markup or tuple)."""
    return json.loads(json.dumps(value, default=str))


async def _run_step(ctx: RunContext, sid: str) -> None:
    step = ctx.graph.steps[sid]
    run_id = ctx.run.id
    if step["type"] == StepType.APPROVAL and sid in ctx.decisions:
        return
    retry = step.get("retry") or {}
    max_attempts = int(retry.get("max_attempts", 1))
    backoff = float(retry.get("backoff_seconds", 0))
    timeout = float(step.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
    code, message = "", ""
    for attempt in range(1, max_attempts + 1):
        try:
            resolved = _plain(resolve(step, ctx.variables()))
        except ExpressionError as exc:
            code, message = "expression_error", f"A template of the step failed: {exc}"
            resolved = None
        if not await _db(_step_started)(run_id, step, resolved or {}, attempt):
            return  # the run was cancelled or taken over
        if resolved is None:
            break  # a template error does not improve with a retry
        try:
            outcome = await asyncio.wait_for(EXECUTORS[step["type"]](ctx, step, resolved), timeout)
            outcome.output = _plain(outcome.output)
        except WaitForApproval as wait:
            ctx.status[sid] = StepStatus.WAITING_FOR_APPROVAL
            ctx.outputs[sid] = {"message": wait.message}
            await _db(_step_waiting)(run_id, step, wait.message)
            return
        except StepFailed as exc:
            code, message = exc.code, exc.message
        except ExpressionError as exc:
            code, message = "expression_error", f"A template of the step failed: {exc}"
        except TimeoutError:
            code, message = "step_timeout", f"The step took longer than its {timeout:g} s timeout."
        except ApplicationError as exc:  # provider, outbound guard, knowledge errors
            code, message = exc.code, exc.message
        else:
            if await _db(_step_finished)(
                run_id, step, status=StepStatus.SUCCEEDED, outcome=outcome
            ):
                ctx.status[sid] = StepStatus.SUCCEEDED
                ctx.outputs[sid] = outcome.output
            return
        if attempt < max_attempts:
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
    continues = bool(step.get("continue_on_error"))
    error_output = {"error": {"code": code, "message": message}}
    if await _db(_step_finished)(
        run_id, step, status=StepStatus.FAILED, code=code, message=message, output=error_output
    ):
        ctx.status[sid] = StepStatus.FAILED
        ctx.outputs[sid] = error_output
        if not continues and ctx.failure is None:
            ctx.failure = (sid, code, message)


def _active_edge(ctx: RunContext, dep: str, sid: str) -> bool:
    status = ctx.status[dep]
    dep_step = ctx.graph.steps[dep]
    if status == StepStatus.SKIPPED:
        return False
    if status == StepStatus.FAILED:
        return bool(dep_step.get("continue_on_error"))
    if dep_step["type"] == StepType.CONDITION:
        branch = ctx.graph.branch_of(dep, sid)
        taken = (ctx.outputs.get(dep) or {}).get("branch")
        return branch is None or branch == taken
    return True


def _ready(ctx: RunContext, running: set[str]) -> tuple[list[str], list[str]]:
    """(steps to start, steps to skip) now."""
    start, skip = [], []
    for sid in ctx.graph.order:
        if ctx.status[sid] != StepStatus.PENDING or sid in running:
            continue
        deps = ctx.graph.deps[sid]
        if not all(ctx.status[d] in STEP_DONE for d in deps):
            continue
        if deps and not any(_active_edge(ctx, d, sid) for d in deps):
            skip.append(sid)
        else:
            start.append(sid)
    return start, skip


def _heartbeat(run_id: uuid.UUID) -> bool:
    return job_heartbeat(WorkflowRun, run_id)


def _skip(run_id: uuid.UUID, step: dict[str, Any]) -> None:
    _step_finished(run_id, step, status=StepStatus.SKIPPED)


def _outputs(ctx: RunContext) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for sid in ctx.graph.order:
        if ctx.graph.steps[sid]["type"] == StepType.END and ctx.status[sid] == StepStatus.SUCCEEDED:
            merged.update(ctx.outputs.get(sid) or {})
    return merged


async def drive(run_id: uuid.UUID) -> None:
    """Claim a queued run and execute its steps until it ends or waits for an approval.
    Idempotent: a run that is not queued (taken, ended) is left alone."""
    if not await _db(_claim)(run_id):
        return
    ctx = await _db(_load)(run_id)
    if ctx is None:
        return
    tasks: dict[asyncio.Task[None], str] = {}
    last_beat = time.monotonic()
    try:
        while True:
            if ctx.failure is None:
                start, skip = _ready(ctx, set(tasks.values()))
                for sid in skip:
                    ctx.status[sid] = StepStatus.SKIPPED
                    await _db(_skip)(run_id, ctx.graph.steps[sid])
                if skip:
                    continue
                for sid in start:
                    ctx.status[sid] = StepStatus.RUNNING
                    tasks[asyncio.ensure_future(_run_step(ctx, sid))] = sid
            if not tasks:
                break
            done, _ = await asyncio.wait(
                tasks, timeout=HEARTBEAT_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                sid = tasks.pop(task)
                task.result()  # a bug in the engine propagates (the sweep ends the run)
                if ctx.status[sid] == StepStatus.RUNNING:
                    return  # the step's write was refused: cancelled or taken over
            if time.monotonic() - last_beat >= HEARTBEAT_SECONDS or not done:
                last_beat = time.monotonic()
                if not await _db(_heartbeat)(run_id):
                    return  # cancelled, swept, or taken over: stop writing
    finally:
        for task in tasks:
            task.cancel()
    if ctx.failure is not None:
        sid, code, message = ctx.failure
        await _db(_finish)(run_id, RunStatus.FAILED, code, f"Step {sid}: {message}", step_id=sid)
        return
    waiting = [sid for sid, s in ctx.status.items() if s == StepStatus.WAITING_FOR_APPROVAL]
    if waiting:
        step = ctx.graph.steps[waiting[0]]
        message = str((ctx.outputs.get(waiting[0]) or {}).get("message", ""))
        await _db(_wait)(run_id, step["id"], message or str(step.get("message", "")))
        return
    await _db(_finish)(run_id, RunStatus.SUCCEEDED, outputs=_outputs(ctx))

"""Writes of the tasks app: scheduled tasks and their executions (this part), outbound
webhooks, inbound triggers. Runs are started only through the conversations services.

Time is a parameter (`now`) wherever it decides something, so tests drive the clock.
"""

import base64
import contextlib
import hmac
import json
import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from apps.agents.exceptions import AgentNotFound
from apps.agents.models import Agent
from apps.agents.selectors import access_agent
from apps.conversations.choices import TERMINAL_STATUSES, ConversationSource, RunStatus
from apps.conversations.exceptions import RunNotCancellable
from apps.conversations.models import Conversation, Run
from apps.conversations.services import conversation_create, message_send, run_cancel
from apps.core.events import (
    OUTBOUND_EVENT_CLASSES,
    OutboundEvent,
    RunError,
    TaskExecutionCompletedNotice,
    TaskExecutionFailedNotice,
    WebhookTestNotice,
)
from apps.core.exceptions import ApplicationError, PayloadTooLarge, ValidationFailed
from apps.core.jobs import (
    JobKind,
    job_claim,
    job_enqueue,
    job_finish,
    job_heartbeat,
    job_release,
)
from apps.core.outbound import OutboundBlocked, OutboundError, check_url, fetch
from apps.core.outbox import Outgoing, outbox_emit
from apps.tasks.choices import (
    TRANSIENT_RUN_ERRORS,
    ConversationMode,
    DeliveryStatus,
    ExecutionStatus,
    ExecutionTrigger,
    MissedPolicy,
    OverlapPolicy,
    ScheduleKind,
)
from apps.tasks.exceptions import (
    TaskArchived,
    TriggerDisabled,
    TriggerNotFound,
    TriggerNotStarted,
    TriggerOwnerLostAccess,
    TriggerUnauthorized,
)
from apps.tasks.models import (
    InboundTrigger,
    ScheduledTask,
    TaskExecution,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from apps.tasks.schedules import (
    MIN_INTERVAL_SECONDS,
    next_due,
    render_prompt,
    validate_cron,
    validate_template,
    zone,
)
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.models import Membership
from apps.users.services import audit_record

logger = logging.getLogger(__name__)

TASK_FIELDS = (
    "name",
    "description",
    "prompt_template",
    "schedule_kind",
    "run_at",
    "cron",
    "interval_seconds",
    "timezone",
    "start_at",
    "end_at",
    "conversation_mode",
    "overlap_policy",
    "missed_policy",
    "time_limit_seconds",
    "max_retries",
    "retry_backoff_seconds",
    "max_consecutive_failures",
)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else timezone.now()


_TASK_NAMES = {"execute_task": "tasks.execute", "deliver_webhook": "tasks.deliver_webhook"}


def _enqueue(name: str, *args: str) -> None:
    """Send a Celery task of this app after the transaction commits."""
    job_enqueue(_TASK_NAMES[name], *args)


# --- scheduled tasks ------------------------------------------------------------------------


def _validate_schedule(task: ScheduledTask) -> None:
    zone(task.timezone)
    if task.schedule_kind == ScheduleKind.ONCE:
        if task.run_at is None:
            raise ValidationFailed("A one-time task needs `run_at`.", field="run_at")
    elif task.schedule_kind == ScheduleKind.CRON:
        if not task.cron:
            raise ValidationFailed("A cron task needs `cron`.", field="cron")
        task.cron = validate_cron(task.cron)
    elif task.schedule_kind == ScheduleKind.INTERVAL:
        if not task.interval_seconds or task.interval_seconds < MIN_INTERVAL_SECONDS:
            raise ValidationFailed(
                f"An interval task needs `interval_seconds` >= {MIN_INTERVAL_SECONDS}.",
                field="interval_seconds",
            )
    else:
        raise ValidationFailed("Unknown schedule kind.", field="schedule_kind")
    if task.start_at and task.end_at and task.end_at <= task.start_at:
        raise ValidationFailed("`end_at` must be after `start_at`.", field="end_at")
    validate_template(task.prompt_template)
    if not task.prompt_template.strip():
        raise ValidationFailed("The prompt is empty.", field="prompt_template")
    if not 10 <= task.time_limit_seconds <= 24 * 3600:
        raise ValidationFailed("Between 10 seconds and 24 hours.", field="time_limit_seconds")
    if task.max_retries > 10:
        raise ValidationFailed("At most 10 retries.", field="max_retries")
    if task.max_consecutive_failures < 1:
        raise ValidationFailed("At least 1.", field="max_consecutive_failures")


def task_next_due(task: ScheduledTask, *, after: datetime) -> datetime | None:
    """The task's first due time strictly after `after` (None: its schedule has ended)."""
    return next_due(
        kind=task.schedule_kind,
        after=after,
        tz=task.timezone,
        run_at=task.run_at,
        cron=task.cron,
        interval_seconds=task.interval_seconds,
        start_at=task.start_at,
        end_at=task.end_at,
    )


def _usable_agent(*, actor: Actor, agent_id: Any) -> Agent:
    agent = access_agent(actor=actor, agent_id=agent_id)
    if agent.is_archived:
        raise ValidationFailed("The agent is archived.", field="agent_id")
    return agent


def task_create(
    *, actor: Actor, agent_id: Any, values: dict[str, Any], now: datetime | None = None
) -> ScheduledTask:
    """A task of the actor's workspace owned by the actor, scheduled from `now`.
    Raises ValidationFailed (the field named) or AgentNotFound."""
    actor.require_role(Role.MEMBER)
    now = _now(now)
    try:
        agent = _usable_agent(actor=actor, agent_id=agent_id)
    except AgentNotFound as exc:
        raise ValidationFailed("Unknown agent.", field="agent_id") from exc
    task = ScheduledTask(workspace=actor.workspace, owner=actor.user, agent=agent)
    for name in TASK_FIELDS:
        if name in values:
            setattr(task, name, values[name])
    _validate_schedule(task)
    if task.schedule_kind == ScheduleKind.INTERVAL and task.start_at is None:
        # The first run one interval after creation.
        task.start_at = now + timedelta(seconds=task.interval_seconds or 0)
    task.next_run_at = task_next_due(task, after=now - timedelta(microseconds=1))
    with transaction.atomic():
        task.save()
        _audit(actor=actor, task=task, action="task.create")
    return task


def task_update(
    *, actor: Actor, task: ScheduledTask, values: dict[str, Any], now: datetime | None = None
) -> ScheduledTask:
    """Change a task; a new schedule is computed from `now`. Raises ValidationFailed,
    TaskArchived."""
    actor.require_role(Role.MEMBER)
    if task.archived_at is not None:
        raise TaskArchived()
    now = _now(now)
    if "agent_id" in values:
        try:
            task.agent = _usable_agent(actor=actor, agent_id=values["agent_id"])
        except AgentNotFound as exc:
            raise ValidationFailed("Unknown agent.", field="agent_id") from exc
    for name in TASK_FIELDS:
        if name in values:
            setattr(task, name, values[name])
    _validate_schedule(task)
    task.next_run_at = task_next_due(task, after=now)
    if task.conversation_mode == ConversationMode.NEW:
        task.conversation = None
    task.save()
    _audit(actor=actor, task=task, action="task.update")
    return task


def task_set_enabled(
    *, actor: Actor, task: ScheduledTask, enabled: bool, now: datetime | None = None
) -> ScheduledTask:
    """Enable (clears the pause reason and failure count; the next due time is after
    `now`, missed ones are not caught up) or disable a task. Idempotent."""
    actor.require_role(Role.MEMBER)
    if task.archived_at is not None:
        raise TaskArchived()
    now = _now(now)
    task.enabled = enabled
    if enabled:
        task.paused_reason = ""
        task.consecutive_failures = 0
        task.next_run_at = task_next_due(task, after=now)
    task.save(
        update_fields=[
            "enabled",
            "paused_reason",
            "consecutive_failures",
            "next_run_at",
            "updated_at",
        ]
    )
    _audit(actor=actor, task=task, action="task.enable" if enabled else "task.disable")
    return task


def task_archive(*, actor: Actor, task: ScheduledTask, now: datetime | None = None) -> None:
    """Delete a task: archived (its history is kept), never fires again. Idempotent."""
    actor.require_role(Role.MEMBER)
    if task.archived_at is None:
        task.archived_at = _now(now)
        task.enabled = False
        task.next_run_at = None
        task.save(update_fields=["archived_at", "enabled", "next_run_at", "updated_at"])
        _audit(actor=actor, task=task, action="task.archive")


def task_run_now(
    *,
    actor: Actor,
    task: ScheduledTask,
    now: datetime | None = None,
    variables: dict[str, Any] | None = None,
    trigger: str = ExecutionTrigger.MANUAL,
) -> TaskExecution:
    """An execution of the task now, outside its schedule (the overlap policy applies);
    it is the task's last run. Raises TaskArchived."""
    actor.require_role(Role.MEMBER)
    if task.archived_at is not None:
        raise TaskArchived()
    now = _now(now)
    with transaction.atomic():
        execution = _execution_create(
            task=task, due_at=now, now=now, trigger=trigger, variables=variables
        )
        ScheduledTask.objects.filter(id=task.id).update(last_run_at=now)
    return execution


def _audit(*, actor: Actor, task: ScheduledTask, action: str) -> None:
    audit_record(
        action=action,
        actor_user=actor.user,
        workspace_id=task.workspace_id,
        target_type="task",
        target_id=str(task.id),
    )


def _running_exists(task_id: uuid.UUID, exclude: uuid.UUID | None = None) -> bool:
    qs = TaskExecution.objects.filter(task_id=task_id, status=ExecutionStatus.RUNNING)
    if exclude is not None:
        qs = qs.exclude(id=exclude)
    return qs.exists()


def _execution_create(
    *,
    task: ScheduledTask,
    due_at: datetime,
    now: datetime,
    trigger: str = ExecutionTrigger.SCHEDULE,
    skip_reason: str = "",
    variables: dict[str, Any] | None = None,
) -> TaskExecution:
    """Inside a transaction: the execution for `due_at` (IntegrityError when another
    scheduler made it), pending and enqueued, or skipped by the overlap policy."""
    status = ExecutionStatus.PENDING
    reason = skip_reason
    if skip_reason:
        status = ExecutionStatus.SKIPPED
    elif _running_exists(task.id) and task.overlap_policy == OverlapPolicy.SKIP:
        status, reason = ExecutionStatus.SKIPPED, "The previous execution was still running."
    with transaction.atomic():
        execution = TaskExecution.objects.create(
            task=task,
            due_at=due_at,
            trigger=trigger,
            status=status,
            error_code="skipped" if reason else "",
            error_message=reason,
            available_at=now,
            variables=variables or {},
            finished_at=now if status == ExecutionStatus.SKIPPED else None,
        )
    if status == ExecutionStatus.PENDING and not _running_exists(task.id):
        _enqueue("execute_task", str(execution.id))
    return execution


def _fire(task: ScheduledTask, *, now: datetime) -> TaskExecution | None:
    """Move the task past its due time and create that time's execution. Exactly once
    per due time however many schedulers race: the conditional UPDATE of next_run_at
    lets one win, and the unique (task, due_at) constraint backs it up."""
    due = task.next_run_at
    assert due is not None
    grace = timedelta(seconds=settings.TASKS_MISSED_GRACE_SECONDS)
    late = now - due > grace
    following = task_next_due(task, after=now if late else due)
    skip_reason = ""
    if late and task.missed_policy == MissedPolicy.SKIP:
        skip_reason = "Missed (the scheduler was not running at the due time)."
    with transaction.atomic():
        moved = ScheduledTask.objects.filter(
            id=task.id, next_run_at=due, enabled=True, archived_at__isnull=True
        ).update(next_run_at=following, last_run_at=due)
        if not moved:
            return None
        try:
            return _execution_create(task=task, due_at=due, now=now, skip_reason=skip_reason)
        except IntegrityError:
            return None


def tasks_fire_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Create the executions of every task due at `now` (the beat scan). Idempotent and
    safe to run in several processes at once. Returns how many executions it created."""
    now = _now(now)
    created = 0
    due = (
        ScheduledTask.objects.filter(enabled=True, archived_at__isnull=True, next_run_at__lte=now)
        .select_related("agent")
        .order_by("next_run_at")[:limit]
    )
    for task in due:
        if _fire(task, now=now) is not None:
            created += 1
    return created


# --- executions -----------------------------------------------------------------------------


def _owner_actor(task: ScheduledTask) -> tuple[Actor | None, str, str]:
    """The task's owner acting in its workspace, or (None, error code, reason)."""
    owner = task.owner
    membership = Membership.objects.filter(user=owner, workspace_id=task.workspace_id).first()
    if not owner.is_active or membership is None or not Role(membership.role).at_least(Role.MEMBER):
        return None, "owner_lost_access", "The task's owner no longer has access to the workspace."
    actor = Actor(user=owner, workspace=task.workspace, role=Role(membership.role))
    try:
        agent = access_agent(actor=actor, agent_id=task.agent_id)
    except AgentNotFound:
        return None, "owner_lost_access", "The task's owner can no longer use its agent."
    if agent.is_archived:
        return None, "agent_archived", "The task's agent was archived."
    return actor, "", ""


def _variables(execution: TaskExecution, *, now: datetime) -> dict[str, Any]:
    task = execution.task
    local = now.astimezone(zone(task.timezone))
    previous = (
        TaskExecution.objects.filter(task=task, status=ExecutionStatus.SUCCEEDED)
        .exclude(id=execution.id)
        .order_by("-due_at")
        .values_list("answer", flat=True)
        .first()
    )
    return {
        "date": local.date().isoformat(),
        "time": local.strftime("%H:%M"),
        "datetime": local.isoformat(timespec="seconds"),
        "due_at": execution.due_at.astimezone(zone(task.timezone)).isoformat(timespec="seconds"),
        "timezone": task.timezone,
        "task_name": task.name,
        "previous_answer": previous or "",
        **execution.variables,
    }


def execution_start(*, execution_id: uuid.UUID | str, now: datetime | None = None) -> None:
    """Claim a pending execution and start its run through the run service. Idempotent:
    a redelivered or raced call finds nothing to claim. An owner without access or an
    archived agent fails the execution and pauses the task."""
    now = _now(now)
    busy = TaskExecution.objects.filter(task_id=OuterRef("task_id"), status=ExecutionStatus.RUNNING)
    claimed = job_claim(
        TaskExecution,
        execution_id,
        from_statuses=[ExecutionStatus.PENDING],
        status=ExecutionStatus.RUNNING,
        where=~Exists(busy) & Q(available_at__lte=now),
        run=None,
    )
    if not claimed:
        return
    execution = TaskExecution.objects.select_related(
        "task", "task__owner", "task__workspace", "task__agent"
    ).get(id=execution_id)
    task = execution.task
    actor, code, reason = _owner_actor(task)
    if actor is None:
        _execution_finish(
            execution, status=ExecutionStatus.FAILED, code=code, reason=reason, now=now, pause=True
        )
        return
    prompt = render_prompt(task.prompt_template, _variables(execution, now=now))
    try:
        conversation = _conversation_for(task, actor=actor, due=execution.due_at)
        TaskExecution.objects.filter(id=execution.id).update(
            conversation=conversation, prompt=prompt
        )
        # message_send commits the run and dispatches it (to a worker: background=True).
        # The execution names its run right after; a crash in between is caught by the
        # stale sweep (a running execution without a run nor a heartbeat is retried).
        run = message_send(
            actor=actor, conversation=conversation, content=prompt.strip() or "-", background=True
        )
    except ApplicationError as exc:  # refused by the run service: a readable failure
        _execution_finish(
            execution, status=ExecutionStatus.FAILED, code=exc.code, reason=exc.message, now=now
        )
        return
    job_heartbeat(TaskExecution, execution.id, run=run)
    execution.refresh_from_db()
    execution_settle(execution=execution, now=now)


def _conversation_for(task: ScheduledTask, *, actor: Actor, due: datetime) -> Conversation:
    if task.conversation_mode == ConversationMode.OWN and task.conversation_id is not None:
        own = Conversation.objects.filter(id=task.conversation_id).first()
        if own is not None:
            return own
    local = due.astimezone(zone(task.timezone))
    title = (
        task.name
        if task.conversation_mode == ConversationMode.OWN
        else (f"{task.name} · {local:%Y-%m-%d %H:%M}")
    )
    conversation = conversation_create(
        actor=actor, agent=task.agent, title=title, source=ConversationSource.TASK
    )
    if task.conversation_mode == ConversationMode.OWN:
        ScheduledTask.objects.filter(id=task.id).update(conversation=conversation)
        task.conversation = conversation
    return conversation


def execution_settle(*, execution: TaskExecution, now: datetime | None = None) -> None:
    """Bring a running execution in line with its run: done when the run is, retried
    (with backoff) after a transient model error, failed past its time limit (the run is
    cancelled). Idempotent; a no-op while the run is still going."""
    if execution.status != ExecutionStatus.RUNNING:
        return
    now = _now(now)
    task = execution.task
    run = (
        Run.objects.filter(id=execution.run_id).select_related("answer_message").first()
        if execution.run_id is not None
        else None
    )
    if run is not None and run.status in TERMINAL_STATUSES:
        if run.status == RunStatus.COMPLETED:
            answer = run.answer_message.text if run.answer_message is not None else ""
            _execution_finish(execution, status=ExecutionStatus.SUCCEEDED, answer=answer, now=now)
            return
        code = run.error_code or str(run.status)
        message = run.error_message or f"The run ended {run.status}."
        if code in TRANSIENT_RUN_ERRORS and execution.attempts <= task.max_retries:
            delay = task.retry_backoff_seconds * 2 ** (execution.attempts - 1)
            retried = job_release(
                TaskExecution,
                execution.id,
                status=ExecutionStatus.PENDING,
                code=code,
                reason=f"Attempt {execution.attempts} failed ({message}); retrying in {delay} s.",
                not_before=now + timedelta(seconds=delay),
                available_at=now + timedelta(seconds=delay),
            )
            if retried:
                logger.info("task execution %s retried in %ss", execution.id, delay)
            return
        _execution_finish(
            execution, status=ExecutionStatus.FAILED, code=code, reason=message, now=now
        )
        return
    started = execution.started_at or now
    if now - started > timedelta(seconds=task.time_limit_seconds):
        if run is not None and run.status not in TERMINAL_STATUSES:
            actor, _, _ = _owner_actor(task)
            if actor is not None:
                with contextlib.suppress(RunNotCancellable):  # it ended meanwhile
                    run_cancel(actor=actor, run=run)
        _execution_finish(
            execution,
            status=ExecutionStatus.FAILED,
            code="time_limit",
            reason=f"The execution took longer than its {task.time_limit_seconds} s limit.",
            now=now,
        )


def _execution_finish(
    execution: TaskExecution,
    *,
    status: str,
    now: datetime,
    code: str = "",
    reason: str = "",
    answer: str = "",
    pause: bool = False,
) -> None:
    """The execution's terminal transition (once: conditional on it running), the task's
    failure count and auto-pause, its event, and the next queued execution."""
    with transaction.atomic():
        done = job_finish(
            TaskExecution,
            execution.id,
            status=status,
            code=code,
            reason=reason,
            from_statuses=[ExecutionStatus.RUNNING],
            answer=answer,
        )
        if not done:
            return
        _after_finish(execution, status=status, reason=reason, pause=pause)


def _after_finish(execution: TaskExecution, *, status: str, reason: str, pause: bool) -> None:
    """After an execution ended: the task's failure count and auto-pause, the event, and
    the task's next queued execution."""
    task = execution.task
    with transaction.atomic():
        if status == ExecutionStatus.SUCCEEDED:
            ScheduledTask.objects.filter(id=task.id).update(consecutive_failures=0)
        elif status == ExecutionStatus.FAILED:
            ScheduledTask.objects.filter(id=task.id).update(
                consecutive_failures=F("consecutive_failures") + 1
            )
            task.refresh_from_db(fields=["consecutive_failures", "max_consecutive_failures"])
            if pause or task.consecutive_failures >= task.max_consecutive_failures:
                why = (
                    reason
                    if pause
                    else (
                        f"Paused after {task.consecutive_failures} consecutive failed executions "
                        f"(last: {reason})"
                    )
                )
                ScheduledTask.objects.filter(id=task.id).update(enabled=False, paused_reason=why)
        execution.refresh_from_db()
        _on_execution_finished(execution)
        nxt = (
            TaskExecution.objects.filter(task_id=task.id, status=ExecutionStatus.PENDING)
            .order_by("due_at")
            .first()
        )
        if nxt is not None:
            _enqueue("execute_task", str(nxt.id))


def _on_execution_finished(execution: TaskExecution) -> None:
    """The execution's outbound event, in the transaction of its terminal transition."""
    if execution.status not in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED):
        return
    # The fields every execution event shares, spelled out per class so mypy checks each.
    task_id, task_name, execution_id = execution.task_id, execution.task.name, execution.id
    due_at, trigger, status = execution.due_at, str(execution.trigger), str(execution.status)
    attempts, run_id, conversation_id = (
        execution.attempts,
        execution.run_id,
        execution.conversation_id,
    )
    event: OutboundEvent
    if execution.status == ExecutionStatus.SUCCEEDED:
        event = TaskExecutionCompletedNotice(
            task_id=task_id,
            task_name=task_name,
            execution_id=execution_id,
            due_at=due_at,
            trigger=trigger,
            status=status,
            attempts=attempts,
            run_id=run_id,
            conversation_id=conversation_id,
            answer=execution.answer,
        )
    else:
        event = TaskExecutionFailedNotice(
            task_id=task_id,
            task_name=task_name,
            execution_id=execution_id,
            due_at=due_at,
            trigger=trigger,
            status=status,
            attempts=attempts,
            run_id=run_id,
            conversation_id=conversation_id,
            error=RunError(code=execution.error_code, message=execution.error_message),
        )
    outbox_emit(event, workspace_id=execution.task.workspace_id)


def _execution_keep_alive(execution: TaskExecution, *, now: datetime) -> None:
    """A running execution whose run still goes is alive: its heartbeat follows the run
    (the run has its own worker and stale sweep)."""
    execution_settle(execution=execution, now=now)
    execution.refresh_from_db(fields=["status"])
    if execution.status == ExecutionStatus.RUNNING and execution.run_id is not None:
        job_heartbeat(TaskExecution, execution.id)


def _execution_retry_stale(execution: TaskExecution) -> bool:
    """The stale sweep found a running execution without a heartbeat. With a run: settle
    it by its run. Without one (the worker died before starting it): another attempt
    while retries remain, else the sweep fails it `worker_lost`."""
    execution = TaskExecution.objects.select_related("task").get(id=execution.id)
    if execution.run_id is not None:
        _execution_keep_alive(execution, now=timezone.now())
        return True
    if execution.attempts > execution.task.max_retries:
        return False
    now = timezone.now()
    with transaction.atomic():
        released = job_release(
            TaskExecution,
            execution.id,
            status=ExecutionStatus.PENDING,
            code="worker_lost",
            reason="The worker stopped before the run started; retried.",
            where=Q(run__isnull=True, heartbeat_at=execution.heartbeat_at),
            available_at=now,
        )
        if released:
            _enqueue("execute_task", str(execution.id))
    return released


def _execution_ended_by_sweep(execution: TaskExecution) -> None:
    fresh = TaskExecution.objects.select_related("task").get(id=execution.id)
    _after_finish(fresh, status=str(fresh.status), reason=fresh.error_message, pause=False)


EXECUTION_JOBS = JobKind(
    name="tasks.execution",
    model=TaskExecution,
    stale_after=lambda: timedelta(seconds=settings.TASKS_STALE_SECONDS),
    stale_status=ExecutionStatus.FAILED,
    stale_reason="The worker stopped before the run started, on every attempt.",
    retry=_execution_retry_stale,
    on_ended=_execution_ended_by_sweep,
)


def executions_sweep(*, now: datetime | None = None) -> int:
    """Settle running executions (their run ended, or their time limit passed) and keep
    those whose run still goes alive; re-enqueue pending ones that are due (a retry's
    backoff over, or a lost message). Idempotent. Returns how many it acted on."""
    now = _now(now)
    acted = 0
    running = TaskExecution.objects.filter(status=ExecutionStatus.RUNNING).select_related("task")
    for execution in running[:1000]:
        # Without a run its worker is starting it (or died: the stale sweep's case); only
        # its time limit applies here.
        _execution_keep_alive(execution, now=now)
        acted += execution.status != ExecutionStatus.RUNNING
    running_tasks = TaskExecution.objects.filter(status=ExecutionStatus.RUNNING).values("task_id")
    waiting = (
        TaskExecution.objects.filter(status=ExecutionStatus.PENDING, available_at__lte=now)
        .exclude(task_id__in=running_tasks)
        .order_by("available_at")
    )
    seen: set[uuid.UUID] = set()
    for execution in waiting[:1000]:
        if execution.task_id in seen:
            continue  # one at a time per task; the next is enqueued when it finishes
        seen.add(execution.task_id)
        with transaction.atomic():
            _enqueue("execute_task", str(execution.id))
        acted += 1
    return acted


def tasks_tick(*, now: datetime | None = None) -> int:
    """The one beat entry of the app: settle executions, fire due tasks, send due
    webhook deliveries."""
    now = _now(now)
    acted = executions_sweep(now=now) + tasks_fire_due(now=now)
    return acted + webhook_deliveries_due(now=now)


# --- outbound webhooks ----------------------------------------------------------------------


def _new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _validate_event_types(event_types: Any) -> list[str]:
    if not isinstance(event_types, list) or not event_types:
        raise ValidationFailed("Subscribe to at least one event type.", field="event_types")
    unknown = sorted({str(t) for t in event_types} - set(OUTBOUND_EVENT_CLASSES) - {"*"})
    if unknown:
        raise ValidationFailed(f"Unknown event types: {', '.join(unknown)}.", field="event_types")
    return sorted({str(t) for t in event_types})


def webhook_endpoint_create(
    *, actor: Actor, url: str, event_types: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A webhook endpoint of the actor's workspace and its signing secret (returned this
    once). The URL passes the outbound guard now and again at every delivery. Raises
    ValidationFailed / OutboundBlocked (field `url`)."""
    actor.require_role(Role.ADMIN)
    check_url(url, field="url")
    secret = _new_webhook_secret()
    endpoint = WebhookEndpoint.objects.create(
        workspace=actor.workspace,
        created_by=actor.user,
        url=url,
        description=description,
        event_types=_validate_event_types(event_types),
        secret=secret,
    )
    _audit_webhook(actor=actor, endpoint=endpoint, action="webhook_endpoint.create")
    return endpoint, secret


def webhook_endpoint_update(
    *, actor: Actor, endpoint: WebhookEndpoint, values: dict[str, Any]
) -> WebhookEndpoint:
    """Change URL, description, event types or `enabled` (enabling clears the disable
    reason and failure count). Raises ValidationFailed / OutboundBlocked."""
    actor.require_role(Role.ADMIN)
    if "url" in values:
        check_url(values["url"], field="url")
        endpoint.url = values["url"]
    if "description" in values:
        endpoint.description = values["description"]
    if "event_types" in values:
        endpoint.event_types = _validate_event_types(values["event_types"])
    if "enabled" in values:
        endpoint.enabled = bool(values["enabled"])
        if endpoint.enabled:
            endpoint.disabled_reason = ""
            endpoint.consecutive_failures = 0
    endpoint.save()
    _audit_webhook(actor=actor, endpoint=endpoint, action="webhook_endpoint.update")
    return endpoint


def webhook_endpoint_delete(*, actor: Actor, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and their log."""
    actor.require_role(Role.ADMIN)
    _audit_webhook(actor=actor, endpoint=endpoint, action="webhook_endpoint.delete")
    endpoint.delete()


def webhook_secret_rotate(
    *, actor: Actor, endpoint: WebhookEndpoint, overlap_seconds: int = 24 * 3600
) -> str:
    """A new signing secret (returned this once). For `overlap_seconds` deliveries are
    signed with both, so receivers can switch without losing one."""
    actor.require_role(Role.ADMIN)
    new = _new_webhook_secret()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + timedelta(seconds=overlap_seconds)
    endpoint.secret = new
    endpoint.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
    )
    _audit_webhook(actor=actor, endpoint=endpoint, action="webhook_endpoint.rotate_secret")
    return new


def _audit_webhook(*, actor: Actor, endpoint: WebhookEndpoint, action: str) -> None:
    audit_record(
        action=action,
        actor_user=actor.user,
        workspace_id=endpoint.workspace_id,
        target_type="webhook_endpoint",
        target_id=str(endpoint.id),
        metadata={"url": endpoint.url},
    )


def webhook_events_record(event: Outgoing) -> WebhookEvent | None:
    """The outbox sink (registered in core.outbox): in the emitter's transaction, the
    event row and one pending delivery per enabled endpoint subscribed to it, sent
    after commit. Nothing is written when no endpoint wants the event."""
    endpoints = [
        e
        for e in WebhookEndpoint.objects.filter(workspace_id=event.workspace_id, enabled=True)
        if event.type in e.event_types or "*" in e.event_types
    ]
    if not endpoints:
        return None
    return _event_deliver_to(event, endpoints)


def _event_deliver_to(event: Outgoing, endpoints: list[WebhookEndpoint]) -> WebhookEvent:
    now = timezone.now()
    with transaction.atomic():
        row = WebhookEvent.objects.create(
            id=event.id, workspace_id=event.workspace_id, type=event.type, payload=event.payload()
        )
        for endpoint in endpoints:
            delivery = WebhookDelivery.objects.create(
                endpoint=endpoint,
                event=row,
                status=DeliveryStatus.PENDING,
                next_attempt_at=now,
                heartbeat_at=now,
            )
            _enqueue("deliver_webhook", str(delivery.id))
    return row


def webhook_test_send(*, actor: Actor, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `webhook.test` event to this endpoint only (even if disabled or not subscribed)."""
    actor.require_role(Role.ADMIN)
    event = Outgoing(
        event=WebhookTestNotice(endpoint_id=endpoint.id, message="This is a test event."),
        workspace_id=endpoint.workspace_id,
    )
    row = _event_deliver_to(event, [endpoint])
    return WebhookDelivery.objects.get(event=row, endpoint=endpoint)


def webhook_redeliver(*, actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery's event again (a new delivery of the same event: same `webhook-id`,
    so receivers deduplicate)."""
    actor.require_role(Role.ADMIN)
    now = timezone.now()
    with transaction.atomic():
        again = WebhookDelivery.objects.create(
            endpoint=delivery.endpoint,
            event=delivery.event,
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            heartbeat_at=now,
        )
        _enqueue("deliver_webhook", str(again.id))
    return again


def _retry_schedule() -> list[int]:
    return [int(s) for s in settings.WEBHOOK_RETRY_SCHEDULE]


def _signature_header(endpoint: WebhookEndpoint, msg_id: str, ts: datetime, body: bytes) -> str:
    signatures = [Webhook(endpoint.secret).sign(msg_id, ts, body)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > ts:
        signatures.append(Webhook(endpoint.previous_secret).sign(msg_id, ts, body))
    return " ".join(signatures)


def webhook_deliver(*, delivery_id: uuid.UUID | str) -> WebhookDelivery | None:
    """One attempt of a delivery: claim it, POST the signed event through the outbound
    guard (no redirects followed, per-attempt timeout), log the attempt, then succeed,
    schedule the next attempt (exponential backoff, about a day in all) or give up and
    disable the endpoint. Idempotent: a redelivered task finds nothing to claim."""
    now = timezone.now()
    claimed = job_claim(
        WebhookDelivery,
        delivery_id,
        from_statuses=[DeliveryStatus.PENDING],
        status=DeliveryStatus.DELIVERING,
        where=Q(next_attempt_at__lte=now),
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint", "event").get(id=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled and delivery.event.type != "webhook.test":
        job_finish(
            WebhookDelivery,
            delivery.id,
            status=DeliveryStatus.FAILED,
            code="endpoint_disabled",
            reason="The endpoint is disabled.",
        )
        return delivery
    body = json.dumps(delivery.event.payload, separators=(",", ":"), ensure_ascii=False).encode()
    msg_id = str(delivery.event_id)
    headers = {
        "content-type": "application/json",
        "user-agent": "agent-platform-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": _signature_header(endpoint, msg_id, now, body),
    }
    started = time.monotonic()
    status_code: int | None = None
    excerpt = error = code = ""
    blocked = False
    try:
        response = fetch(
            endpoint.url,
            method="POST",
            headers=headers,
            content=body,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            max_bytes=settings.WEBHOOK_RESPONSE_MAX_BYTES,
            follow_redirects=False,
        )
        status_code = response.status_code
        excerpt = response.text[:1000]
        if not 200 <= status_code < 300:
            code = "http_error"
            error = f"The endpoint answered HTTP {status_code}."
            if 300 <= status_code < 400:
                error += " Redirects are not followed."
    except OutboundBlocked as exc:
        blocked, code, error = True, exc.code, exc.message
    except OutboundError as exc:
        code, error = exc.code, exc.message
    latency = int((time.monotonic() - started) * 1000)
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        requested_at=now,
        status_code=status_code,
        latency_ms=latency,
        response_excerpt=excerpt,
        error=error,
    )
    WebhookDelivery.objects.filter(id=delivery.id).update(last_status_code=status_code)
    if not code:
        job_finish(WebhookDelivery, delivery.id, status=DeliveryStatus.SUCCEEDED)
        WebhookEndpoint.objects.filter(id=endpoint.id).update(
            consecutive_failures=0, last_success_at=timezone.now()
        )
        return delivery
    WebhookEndpoint.objects.filter(id=endpoint.id).update(
        consecutive_failures=F("consecutive_failures") + 1, last_failure_at=timezone.now()
    )
    schedule = _retry_schedule()
    if not blocked and delivery.attempts <= len(schedule):
        delay = schedule[delivery.attempts - 1]
        job_release(
            WebhookDelivery,
            delivery.id,
            status=DeliveryStatus.PENDING,
            code=code,
            reason=f"Attempt {delivery.attempts} failed ({error}); next in {delay} s.",
            not_before=timezone.now() + timedelta(seconds=delay),
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
        )
        return delivery
    reason = (
        f"The URL is not allowed any more ({error})."
        if blocked
        else f"Gave up after {delivery.attempts} attempts; last: {error}"
    )
    job_finish(WebhookDelivery, delivery.id, status=DeliveryStatus.FAILED, code=code, reason=reason)
    _endpoint_disable(endpoint, reason=f"Disabled: a delivery failed for good. {reason}")
    return delivery


def _endpoint_disable(endpoint: WebhookEndpoint, *, reason: str) -> None:
    WebhookEndpoint.objects.filter(id=endpoint.id, enabled=True).update(
        enabled=False, disabled_reason=reason[:2000]
    )


def webhook_deliveries_due(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Enqueue the pending deliveries whose next attempt is due (the beat scan: retries
    after their backoff, and any whose queue message was lost). Idempotent."""
    now = _now(now)
    ids = list(
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now
        ).values_list("id", flat=True)[:limit]
    )
    with transaction.atomic():
        for delivery_id in ids:
            _enqueue("deliver_webhook", str(delivery_id))
    return len(ids)


def _delivery_retry_stale(delivery: WebhookDelivery) -> bool:
    """A delivery whose worker died mid-attempt: another attempt (at least once)."""
    with transaction.atomic():
        released = job_release(
            WebhookDelivery,
            delivery.id,
            status=DeliveryStatus.PENDING,
            code="worker_lost",
            reason="The worker stopped during the attempt; retried.",
            where=Q(heartbeat_at=delivery.heartbeat_at),
            next_attempt_at=timezone.now(),
        )
        if released:
            _enqueue("deliver_webhook", str(delivery.id))
    return released


DELIVERY_JOBS = JobKind(
    name="tasks.webhook_delivery",
    model=WebhookDelivery,
    stale_after=lambda: timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 60),
    stale_status=DeliveryStatus.FAILED,
    stale_reason="The worker stopped during the attempt.",
    retry=_delivery_retry_stale,
)


# --- inbound triggers -----------------------------------------------------------------------


def trigger_create(
    *,
    actor: Actor,
    name: str,
    agent_id: Any = None,
    task_id: Any = None,
    prompt_template: str = "",
) -> tuple[InboundTrigger, str]:
    """A trigger of the actor's workspace, run as the actor, that starts a run of an
    agent (with `prompt_template`) or an execution of a task, and its secret (returned
    this once). Raises ValidationFailed (the field named)."""
    actor.require_role(Role.MEMBER)
    if (agent_id is None) == (task_id is None):
        raise ValidationFailed("Give exactly one of agent_id and task_id.", field="agent_id")
    agent = task = None
    if agent_id is not None:
        try:
            agent = _usable_agent(actor=actor, agent_id=agent_id)
        except AgentNotFound as exc:
            raise ValidationFailed("Unknown agent.", field="agent_id") from exc
        if not prompt_template.strip():
            raise ValidationFailed("A trigger of an agent needs a prompt.", field="prompt_template")
    else:
        task = ScheduledTask.objects.filter(
            id=task_id, workspace_id=actor.workspace_id, archived_at__isnull=True
        ).first()
        if task is None:
            raise ValidationFailed("Unknown task.", field="task_id")
    validate_template(prompt_template)
    secret = _new_webhook_secret()
    trigger = InboundTrigger.objects.create(
        workspace=actor.workspace,
        owner=actor.user,
        name=name,
        agent=agent,
        task=task,
        prompt_template=prompt_template,
        secret=secret,
    )
    audit_record(
        action="trigger.create",
        actor_user=actor.user,
        workspace_id=actor.workspace_id,
        target_type="trigger",
        target_id=str(trigger.id),
    )
    return trigger, secret


def trigger_update(
    *, actor: Actor, trigger: InboundTrigger, values: dict[str, Any]
) -> InboundTrigger:
    """Rename, change the prompt, enable or disable a trigger."""
    actor.require_role(Role.MEMBER)
    if "prompt_template" in values:
        trigger.prompt_template = validate_template(values["prompt_template"])
    for name in ("name", "enabled"):
        if name in values:
            setattr(trigger, name, values[name])
    trigger.save()
    return trigger


def trigger_delete(*, actor: Actor, trigger: InboundTrigger) -> None:
    """Delete a trigger: its URL stops working at once."""
    actor.require_role(Role.MEMBER)
    audit_record(
        action="trigger.delete",
        actor_user=actor.user,
        workspace_id=trigger.workspace_id,
        target_type="trigger",
        target_id=str(trigger.id),
    )
    trigger.delete()


def trigger_authenticate(
    *, trigger_id: Any, body: bytes, headers: dict[str, str], ip: str | None
) -> InboundTrigger:
    """The enabled trigger `trigger_id` if the request carries its secret (`Authorization:
    Bearer <secret>`) or a valid Standard Webhooks signature made with it. Raises
    TriggerNotFound, TriggerUnauthorized (audited), TriggerDisabled, PayloadTooLarge."""
    try:
        pk = uuid.UUID(str(trigger_id))
    except ValueError as exc:
        raise TriggerNotFound() from exc
    trigger = InboundTrigger.objects.filter(id=pk).first()
    if trigger is None:
        raise TriggerNotFound()
    lowered = {k.lower(): v for k, v in headers.items()}
    ok = False
    if "webhook-signature" in lowered:
        try:
            Webhook(trigger.secret).verify(body, lowered, json_parse=False)
            ok = True
        except WebhookVerificationError:
            ok = False
    else:
        bearer = lowered.get("authorization", "")
        token = bearer[7:] if bearer.lower().startswith("bearer ") else ""
        ok = bool(token) and hmac.compare_digest(token.encode(), trigger.secret.encode())
    if not ok:
        _audit_trigger_call(trigger, ip=ip, outcome="unauthorized")
        raise TriggerUnauthorized()
    if not trigger.enabled:
        _audit_trigger_call(trigger, ip=ip, outcome="disabled")
        raise TriggerDisabled()
    if len(body) > settings.TRIGGER_MAX_BODY_BYTES:
        _audit_trigger_call(trigger, ip=ip, outcome="too_large")
        raise PayloadTooLarge(
            f"The body is larger than {settings.TRIGGER_MAX_BODY_BYTES} bytes.", field="body"
        )
    return trigger


def _audit_trigger_call(
    trigger: InboundTrigger, *, ip: str | None, outcome: str, **more: Any
) -> None:
    audit_record(
        action="trigger.call",
        actor_user=None,
        workspace_id=trigger.workspace_id,
        target_type="trigger",
        target_id=str(trigger.id),
        metadata={"outcome": outcome, **more},
        ip=ip,
    )


def trigger_fire(*, trigger: InboundTrigger, body: bytes, ip: str | None) -> Run:
    """Start what an authenticated trigger starts, as its owner: a run of its agent with
    the JSON body mapped into its prompt (`${body.field}`), or an execution of its task
    (the body is `$body` in the task's prompt). Returns the run. Raises ValidationFailed
    (field `body`) for a body that is not JSON, Conflict when the owner lost access."""
    try:
        payload = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed("The body is not valid JSON.", field="body") from exc
    owner_task = trigger.task or ScheduledTask(
        workspace=trigger.workspace, owner=trigger.owner, agent=trigger.agent
    )
    actor, code, reason = _owner_actor(owner_task)
    if actor is None:
        _audit_trigger_call(trigger, ip=ip, outcome=code)
        raise TriggerOwnerLostAccess(reason)
    now = timezone.now()
    InboundTrigger.objects.filter(id=trigger.id).update(last_called_at=now)
    if trigger.task is not None:
        execution = task_run_now(
            actor=actor,
            task=trigger.task,
            now=now,
            variables={"body": payload},
            trigger=ExecutionTrigger.TRIGGER,
        )
        execution.refresh_from_db()
        if execution.run_id is None:
            _audit_trigger_call(trigger, ip=ip, outcome=str(execution.status))
            raise TriggerNotStarted(execution.error_message or "The task did not start a run.")
        run = Run.objects.get(id=execution.run_id)
    else:
        assert trigger.agent is not None
        local = now.astimezone(zone("UTC"))
        prompt = render_prompt(
            trigger.prompt_template,
            {"body": payload, "date": local.date().isoformat(), "datetime": local.isoformat()},
        )
        conversation = conversation_create(
            actor=actor,
            agent=trigger.agent,
            title=f"{trigger.name} · {local:%Y-%m-%d %H:%M}",
            source=ConversationSource.TRIGGER,
        )
        run = message_send(
            actor=actor, conversation=conversation, content=prompt.strip() or "-", background=True
        )
    _audit_trigger_call(trigger, ip=ip, outcome="started", run_id=str(run.id))
    return run


def run_wait(*, run: Run, seconds: float) -> Run:
    """The run re-read until it ends or `seconds` pass (a trigger call that waits)."""
    deadline = time.monotonic() + max(0.0, seconds)
    while True:
        run.refresh_from_db()
        if run.status in TERMINAL_STATUSES or run.status == RunStatus.REQUIRES_ACTION:
            return run
        if time.monotonic() >= deadline:
            return run
        time.sleep(0.2)

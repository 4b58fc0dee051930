"""Writes of the tasks app: scheduled tasks and their executions (this part), outbound
webhooks, inbound triggers. Runs are started only through the conversations services.

Time is a parameter (`now`) wherever it decides something, so tests drive the clock.
"""

import contextlib
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from apps.agents.exceptions import AgentNotFound
from apps.agents.models import Agent
from apps.agents.selectors import access_agent
from apps.conversations.choices import TERMINAL_STATUSES, RunStatus
from apps.conversations.exceptions import RunNotCancellable
from apps.conversations.models import Conversation, Run
from apps.conversations.services import conversation_create, message_send, run_cancel
from apps.core.exceptions import ValidationFailed
from apps.tasks.choices import (
    TRANSIENT_RUN_ERRORS,
    ConversationMode,
    ExecutionStatus,
    ExecutionTrigger,
    MissedPolicy,
    OverlapPolicy,
    ScheduleKind,
)
from apps.tasks.exceptions import TaskArchived
from apps.tasks.models import ScheduledTask, TaskExecution
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


def _enqueue(name: str, *args: str) -> None:
    """Send a Celery task of this app after commit. Imported here because tasks.py
    imports this module (its entrypoints call these services)."""
    from apps.tasks import tasks as entrypoints

    task = getattr(entrypoints, name)
    transaction.on_commit(lambda: task.delay(*args))


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
    """An execution of the task now, outside its schedule (the overlap policy applies).
    Raises TaskArchived."""
    actor.require_role(Role.MEMBER)
    if task.archived_at is not None:
        raise TaskArchived()
    now = _now(now)
    with transaction.atomic():
        execution = _execution_create(
            task=task, due_at=now, now=now, trigger=trigger, variables=variables
        )
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
            reason=reason,
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
    claimed = TaskExecution.objects.filter(
        ~Exists(busy), id=execution_id, status=ExecutionStatus.PENDING, available_at__lte=now
    ).update(
        status=ExecutionStatus.RUNNING,
        attempts=F("attempts") + 1,
        started_at=now,
        heartbeat_at=now,
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
    conversation = _conversation_for(task, actor=actor, due=execution.due_at)
    TaskExecution.objects.filter(id=execution.id).update(conversation=conversation, prompt=prompt)
    # message_send commits the run and dispatches it (to a worker: background=True). The
    # execution names its run right after; a crash in between is caught by the sweep
    # (a running execution without a run and without a heartbeat is retried).
    run = message_send(
        actor=actor, conversation=conversation, content=prompt.strip() or "-", background=True
    )
    TaskExecution.objects.filter(id=execution.id).update(run=run, heartbeat_at=_now(None))
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
    conversation = conversation_create(actor=actor, agent=task.agent, title=title)
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
            retried = TaskExecution.objects.filter(
                id=execution.id, status=ExecutionStatus.RUNNING
            ).update(
                status=ExecutionStatus.PENDING,
                available_at=now + timedelta(seconds=delay),
                error_code=code,
                reason=f"Attempt {execution.attempts} failed ({message}); retrying.",
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
    task = execution.task
    with transaction.atomic():
        done = TaskExecution.objects.filter(id=execution.id, status=ExecutionStatus.RUNNING).update(
            status=status, error_code=code, reason=reason, answer=answer, finished_at=now
        )
        if not done:
            return
        if status == ExecutionStatus.SUCCEEDED:
            ScheduledTask.objects.filter(id=task.id).update(consecutive_failures=0)
        else:
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
    """Hook for the execution's outbound event (webhooks)."""


def executions_sweep(*, now: datetime | None = None) -> int:
    """The lifecycle sweep of executions (beat): settle running ones whose run ended or
    whose time limit passed, retry those whose worker died before naming a run, and
    re-enqueue pending ones that are due (retry backoff over, or a lost message).
    Idempotent. Returns how many executions it acted on."""
    now = _now(now)
    acted = 0
    running = TaskExecution.objects.filter(status=ExecutionStatus.RUNNING).select_related("task")
    stale = now - timedelta(seconds=settings.TASKS_STALE_SECONDS)
    for execution in running[:1000]:
        if execution.run_id is None and (execution.heartbeat_at or now) < stale:
            if execution.attempts > execution.task.max_retries:
                _execution_finish(
                    execution,
                    status=ExecutionStatus.FAILED,
                    code="worker_lost",
                    reason="The worker stopped before the run started, on every attempt.",
                    now=now,
                )
            elif TaskExecution.objects.filter(
                id=execution.id, status=ExecutionStatus.RUNNING, run__isnull=True
            ).update(
                status=ExecutionStatus.PENDING,
                available_at=now,
                reason="The worker stopped before the run started; retried.",
            ):
                with transaction.atomic():
                    _enqueue("execute_task", str(execution.id))
            acted += 1
            continue
        before = execution.status
        execution_settle(execution=execution, now=now)
        execution.refresh_from_db(fields=["status"])
        acted += execution.status != before
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
    """The one beat entry of scheduled tasks: sweep executions, then fire due tasks."""
    now = _now(now)
    return executions_sweep(now=now) + tasks_fire_due(now=now)

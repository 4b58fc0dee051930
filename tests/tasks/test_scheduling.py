"""Scheduled tasks: firing at the right times (the clock is driven, nothing sleeps), the
policies, auto-pause, an owner who lost access, the history."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.agents.services import agent_archive
from apps.conversations.models import Conversation, Run
from apps.providers.scripted import Reply
from apps.tasks.choices import ExecutionStatus
from apps.tasks.models import ScheduledTask, TaskExecution
from apps.tasks.schedules import next_due, render_prompt
from apps.tasks.services import (
    _fire,
    execution_start,
    task_create,
    tasks_fire_due,
)
from apps.users.models import Membership
from tests.agents.factories import actor_for
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def make_task(user, workspace, agent, now=T0, **values):
    values.setdefault("name", "Morning report")
    values.setdefault("prompt_template", "Report for $date.")
    values.setdefault("schedule_kind", "interval")
    if values["schedule_kind"] == "interval":
        values.setdefault("interval_seconds", 3600)
    return task_create(
        actor=actor_for(user=user, workspace=workspace),
        agent_id=agent.id,
        values=values,
        now=now,
    )


def statuses(task):
    return list(
        TaskExecution.objects.filter(task=task).order_by("due_at").values_list("status", flat=True)
    )


def test_one_time_task_fires_once_at_its_time(tick, user, workspace, agent, scripted_llm):
    run_at = T0 + timedelta(hours=2)
    task = make_task(user, workspace, agent, schedule_kind="once", run_at=run_at)
    assert task.next_run_at == run_at
    scripted_llm.push("All quiet.")

    assert tick(run_at - timedelta(seconds=1)) == 0
    assert TaskExecution.objects.count() == 0
    tick(run_at + timedelta(seconds=5))

    execution = TaskExecution.objects.get(task=task)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert execution.due_at == run_at
    assert execution.answer == "All quiet."
    assert execution.prompt == "Report for 2026-03-01."
    run = Run.objects.get(id=execution.run_id)
    assert run.status == "completed" and run.created_by_id == user.id
    task.refresh_from_db()
    assert task.next_run_at is None and task.last_run_at == run_at
    # Never again.
    assert tick(run_at + timedelta(days=3)) == 0
    assert TaskExecution.objects.count() == 1
    assert scripted_llm.requests[-1]["messages"][-1]["content"] == "Report for 2026-03-01."


def test_recurring_cron_task_in_a_dst_time_zone(tick, user, workspace, agent, scripted_llm):
    # 09:00 in Paris: 08:00 UTC before the DST change of 2026-03-29, 07:00 UTC after it.
    start = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    task = make_task(
        user,
        workspace,
        agent,
        now=start,
        schedule_kind="cron",
        cron="0 9 * * *",
        timezone="Europe/Paris",
        prompt_template="Day $date, before: $previous_answer",
    )
    expected = [
        datetime(2026, 3, 28, 8, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 7, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 7, 0, tzinfo=UTC),
    ]
    assert task.next_run_at == expected[0]
    scripted_llm.push("one", "two", "three")
    for due in expected:
        tick(due + timedelta(seconds=10))
    executions = list(TaskExecution.objects.filter(task=task).order_by("due_at"))
    assert [e.due_at for e in executions] == expected
    assert [e.status for e in executions] == ["succeeded"] * 3
    assert executions[1].prompt == "Day 2026-03-29, before: one"
    assert executions[2].prompt == "Day 2026-03-30, before: two"
    task.refresh_from_db()
    assert task.next_run_at == datetime(2026, 3, 31, 7, 0, tzinfo=UTC)
    # A new conversation per execution (the default).
    assert len({e.conversation_id for e in executions}) == 3


def test_own_conversation_mode_continues_one_conversation(
    tick, user, workspace, agent, scripted_llm
):
    task = make_task(user, workspace, agent, conversation_mode="own")
    scripted_llm.push("first", "second")
    tick(T0 + timedelta(hours=1, seconds=1))
    tick(T0 + timedelta(hours=2, seconds=1))
    executions = list(TaskExecution.objects.filter(task=task).order_by("due_at"))
    assert [e.status for e in executions] == ["succeeded", "succeeded"]
    assert executions[0].conversation_id == executions[1].conversation_id
    conversation = Conversation.objects.get(id=executions[0].conversation_id)
    assert conversation.runs.count() == 2
    # The second request carried the first exchange as history.
    contents = [m["content"] for m in scripted_llm.requests[-1]["messages"]]
    assert "first" in contents


def test_interval_with_start_and_end(tick, user, workspace, agent, scripted_llm):
    start = T0 + timedelta(minutes=30)
    task = make_task(
        user,
        workspace,
        agent,
        interval_seconds=600,
        start_at=start,
        end_at=start + timedelta(minutes=20),
    )
    assert task.next_run_at == start
    for minutes in (0, 10, 20, 30):
        tick(start + timedelta(minutes=minutes, seconds=1))
    assert list(TaskExecution.objects.values_list("due_at", flat=True).order_by("due_at")) == [
        start,
        start + timedelta(minutes=10),
        start + timedelta(minutes=20),
    ]
    task.refresh_from_db()
    assert task.next_run_at is None


def test_missed_runs_run_once_after_downtime(tick, user, workspace, agent, scripted_llm):
    task = make_task(user, workspace, agent)  # hourly from 08:00
    # The scheduler was down from 08:00 to 13:30: five due times missed.
    tick(T0 + timedelta(hours=5, minutes=30))
    executions = list(TaskExecution.objects.filter(task=task))
    assert len(executions) == 1 and executions[0].status == "succeeded"
    assert executions[0].due_at == T0 + timedelta(hours=1)
    task.refresh_from_db()
    assert task.next_run_at == T0 + timedelta(hours=6)


def test_missed_runs_skip_policy_records_a_skip(tick, user, workspace, agent, scripted_llm):
    task = make_task(user, workspace, agent, missed_policy="skip")
    tick(T0 + timedelta(hours=5, minutes=30))
    execution = TaskExecution.objects.get(task=task)
    assert execution.status == "skipped" and "Missed" in execution.error_message
    assert scripted_llm.requests == []
    task.refresh_from_db()
    assert task.next_run_at == T0 + timedelta(hours=6)


def _running(task, due, heartbeat=None):
    """An execution of `task` that is still running (a live worker is starting its run)."""
    return TaskExecution.objects.create(
        task=task,
        due_at=due,
        status="running",
        available_at=due,
        started_at=due,
        heartbeat_at=heartbeat or due,
        attempts=1,
    )


def test_overlap_skip_policy(tick, user, workspace, agent, scripted_llm):
    task = make_task(user, workspace, agent, time_limit_seconds=86400)
    _running(task, T0, heartbeat=T0 + timedelta(hours=1))
    tick(T0 + timedelta(hours=1, seconds=1))
    execution = TaskExecution.objects.get(task=task, due_at=T0 + timedelta(hours=1))
    assert execution.status == "skipped"
    assert execution.error_message == "The previous execution was still running."
    assert scripted_llm.requests == []


def test_overlap_queue_policy_waits_for_the_running_one(tick, user, workspace, agent, scripted_llm):
    task = make_task(user, workspace, agent, overlap_policy="queue", time_limit_seconds=86400)
    now = T0 + timedelta(hours=1, seconds=1)
    first = _running(task, T0, heartbeat=now)
    tick(now)
    queued = TaskExecution.objects.get(task=task, due_at=T0 + timedelta(hours=1))
    assert queued.status == "pending"
    execution_start(execution_id=queued.id, now=now)  # a redelivered message: refused
    queued.refresh_from_db()
    assert queued.status == "pending" and scripted_llm.requests == []
    # The first one ends (its time limit here): the queued one starts.
    task.time_limit_seconds = 10
    task.save()
    tick(now)
    first.refresh_from_db()
    queued.refresh_from_db()
    assert first.status == "failed" and first.error_code == "time_limit"
    assert queued.status == "succeeded"


def test_transient_model_error_is_retried_with_backoff(tick, user, workspace, agent, scripted_llm):
    task = make_task(user, workspace, agent, max_retries=2, retry_backoff_seconds=30)
    # The provider client retries twice itself: three 503s make the run fail.
    scripted_llm.push(Reply(status=503), Reply(status=503), Reply(status=503), "Recovered.")
    now = T0 + timedelta(hours=1, seconds=1)
    tick(now)
    execution = TaskExecution.objects.get(task=task)
    assert execution.status == "pending" and execution.attempts == 1
    assert execution.error_code == "provider_server_error"
    assert execution.available_at == now + timedelta(seconds=30)
    tick(now + timedelta(seconds=29))
    execution.refresh_from_db()
    assert execution.status == "pending"
    tick(now + timedelta(seconds=31))
    execution.refresh_from_db()
    assert execution.status == "succeeded" and execution.attempts == 2
    assert execution.answer == "Recovered."


def test_auto_pause_after_consecutive_failures(tick, user, workspace, agent, scripted_llm):
    task = make_task(user, workspace, agent, max_retries=0, max_consecutive_failures=2)
    scripted_llm.push(*[Reply(status=400)] * 4)
    tick(T0 + timedelta(hours=1, seconds=1))
    task.refresh_from_db()
    assert task.enabled and task.consecutive_failures == 1
    tick(T0 + timedelta(hours=2, seconds=1))
    task.refresh_from_db()
    assert statuses(task) == ["failed", "failed"]
    assert not task.enabled and task.consecutive_failures == 2
    assert task.paused_reason.startswith("Paused after 2 consecutive failed executions")
    assert tick(T0 + timedelta(hours=3, seconds=1)) == 0


def test_owner_who_lost_access_fails_with_a_reason_and_pauses(
    tick, user, workspace, agent, scripted_llm
):
    colleague = UserFactory(email="bob@example.com")
    Membership.objects.create(user=colleague, workspace=workspace, role="member")
    agent.visibility = "workspace"
    agent.save()
    task = make_task(colleague, workspace, agent)
    Membership.objects.filter(user=colleague, workspace=workspace).delete()
    tick(T0 + timedelta(hours=1, seconds=1))
    execution = TaskExecution.objects.get(task=task)
    assert execution.status == "failed" and execution.error_code == "owner_lost_access"
    task.refresh_from_db()
    assert not task.enabled
    assert task.paused_reason == "The task's owner no longer has access to the workspace."
    assert scripted_llm.requests == [] and Run.objects.count() == 0


def test_archived_agent_fails_with_a_reason_and_pauses(tick, user, workspace, agent, scripted_llm):
    task = make_task(user, workspace, agent)
    agent_archive(actor=actor_for(user=user, workspace=workspace), agent=agent)
    tick(T0 + timedelta(hours=1, seconds=1))
    execution = TaskExecution.objects.get(task=task)
    assert (execution.status, execution.error_code) == ("failed", "agent_archived")
    task.refresh_from_db()
    assert not task.enabled and task.paused_reason == "The task's agent was archived."


def test_a_due_time_fires_once_however_often_the_scheduler_scans(user, workspace, agent):
    task = make_task(user, workspace, agent, time_limit_seconds=86400)
    stale = ScheduledTask.objects.get(id=task.id)  # a second scheduler's stale read
    now = T0 + timedelta(hours=1, seconds=1)
    ScheduledTask.objects.filter(id=task.id).update(enabled=False)  # no execution to run
    ScheduledTask.objects.filter(id=task.id).update(enabled=True)
    first = _fire(stale, now=now)
    second = _fire(stale, now=now)
    assert first is not None and second is None
    assert tasks_fire_due(now=now) == 0
    assert TaskExecution.objects.filter(task=task).count() == 1


def test_worker_lost_before_the_run_started_is_retried(tick, user, workspace, agent, scripted_llm):
    task = make_task(user, workspace, agent)
    due = T0 + timedelta(hours=1)
    lost = _running(task, due)  # claimed, then the worker died: no run, no heartbeat
    tick(due + timedelta(minutes=5))
    lost.refresh_from_db()
    assert lost.status == "succeeded" and lost.attempts == 2 and lost.run_id is not None


def test_next_due_and_templates_units():
    assert next_due(kind="once", after=T0, run_at=T0) is None
    assert next_due(kind="interval", after=T0, interval_seconds=60, anchor=T0) == T0 + timedelta(
        seconds=60
    )
    assert (
        render_prompt(
            "${body.user.name} paid $$5 ${body.items.1}",
            {"body": {"user": {"name": "Ann"}, "items": ["a", {"b": 1}]}},
        )
        == 'Ann paid $5 {"b": 1}'
    )
    assert render_prompt("$missing!", {}) == "!"
    assert render_prompt("${__class__}", {}) == ""


def test_worker_lost_on_every_attempt_fails_the_execution(tick, user, workspace, agent):
    task = make_task(user, workspace, agent, max_retries=0)
    due = T0 + timedelta(hours=1)
    lost = _running(task, due)
    ScheduledTask.objects.filter(id=task.id).update(next_run_at=due + timedelta(hours=1))
    tick(due + timedelta(minutes=5))
    lost.refresh_from_db()
    assert (lost.status, lost.error_code) == ("failed", "worker_lost")
    task.refresh_from_db()
    assert task.consecutive_failures == 1


SCHEDULER = """
import json, sys
from datetime import datetime
from unittest import mock
from apps.tasks import services

now = datetime.fromisoformat(sys.argv[1])
enqueued = []
# What the scan hands to Celery is recorded, not run (the runs are not this test's subject).
with mock.patch.object(services, "job_enqueue", lambda name, *args: enqueued.append(args[0])):
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's "go": both scan at the same moment
    created = [services.tasks_fire_due(now=now) for _ in range(3)]
print(json.dumps({"created": created, "enqueued": enqueued}), flush=True)
"""


@pytest.mark.slow
def test_two_scheduler_processes_create_each_due_time_once(user, workspace, agent):
    """Two scheduler processes (separate OS processes, each with its own database
    connection: two PostgreSQL sessions on the production profile, two writers of the
    SQLite file on the embedded one) scan the same due tasks at the same moment, three
    times each. Each (task, due time) gets exactly one execution, enqueued once."""
    import json
    import subprocess

    from tests.workers import start_worker

    tasks = [make_task(user, workspace, agent, name=f"t{i}") for i in range(30)]
    now = T0 + timedelta(hours=1, seconds=1)
    procs = [
        start_worker(
            SCHEDULER,
            [now.isoformat()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            line = proc.stdout.readline()
            assert line == "ready\n", proc.stderr.read()[-3000:]
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sum(n for r in results for n in r["created"]) == len(tasks), results
    # Repeated scans find nothing more to create.
    assert all(r["created"][1:] == [0, 0] for r in results)
    executions = TaskExecution.objects.filter(task__in=tasks)
    assert sorted(executions.values_list("task_id", flat=True)) == sorted(t.id for t in tasks)
    assert set(executions.values_list("due_at", flat=True)) == {T0 + timedelta(hours=1)}
    enqueued = [e for r in results for e in r["enqueued"]]
    assert sorted(enqueued) == sorted(str(i) for i in executions.values_list("id", flat=True))
    for task in tasks:
        task.refresh_from_db()
        assert task.next_run_at == T0 + timedelta(hours=2)

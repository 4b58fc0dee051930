"""The run service (services.message_send / run_start / run_cancel) without a server: fast
tests of what every caller goes through, and the Celery caller over real HTTP."""

from datetime import timedelta

import pytest
from celery.signals import task_prerun
from django.utils import timezone

from apps.conversations.models import Message, Run, RunEvent
from apps.conversations.services import message_send, run_cancel, run_start
from apps.core.jobs import jobs_sweep
from tests.agents.factories import actor_for
from tests.conversations.factories import make_conversation


@pytest.fixture
def tasks_run():
    """Names of the Celery tasks that ran (eager in tests: in the calling thread)."""
    names: list[str] = []

    def record(sender=None, **kwargs):
        names.append(sender.name)

    task_prerun.connect(record, weak=False)
    yield names
    task_prerun.disconnect(record)


def _types(run):
    rows = RunEvent.objects.filter(run_id=run.id).order_by("cursor")
    return [r.type for r in rows]


def test_outside_a_server_a_send_runs_in_a_celery_task(
    transactional_db, user, workspace, chat_agent, scripted_llm, tasks_run
):
    scripted_llm.push("Answered by the worker.")
    conv = make_conversation(agent=chat_agent, user=user, title="Kept")
    actor = actor_for(user=user, workspace=workspace)

    run = message_send(actor=actor, conversation=conv, content="hello")

    run.refresh_from_db()
    assert tasks_run == ["conversations.drive"]
    assert run.status == "completed"
    assert Message.objects.get(id=run.answer_message_id).text == "Answered by the worker."
    types = _types(run)
    assert types[0] == "run.started" and types[-3:] == ["run.completed", "done", "end"]
    assert "title" not in types  # the conversation has one


def test_a_queued_run_cancelled_never_starts(
    transactional_db, user, workspace, chat_agent, scripted_llm, tasks_run
):
    conv = make_conversation(agent=chat_agent, user=user)
    actor = actor_for(user=user, workspace=workspace)
    queued = Run.objects.create(
        conversation=conv,
        workspace=workspace,
        agent=chat_agent,
        created_by=user,
        pending_input={"content": "later"},
    )

    cancelled = run_cancel(actor=actor, run=queued)
    run_start(conversation_id=conv.id)

    assert cancelled.status == "cancelled"
    assert Run.objects.get(id=queued.id).status == "cancelled"
    assert scripted_llm.requests == []
    assert not Message.objects.filter(conversation=conv).exists()
    assert tasks_run == ["conversations.drive"]  # it looked, and found nothing to start


def test_run_cancel_refuses_a_finished_run(transactional_db, user, workspace, chat_agent):
    from apps.conversations.exceptions import RunNotCancellable

    conv = make_conversation(agent=chat_agent, user=user)
    done = Run.objects.create(
        conversation=conv, workspace=workspace, agent=chat_agent, created_by=user, status="failed"
    )
    with pytest.raises(RunNotCancellable):
        run_cancel(actor=actor_for(user=user, workspace=workspace), run=done)
    assert Run.objects.get(id=done.id).status == "failed"


def test_the_job_sweep_ends_a_dead_process_run_interrupted_with_its_events(
    transactional_db, user, workspace, chat_agent
):
    conv = make_conversation(agent=chat_agent, user=user)
    long_ago = timezone.now() - timedelta(minutes=5)
    dead = Run.objects.create(
        conversation=conv,
        workspace=workspace,
        agent=chat_agent,
        created_by=user,
        status="running",
        worker_id="gone-host:1:dead",
        heartbeat_at=long_ago,
        started_at=long_ago,
    )
    alive = Run.objects.create(
        conversation=make_conversation(agent=chat_agent, user=user),
        workspace=workspace,
        agent=chat_agent,
        created_by=user,
        status="running",
        worker_id="other-host:2:alive",
        heartbeat_at=timezone.now(),
        started_at=long_ago,
    )

    counts = jobs_sweep()  # what beat's core.sweep_stale_jobs runs

    assert counts["conversations.run"] == 1
    dead.refresh_from_db()
    assert (dead.status, dead.error_code) == ("interrupted", "interrupted")
    assert dead.error_message == "The process executing the run stopped."
    assert dead.finished_at is not None
    assert _types(dead) == ["run.interrupted", "done", "end"]
    assert Run.objects.get(id=alive.id).status == "running"
    assert jobs_sweep()["conversations.run"] == 0  # idempotent


@pytest.mark.slow
def test_background_send_over_http_runs_in_celery(http, chat_agent, scripted_llm, tasks_run):
    scripted_llm.push("Background answer.")
    conv_id = http.post("/api/v1/conversations", json={"agent_id": str(chat_agent.id)}).json()[
        "data"
    ]["id"]

    r = http.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"content": "hi", "background": True}
    )

    assert r.status_code == 202, r.text
    run = Run.objects.get(id=r.json()["data"]["id"])
    assert run.background is True
    assert "conversations.drive" in tasks_run  # not an asyncio task of the server
    assert run.status == "completed"  # eager: the task ran before the response
    assert Message.objects.get(id=run.answer_message_id).text == "Background answer."

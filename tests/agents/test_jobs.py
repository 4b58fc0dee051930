"""The asynchronous helper jobs, run by Celery (eager in tests) against the scripted model
server over real HTTP."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.agents import services
from apps.agents.models import AgentJob
from apps.agents.services import agent_job_cancel, agent_job_claim, agent_job_finish
from apps.agents.tasks import run_agent_job
from apps.core.jobs import job_kind_sweep
from apps.core.tasks import sweep_stale_jobs
from apps.providers.scripted import Reply
from apps.users.choices import Role
from tests.agents.factories import actor_for, make_tool
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.providers.factories import make_scripted_provider
from tests.users.factories import UserFactory, add_member, make_workspace
from tests.workers import kill_worker_when

pytestmark = pytest.mark.django_db


@pytest.fixture
def llm(scripted_llm, workspace):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    return scripted_llm


def _submit(api, path, payload, capture):
    with capture(execute=True):
        response = api.post(f"/api/v1/agent-jobs/{path}", payload, format="json")
    return response


DRAFT = {
    "name": "Travel Planner",
    "description": "Plans trips.",
    "system_prompt": "You plan trips step by step.",
    "opening_message": "Where to?",
    "starter_questions": ["Plan a weekend in Rome", "Cheap flights?"],
    "tool_ids": [],
    "builtin_tools": ["current_time", "rm_rf"],
}


def test_generate_an_agent_draft(api, workspace, llm, django_capture_on_commit_callbacks):
    tool = make_tool(workspace=workspace, name="flights")
    make_tool(workspace=workspace, name="not_offered")
    reply = {**DRAFT, "tool_ids": [str(tool.id), "made-up-id"]}
    llm.push("```json\n" + json.dumps(reply) + "\n```")
    response = _submit(
        api,
        "generate-agent",
        {"description": "An agent that plans trips", "tool_ids": [str(tool.id)]},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202, response.content
    submitted = response.json()["data"]
    assert (submitted["kind"], submitted["status"], submitted["result"]) == (
        "generate_agent",
        "queued",
        None,
    )
    job = api.get(f"/api/v1/agent-jobs/{submitted['id']}").json()["data"]
    assert job["status"] == "succeeded", job
    assert job["error"] is None
    assert job["result"] == {
        **DRAFT,
        "tool_ids": [str(tool.id)],  # only tools that were offered
        "builtin_tools": ["current_time"],  # only built-ins that exist
    }
    assert job["started_at"] and job["finished_at"]
    (request,) = llm.requests
    assert request["model"] == "scripted-chat"
    prompt = request["messages"][-1]["content"]
    assert "An agent that plans trips" in prompt
    assert f"id {tool.id}: flights" in prompt and "not_offered" not in prompt
    # The draft is directly usable to create the agent.
    created = api.post(
        "/api/v1/agents", job["result"] | {"builtin_tools": ["current_time"]}, format="json"
    )
    assert created.status_code == 201, created.content


def test_optimize_a_system_prompt(api, llm, django_capture_on_commit_callbacks):
    llm.push(json.dumps({"system_prompt": "You are a concise assistant.", "changes": ["Shorter"]}))
    response = _submit(
        api,
        "optimize-prompt",
        {"system_prompt": "you help people", "goal": "be concise"},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202
    job = api.get(f"/api/v1/agent-jobs/{response.json()['data']['id']}").json()["data"]
    assert (job["kind"], job["status"]) == ("optimize_prompt", "succeeded")
    assert job["input"] == {"system_prompt": "you help people", "goal": "be concise"}
    assert job["result"] == {
        "system_prompt": "You are a concise assistant.",
        "changes": ["Shorter"],
    }
    content = llm.requests[0]["messages"][-1]["content"]
    assert "you help people" in content and "be concise" in content


def test_a_reply_that_is_not_the_asked_json_fails_readably(
    api, llm, django_capture_on_commit_callbacks
):
    llm.push("Sure! Here is a better prompt: be nice.")
    response = _submit(
        api, "optimize-prompt", {"system_prompt": "x"}, django_capture_on_commit_callbacks
    )
    job = AgentJob.objects.get(pk=response.json()["data"]["id"])
    assert (job.status, job.error_code) == ("failed", "invalid_model_output")
    assert job.error_message == "The model did not reply with a JSON object."
    data = api.get(f"/api/v1/agent-jobs/{job.id}").json()["data"]
    assert data["error"] == {
        "code": "invalid_model_output",
        "message": "The model did not reply with a JSON object.",
    }
    assert data["result"] is None


def test_a_draft_without_a_system_prompt_fails(api, llm, django_capture_on_commit_callbacks):
    llm.push(json.dumps({"name": "X"}))
    response = _submit(
        api, "generate-agent", {"description": "x"}, django_capture_on_commit_callbacks
    )
    job = AgentJob.objects.get(pk=response.json()["data"]["id"])
    assert (job.status, job.error_code, job.error_message) == (
        "failed",
        "invalid_model_output",
        'The model\'s reply has no "system_prompt".',
    )


def test_a_provider_error_fails_the_job_with_its_code(api, llm, django_capture_on_commit_callbacks):
    llm.push(Reply(status=400, error_message="bad things"))
    response = _submit(
        api, "optimize-prompt", {"system_prompt": "x"}, django_capture_on_commit_callbacks
    )
    job = AgentJob.objects.get(pk=response.json()["data"]["id"])
    assert (job.status, job.error_code) == ("failed", "provider_bad_request")
    assert job.error_message and job.finished_at is not None


def test_without_a_default_model_the_job_fails(
    api, scripted_llm, django_capture_on_commit_callbacks
):
    response = _submit(
        api, "optimize-prompt", {"system_prompt": "x"}, django_capture_on_commit_callbacks
    )
    job = AgentJob.objects.get(pk=response.json()["data"]["id"])
    assert (job.status, job.error_code) == ("failed", "no_model_configured")
    assert scripted_llm.requests == []


def test_the_job_time_limit_ends_it_failed(
    api, llm, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("apps.agents.services.JOB_TIMEOUT_SECONDS", 0.5)
    llm.push(Reply(text="{}", first_byte_delay=3))
    response = _submit(
        api, "optimize-prompt", {"system_prompt": "x"}, django_capture_on_commit_callbacks
    )
    job = AgentJob.objects.get(pk=response.json()["data"]["id"])
    assert (job.status, job.error_code, job.error_message) == (
        "failed",
        "job_timeout",
        "The model did not answer within 0.5 seconds.",
    )


def test_cancel_a_queued_job_then_the_worker_skips_it(api, llm):
    response = api.post("/api/v1/agent-jobs/optimize-prompt", {"system_prompt": "x"}, format="json")
    job_id = response.json()["data"]["id"]  # on_commit not run: still queued
    cancelled = api.post(f"/api/v1/agent-jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    data = cancelled.json()["data"]
    assert (data["status"], data["error"]) == (
        "cancelled",
        {"code": "cancelled", "message": "Cancelled by the user."},
    )
    assert api.post(f"/api/v1/agent-jobs/{job_id}/cancel").json()["data"]["status"] == "cancelled"
    assert run_agent_job(job_id) is None
    assert AgentJob.objects.get(pk=job_id).status == "cancelled"
    assert llm.requests == []


def test_a_finished_job_cannot_be_cancelled(api, llm, django_capture_on_commit_callbacks):
    llm.push(json.dumps({"system_prompt": "better"}))
    response = _submit(
        api, "optimize-prompt", {"system_prompt": "x"}, django_capture_on_commit_callbacks
    )
    job_id = response.json()["data"]["id"]
    assert_error(api.post(f"/api/v1/agent-jobs/{job_id}/cancel"), 409, "agent_job_finished")
    job = AgentJob.objects.get(pk=job_id)
    assert (job.status, job.result) == ("succeeded", {"system_prompt": "better", "changes": []})


def test_status_transitions_are_conditional(user, workspace):
    actor = actor_for(user=user, workspace=workspace)
    job = AgentJob.objects.create(
        workspace=workspace, created_by=user, kind="optimize_prompt", input={"system_prompt": "x"}
    )
    assert agent_job_claim(job_id=job.id) is not None
    assert agent_job_claim(job_id=job.id) is None  # a redelivered task does nothing
    agent_job_cancel(actor=actor, job=job)  # cancelled while running
    assert agent_job_finish(job_id=job.id, status="succeeded", result={"x": 1}) is False
    job.refresh_from_db()
    assert (job.status, job.result) == ("cancelled", None)


def test_a_redelivered_task_calls_the_model_once(api, llm, django_capture_on_commit_callbacks):
    llm.push(json.dumps({"system_prompt": "better"}))
    response = _submit(
        api, "optimize-prompt", {"system_prompt": "x"}, django_capture_on_commit_callbacks
    )
    job_id = response.json()["data"]["id"]
    assert run_agent_job(job_id) is None
    assert len(llm.requests) == 1
    assert AgentJob.objects.get(pk=job_id).status == "succeeded"


def test_stale_jobs_are_failed_with_a_reason(user, workspace):
    old = timezone.now() - timedelta(hours=2)
    queued = AgentJob.objects.create(workspace=workspace, created_by=user, kind="optimize_prompt")
    running = AgentJob.objects.create(
        workspace=workspace,
        created_by=user,
        kind="optimize_prompt",
        status="running",
        started_at=old,
        heartbeat_at=old,
    )
    fresh = AgentJob.objects.create(workspace=workspace, created_by=user, kind="optimize_prompt")
    AgentJob.objects.filter(pk__in=[queued.pk, running.pk]).update(created_at=old, updated_at=old)
    assert sweep_stale_jobs()["agents.job"] == 2
    assert sweep_stale_jobs()["agents.job"] == 0
    queued.refresh_from_db()
    running.refresh_from_db()
    fresh.refresh_from_db()
    assert (queued.status, queued.error_code) == ("failed", "job_expired")
    assert queued.error_message == "No worker picked the job up in time; submit it again."
    assert running.error_message.startswith("The worker running the job stopped")
    assert fresh.status == "queued"


def test_bad_job_input_names_the_field(api, workspace):
    other = make_workspace(owner=UserFactory())
    foreign = make_tool(workspace=other)
    response = api.post("/api/v1/agent-jobs/generate-agent", {"description": ""}, format="json")
    assert_error(response, 400, "validation_error")
    assert response.json()["error"]["details"][0]["field"] == "description"
    response = api.post(
        "/api/v1/agent-jobs/generate-agent",
        {"description": "x", "tool_ids": [str(foreign.id)]},
        format="json",
    )
    assert_error(response, 400, "validation_error")
    assert response.json()["error"]["details"][0]["field"] == "tool_ids[0]"
    response = api.post(
        "/api/v1/agent-jobs/optimize-prompt", {"system_prompt": "  "}, format="json"
    )
    assert_error(response, 400, "validation_error")
    assert AgentJob.objects.count() == 0


def test_jobs_are_private_to_their_submitter(api, user, workspace, outsider, client_for):
    job = AgentJob.objects.create(workspace=workspace, created_by=user, kind="optimize_prompt")
    for method, url in (
        ("get", f"/api/v1/agent-jobs/{job.id}"),
        ("post", f"/api/v1/agent-jobs/{job.id}/cancel"),
    ):
        assert_outsiders_get_404(method=method, url=url, outsider=outsider, obj=job)
    colleague = UserFactory()
    add_member(workspace=workspace, user=colleague, role=Role.ADMIN)
    client = client_for(colleague)
    headers = {"HTTP_X_WORKSPACE_ID": str(workspace.id)}
    assert_error(client.get(f"/api/v1/agent-jobs/{job.id}", **headers), 404, "agent_job_not_found")
    assert client.get("/api/v1/agent-jobs", **headers).json()["data"] == []
    assert [j["id"] for j in api.get("/api/v1/agent-jobs").json()["data"]] == [str(job.id)]


def test_a_running_job_heartbeats_while_it_waits_for_the_model(
    api, llm, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(services, "JOB_HEARTBEAT_SECONDS", 0.05)
    llm.push(Reply(text=json.dumps({"system_prompt": "better"}), first_byte_delay=0.4))
    response = _submit(
        api, "optimize-prompt", {"system_prompt": "x"}, django_capture_on_commit_callbacks
    )
    job = AgentJob.objects.get(pk=response.json()["data"]["id"])
    assert (job.status, job.attempts) == ("succeeded", 1)
    # It said it was alive while the model took its time, so the sweep left it alone.
    assert job.heartbeat_at - job.started_at >= timedelta(seconds=0.2)


WORKER = """
import sys
from apps.agents.tasks import run_agent_job
run_agent_job(sys.argv[1])
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_whose_worker_is_killed_ends_failed_within_the_sweep_bound(user, workspace, llm):
    """A real worker process takes the job and is killed (SIGKILL) while it waits for the
    model. The stale sweep leaves the job alone until JOB_STALE_AFTER has passed since
    its last heartbeat, then ends it `failed` with a reason a person can read."""
    llm.push(Reply(text=json.dumps({"system_prompt": "late"}), first_byte_delay=20))
    job = AgentJob.objects.create(
        workspace=workspace, created_by=user, kind="optimize_prompt", input={"system_prompt": "x"}
    )

    def waiting_for_the_model() -> bool:
        job.refresh_from_db()
        return job.status == "running" and bool(llm.requests)

    kill_worker_when(WORKER, [str(job.id)], waiting_for_the_model)
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("running", 1)
    last_beat = job.heartbeat_at
    stale_after = services.JOB_STALE_AFTER
    assert sweep_stale_jobs.apply(kwargs={}).get()["agents.job"] == 0  # not stale yet
    assert job_kind_sweep(services.AGENT_JOBS, now=last_beat + stale_after) == 0
    assert job_kind_sweep(services.AGENT_JOBS, now=last_beat + stale_after * 2) == 1
    job.refresh_from_db()
    assert (job.status, job.error_code, job.error_message, job.result) == (
        "failed",
        "job_expired",
        "The worker running the job stopped before it finished; submit it again.",
        None,
    )

"""A schedule and an inbound trigger start the same workflow (its published version)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.tasks.models import TaskExecution
from apps.workflows.models import WorkflowRun
from tests.helpers import assert_error
from tests.workflows.conftest import WORKFLOWS, create_workflow, run_detail, simple_flow

pytestmark = pytest.mark.django_db(transaction=True)


def greeting_flow():
    return simple_flow(
        {"id": "greet", "type": "template", "template": "Hello {{ inputs.name }}"},
        inputs={"name": {"type": "string", "default": "nobody"}},
    )


def test_a_schedule_starts_the_workflow(api, agent, tick):
    workflow = create_workflow(api, greeting_flow())
    response = api.post(
        "/api/v1/tasks",
        {
            "name": "Hourly greeting",
            "workflow_id": workflow["id"],
            "workflow_inputs": {"name": "schedule"},
            "schedule_kind": "interval",
            "interval_seconds": 3600,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    task = response.json()["data"]
    assert task["workflow_id"] == workflow["id"] and task["agent_id"] is None
    tick(timezone.now() + timedelta(hours=1, seconds=5))
    execution = TaskExecution.objects.get(task_id=task["id"])
    assert execution.status == "succeeded", (execution.error_code, execution.error_message)
    run = run_detail(api, execution.workflow_run_id)
    assert run["source"] == "schedule"
    assert run["outputs"] == {"result": {"text": "Hello schedule"}}
    assert json.loads(execution.answer) == run["outputs"]
    executions = api.get(f"/api/v1/tasks/{task['id']}/executions").json()["data"]
    assert executions[0]["workflow_run_id"] == run["id"]


def test_a_task_needs_exactly_one_target(api, agent):
    workflow = create_workflow(api, greeting_flow())
    body = {"name": "x", "schedule_kind": "interval", "interval_seconds": 3600}
    both = {
        **body,
        "workflow_id": workflow["id"],
        "agent_id": str(agent.id),
        "prompt_template": "x",
    }
    assert_error(api.post("/api/v1/tasks", both, format="json"), 400, "validation_error")
    unknown = {**body, "workflow_id": "00000000-0000-0000-0000-000000000000"}
    error = assert_error(api.post("/api/v1/tasks", unknown, format="json"), 400, "validation_error")
    assert error["error"]["details"][0]["field"] == "workflow_id"


def test_an_inbound_trigger_starts_the_workflow_with_its_body(api, agent):
    workflow = create_workflow(api, greeting_flow())
    response = api.post(
        "/api/v1/triggers", {"name": "Greeter", "workflow_id": workflow["id"]}, format="json"
    )
    assert response.status_code == 201, response.content
    trigger = response.json()["data"]
    assert trigger["workflow_id"] == workflow["id"]
    caller = APIClient()
    fired = caller.post(
        trigger["url"],
        data=json.dumps({"name": "trigger"}).encode(),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {trigger['secret']}",
    )
    assert fired.status_code == 202, fired.content
    data = fired.json()["data"]
    assert data["run_id"] is None
    assert data["status_url"] == f"{WORKFLOWS}/runs/{data['workflow_run_id']}"
    run = run_detail(api, data["workflow_run_id"])
    assert run["source"] == "trigger"
    assert run["status"] == "succeeded"
    assert run["outputs"] == {"result": {"text": "Hello trigger"}}
    # A body that is not the workflow's inputs is refused, naming the input.
    bad = caller.post(
        trigger["url"],
        data=json.dumps({"nme": "typo"}).encode(),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {trigger['secret']}",
    )
    body = assert_error(bad, 400, "invalid_inputs")
    assert body["error"]["details"][0]["field"] == "inputs.nme"
    assert WorkflowRun.objects.count() == 1

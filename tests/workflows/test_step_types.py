"""The step types not covered by the end-to-end flow: loop, sub-workflow, HTTP request
(through the outbound guard), and a step timeout."""

import json

import pytest

from apps.workflows.models import WorkflowRun
from tests.workflows.conftest import (
    create_workflow,
    run_detail,
    simple_flow,
    start_run,
    steps_by_id,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_loop_over_a_list_with_a_model_call_body(api, agent, scripted_llm):
    definition = simple_flow(
        {
            "id": "each",
            "type": "loop",
            "items": "{{ inputs.topics }}",
            "max_items": 3,
            "body": {"type": "model_call", "prompt": "{{ index }}: {{ item }}"},
        },
        inputs={"topics": {"type": "array", "required": True}},
    )
    workflow = create_workflow(api, definition)
    scripted_llm.push("A", "B")
    run = run_detail(api, start_run(api, workflow["id"], {"topics": ["red", "blue"]})["id"])
    assert run["status"] == "succeeded", run
    assert run["outputs"]["result"] == {"items": [{"text": "A"}, {"text": "B"}], "count": 2}
    assert [r["messages"][-1]["content"] for r in scripted_llm.requests] == ["0: red", "1: blue"]
    # Over its bound: the step fails with the reason, before any model call.
    too_many = run_detail(api, start_run(api, workflow["id"], {"topics": [1, 2, 3, 4]})["id"])
    assert too_many["status"] == "failed"
    assert too_many["error"]["step_id"] == "each"
    assert too_many["error"]["code"] == "too_many_items"
    assert len(scripted_llm.requests) == 2


def test_sub_workflow_runs_the_published_child(api, agent):
    child = create_workflow(
        api,
        simple_flow(
            {"id": "shout", "type": "template", "template": "{{ inputs.word | upper }}"},
            inputs={"word": {"type": "string", "required": True}},
        ),
        name="Child",
    )
    parent = create_workflow(
        api,
        simple_flow(
            {
                "id": "call",
                "type": "sub_workflow",
                "workflow_id": child["id"],
                "inputs": {"word": "{{ inputs.word }}"},
            },
            inputs={"word": {"type": "string"}},
        ),
        name="Parent",
    )
    run = run_detail(api, start_run(api, parent["id"], {"word": "hey"})["id"])
    assert run["status"] == "succeeded", run
    assert run["outputs"] == {"result": {"result": {"text": "HEY"}}}
    child_run = WorkflowRun.objects.get(parent_run_id=run["id"])
    assert (child_run.source, child_run.status) == ("workflow", "succeeded")
    # Sub-workflow runs are not listed among the top-level runs.
    listed = api.get("/api/v1/workflows/runs").json()["data"]
    assert [r["id"] for r in listed] == [run["id"]]


def test_http_request_goes_through_the_outbound_guard(api, agent, receiver, settings):
    definition = simple_flow(
        {
            "id": "post",
            "type": "http_request",
            "method": "POST",
            "url": receiver.url + "/hook",
            "body": {"n": "{{ inputs.n }}"},
        },
        inputs={"n": {"type": "integer"}},
    )
    workflow = create_workflow(api, definition)
    run = run_detail(api, start_run(api, workflow["id"], {"n": 5})["id"])
    assert run["status"] == "succeeded", run
    assert steps_by_id(run)["post"]["output"] == {"status_code": 200, "body": {"ok": True}}
    assert json.loads(receiver.requests[-1]["body"]) == {"n": 5}
    # Without the loopback allowance the guard refuses the private address.
    settings.OUTBOUND_ALLOWED_HOSTS = []
    blocked = run_detail(api, start_run(api, workflow["id"], {"n": 6})["id"])
    assert blocked["status"] == "failed"
    assert blocked["error"]["step_id"] == "post"
    assert len(receiver.requests) == 1


def test_a_step_over_its_timeout_fails_the_run(api, agent, receiver):
    receiver.script = [(200, 2.0)]
    definition = simple_flow(
        {
            "id": "slow",
            "type": "http_request",
            "method": "POST",
            "url": receiver.url,
            "timeout_seconds": 0.5,
        }
    )
    workflow = create_workflow(api, definition)
    run = run_detail(api, start_run(api, workflow["id"])["id"])
    assert run["status"] == "failed"
    assert run["error"]["step_id"] == "slow"
    assert run["error"]["code"] in {"step_timeout", "outbound_error"}

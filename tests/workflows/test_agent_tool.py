"""A published workflow as an agent's tool: exposed through POST /workflows/{id}/tool (its
start inputs become the tool's JSON-Schema parameters), attached to an agent like any
tool, and called by the model (the scripted model server) over real HTTP: the call starts
an `agent_tool` run and returns its outputs, a failure is a tool error naming the step,
an approval is a result with the run id."""

import json

import pytest

from apps.providers.scripted import Reply, ToolCall
from apps.skills.models import Tool
from apps.workflows.models import Workflow, WorkflowRun
from tests.conversations.conftest import read_sse
from tests.helpers import assert_outsiders_get_404
from tests.workflows.conftest import WORKFLOWS, create_workflow, simple_flow

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _shout_flow():
    return simple_flow(
        {"id": "shout", "type": "template", "template": "{{ inputs.word | upper }}!"},
        inputs={
            "word": {"type": "string", "required": True, "description": "What to shout."},
            "times": {"type": "integer", "default": 1},
        },
    )


def _expose(http, workflow_id, status=201):
    r = http.post(f"{WORKFLOWS}/{workflow_id}/tool")
    assert r.status_code == status, r.text
    return r.json()["data"]


def _ask(http, agent, content):
    r = http.post("/api/v1/conversations", json={"agent_id": str(agent.id)})
    assert r.status_code == 201, r.text
    conv_id = r.json()["data"]["id"]
    with http.stream(
        "POST",
        f"/api/v1/conversations/{conv_id}/messages",
        json={"content": content, "stream": True},
    ) as response:
        return read_sse(response)


def _tool_results(events):
    return {e["data"]["tool_call_id"]: e["data"] for e in events if e["type"] == "tool.result"}


def test_an_agent_calls_the_workflow_tool_and_answers_with_its_output(http, agent, scripted_llm):
    r = http.post(WORKFLOWS, json={"name": "Shouter", "definition": _shout_flow()})
    assert r.status_code == 201, r.text
    wid = r.json()["data"]["id"]
    # Not published yet: no tool.
    assert http.post(f"{WORKFLOWS}/{wid}/tool").json()["error"]["code"] == (
        "workflow_not_published"
    )
    assert http.post(f"{WORKFLOWS}/{wid}/publish", json={}).status_code == 200
    tool = _expose(http, wid)
    assert (tool["name"], tool["source"]) == ("shouter", "workflow")
    assert tool["parameters"] == {
        "type": "object",
        "properties": {
            "word": {"type": "string", "description": "What to shout."},
            "times": {"type": "integer", "default": 1},
        },
        "required": ["word"],
        "additionalProperties": False,
    }
    assert _expose(http, wid, status=200)["id"] == tool["id"]  # refreshed, not duplicated
    r = http.patch(f"/api/v1/agents/{agent.id}", json={"tool_ids": [tool["id"]]})
    assert r.status_code == 200, r.text

    scripted_llm.push(
        Reply(tool_calls=[ToolCall("shouter", {"word": "hey"}, id="c1")]),
        "The workflow shouted HEY!",
        "Title",
    )
    events = _ask(http, agent, "Shout hey")

    offered = [t["function"]["name"] for t in scripted_llm.requests[0].get("tools", [])]
    assert "shouter" in offered
    result = _tool_results(events)["c1"]
    assert result["is_error"] is False, result
    assert json.loads(result["content"]) == {"result": {"text": "HEY!"}}
    # The model got the workflow's outputs as the tool result, and answered with them.
    tool_messages = [m for m in scripted_llm.requests[1]["messages"] if m["role"] == "tool"]
    assert "HEY!" in tool_messages[-1]["content"]
    done = [e["data"] for e in events if e["type"] == "answer.done"][-1]
    assert "HEY" in done["content"]
    run = WorkflowRun.objects.get(workflow_id=wid)
    assert (run.source, run.status, run.inputs) == (
        "agent_tool",
        "succeeded",
        {"word": "hey", "times": 1},
    )


def test_a_failed_run_is_a_tool_error_and_an_approval_returns_the_run_id(http, agent, scripted_llm):
    failing = simple_flow({"id": "fetch", "type": "http_request", "url": "http://127.0.0.1:9/x"})
    r = http.post(WORKFLOWS, json={"name": "Fetcher", "definition": failing})
    assert r.status_code == 201, r.text
    fail_id = r.json()["data"]["id"]
    waiting = simple_flow({"id": "check", "type": "approval", "message": "Sign off please"})
    r = http.post(WORKFLOWS, json={"name": "Gate", "definition": waiting})
    assert r.status_code == 201, r.text
    wait_id = r.json()["data"]["id"]
    tool_ids = []
    for wid in (fail_id, wait_id):
        assert http.post(f"{WORKFLOWS}/{wid}/publish", json={}).status_code == 200
        tool_ids.append(_expose(http, wid)["id"])
    assert http.patch(f"/api/v1/agents/{agent.id}", json={"tool_ids": tool_ids}).status_code == 200

    scripted_llm.push(
        Reply(tool_calls=[ToolCall("fetcher", {}, id="c1")]),
        Reply(tool_calls=[ToolCall("gate", {}, id="c2")]),
        Reply(tool_calls=[ToolCall("gate", {"nope": 1}, id="c3")]),
        "Done.",
        "Title",
    )
    results = _tool_results(_ask(http, agent, "Go"))

    failed_run = WorkflowRun.objects.get(workflow_id=fail_id)
    assert (failed_run.source, failed_run.status) == ("agent_tool", "failed")
    assert results["c1"]["is_error"] is True
    assert results["c1"]["content"] == (
        f"The workflow run {failed_run.id} failed at step fetch: "
        + failed_run.error_message.removeprefix("Step fetch: ")
    )
    assert "127.0.0.1 could not be reached" in results["c1"]["content"]

    waiting_run = WorkflowRun.objects.get(workflow_id=wait_id)
    assert waiting_run.status == "waiting_for_approval"
    assert results["c2"]["is_error"] is False
    assert str(waiting_run.id) in results["c2"]["content"]
    waiting_text = "waiting for a member's approval at step check: Sign off please"
    assert waiting_text in results["c2"]["content"]
    # Arguments outside the schema never start a run.
    assert results["c3"]["is_error"] is True and "nope" in results["c3"]["content"]
    assert WorkflowRun.objects.filter(workflow_id=wait_id).count() == 1


def test_another_workspaces_workflow_cannot_be_exposed_and_delete_removes_the_tool(
    api, agent, outsider
):
    workflow = create_workflow(api, _shout_flow())
    wid = workflow["id"]
    obj = Workflow.objects.get(id=wid)
    for method in ("POST", "DELETE"):
        assert_outsiders_get_404(
            method=method, url=f"{WORKFLOWS}/{wid}/tool", outsider=outsider, obj=obj
        )
    assert not Tool.objects.filter(source="workflow").exists()
    r = api.post(f"{WORKFLOWS}/{wid}/tool")
    assert r.status_code == 201, r.content
    tool_id = r.json()["data"]["id"]
    assert outsider.get(f"/api/v1/tools/{tool_id}").status_code == 404
    # Direct execution through the tools API runs the workflow too.
    r = api.post(f"/api/v1/tools/{tool_id}/exec", {"arguments": {"word": "yo"}}, format="json")
    assert r.status_code == 200, r.content
    assert json.loads(r.json()["data"]["content"]) == {"result": {"text": "YO!"}}
    r = api.post(f"/api/v1/tools/{tool_id}/exec", {"arguments": {}}, format="json")
    assert r.status_code == 400
    # Publishing a version with other inputs refreshes the tool's schema.
    flow = _shout_flow()
    flow["steps"][0]["inputs"]["loud"] = {"type": "boolean", "required": True}
    r = api.patch(f"{WORKFLOWS}/{wid}", {"definition": flow}, format="json")
    assert r.status_code == 200, r.content
    assert api.post(f"{WORKFLOWS}/{wid}/publish", {}, format="json").status_code == 200
    assert set(Tool.objects.get(id=tool_id).parameters["required"]) == {"word", "loud"}
    assert api.delete(f"{WORKFLOWS}/{wid}/tool").status_code == 204
    assert api.delete(f"{WORKFLOWS}/{wid}/tool").status_code == 404
    assert not Tool.objects.filter(id=tool_id).exists()
    # Deleting the workflow deletes its tool.
    tool_id = api.post(f"{WORKFLOWS}/{wid}/tool").json()["data"]["id"]
    assert api.delete(f"{WORKFLOWS}/{wid}").status_code == 204
    assert not Tool.objects.filter(id=tool_id).exists()

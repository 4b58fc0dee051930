"""Definitions are validated before they are saved or run: each error names its step and
field; ids of another workspace's agents, tools and knowledge bases are refused."""

import pytest

from apps.workflows.models import Workflow, WorkflowVersion
from tests.agents.factories import make_agent, make_knowledge_base, make_tool
from tests.helpers import assert_error
from tests.users.factories import UserFactory
from tests.workflows.conftest import WORKFLOWS, simple_flow

pytestmark = pytest.mark.django_db


def errors_of(api, definition):
    response = api.post(f"{WORKFLOWS}/validate", {"definition": definition}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()["data"]
    return {(e["field"], e["message"]) for e in body["errors"]}, body["valid"]


def fields_of(api, definition):
    return {field for field, _ in errors_of(api, definition)[0]}


def test_a_valid_definition_is_valid(api):
    errors, valid = errors_of(api, simple_flow({"id": "t", "type": "template", "template": "x"}))
    assert (errors, valid) == (set(), True)


def test_unknown_step_type_names_the_step_and_field(api):
    errors, valid = errors_of(api, simple_flow({"id": "magic", "type": "teleport"}))
    assert valid is False
    assert errors == {("steps.magic.type", "Unknown step type 'teleport'.")}


def test_missing_required_field_and_unknown_field(api):
    definition = simple_flow({"id": "ask", "type": "model_call", "promt": "typo"})
    assert fields_of(api, definition) == {"steps.ask.prompt", "steps.ask.promt"}


def test_references_to_unknown_inputs_and_later_steps(api):
    definition = simple_flow(
        {"id": "a", "type": "template", "template": "{{ inputs.nope }} {{ steps.b.output }}"},
        {"id": "b", "type": "template", "template": "{{ steps.ghost.output }}"},
    )
    errors, _ = errors_of(api, definition)
    assert errors == {
        ("steps.a.template", "inputs.nope is not an input of the start step."),
        ("steps.a.template", "steps.b does not run before this step."),
        ("steps.b.template", "steps.ghost is not a step."),
    }


def test_cycles_and_unreachable_steps(api):
    definition = simple_flow({"id": "a", "type": "template", "template": "x"})
    definition["steps"] += [
        {"id": "x", "type": "template", "template": "1", "after": ["y"]},
        {"id": "y", "type": "template", "template": "2", "after": ["x"]},
    ]
    errors, _ = errors_of(api, definition)
    assert errors == {
        ("steps.x.after", "The step is part of a cycle."),
        ("steps.y.after", "The step is part of a cycle."),
    }
    definition["steps"] = [
        *definition["steps"][:-2],
        {"id": "island", "type": "template", "template": "1"},
    ]
    assert fields_of(api, definition) == {"steps.island.after"}


def test_declared_type_mismatch_and_bounds(api):
    definition = simple_flow(
        {
            "id": "each",
            "type": "loop",
            "items": "{{ inputs.topic }}",
            "max_items": 1000,
            "body": {"type": "template", "template": "{{ item }}"},
        },
        {"id": "slow", "type": "template", "template": "x", "timeout_seconds": 99999},
        inputs={"topic": {"type": "string"}},
    )
    errors, _ = errors_of(api, definition)
    assert errors == {
        ("steps.each.items", "Expects an array; inputs.topic is a string."),
        ("steps.each.max_items", "max_items is 1..100."),
        ("steps.slow.timeout_seconds", "timeout_seconds is a number in (0, 3600]."),
    }
    too_many = {"steps": [{"id": f"s{i}", "type": "template"} for i in range(201)]}
    assert fields_of(api, too_many) == {"definition.steps"}


def test_another_workspaces_agent_tool_and_knowledge_base_are_refused(api, workspace):
    stranger = UserFactory(email="eve@example.com")
    theirs = stranger.memberships.get().workspace
    agent = make_agent(workspace=theirs, user=stranger, name="Theirs", slug="theirs")
    tool = make_tool(workspace=theirs)
    kb = make_knowledge_base(workspace=theirs)
    definition = simple_flow(
        {"id": "ask", "type": "agent", "agent_id": str(agent.id), "prompt": "hi"},
        {"id": "call", "type": "tool_call", "tool_id": str(tool.id)},
        {
            "id": "find",
            "type": "knowledge_retrieval",
            "knowledge_base_ids": [str(kb.id)],
            "query": "q",
        },
    )
    errors, _ = errors_of(api, definition)
    assert errors == {
        ("steps.ask.agent_id", f"No agent {agent.id} in this workspace."),
        ("steps.call.tool_id", f"No tool {tool.id} in this workspace."),
        ("steps.find.knowledge_base_ids[0]", f"No knowledge base {kb.id} in this workspace."),
    }
    # Saving is refused the same way, and nothing is written.
    response = api.post(WORKFLOWS, {"name": "x", "definition": definition}, format="json")
    body = assert_error(response, 400, "invalid_workflow")
    assert {d["field"] for d in body["error"]["details"]} == {
        "steps.ask.agent_id",
        "steps.call.tool_id",
        "steps.find.knowledge_base_ids[0]",
    }
    assert Workflow.objects.count() == 0 and WorkflowVersion.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_expressions_are_sandboxed(api):
    definition = simple_flow(
        {"id": "t", "type": "template", "template": "{{ ''.__class__.__mro__ }}"}
    )
    response = api.post(WORKFLOWS, {"name": "x", "definition": definition}, format="json")
    assert response.status_code == 201
    workflow = response.json()["data"]
    api.post(f"{WORKFLOWS}/{workflow['id']}/publish", {}, format="json")
    run = api.post(f"{WORKFLOWS}/{workflow['id']}/runs", {}, format="json").json()["data"]
    detail = api.get(f"{WORKFLOWS}/runs/{run['id']}").json()["data"]
    assert detail["status"] == "failed"
    assert detail["error"]["step_id"] == "t"
    assert detail["error"]["code"] == "expression_error"
    assert "unsafe" in detail["error"]["message"]


def test_run_inputs_are_checked_against_the_start_step(api):
    definition = simple_flow(
        {"id": "t", "type": "template", "template": "{{ inputs.n }}"},
        inputs={"n": {"type": "integer", "required": True}},
    )
    workflow = api.post(WORKFLOWS, {"name": "x", "definition": definition}, format="json").json()
    wid = workflow["data"]["id"]
    response = api.post(f"{WORKFLOWS}/{wid}/runs", {"inputs": {}}, format="json")
    assert_error(response, 409, "workflow_not_published")
    api.post(f"{WORKFLOWS}/{wid}/publish", {}, format="json")
    response = api.post(f"{WORKFLOWS}/{wid}/runs", {"inputs": {"n": "x", "z": 1}}, format="json")
    body = assert_error(response, 400, "invalid_inputs")
    assert {d["field"] for d in body["error"]["details"]} == {"inputs.n", "inputs.z"}

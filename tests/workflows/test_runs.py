"""Workflow runs end to end over the API, with the scripted model server for the model
and agent steps and a real knowledge base for retrieval."""

import pytest

from apps.workflows.models import WorkflowEvent, WorkflowStepRun
from tests.workflows.conftest import WORKFLOWS, create_workflow, run_detail, start_run, steps_by_id

pytestmark = pytest.mark.django_db(transaction=True)


def support_flow(*, kb_id, agent_id):
    return {
        "steps": [
            {
                "id": "start",
                "type": "start",
                "inputs": {"question": {"type": "string", "required": True}},
            },
            {
                "id": "retrieve",
                "type": "knowledge_retrieval",
                "after": ["start"],
                "knowledge_base_ids": [kb_id],
                "query": "{{ inputs.question }}",
                "top_k": 1,
            },
            {
                "id": "answer",
                "type": "agent",
                "after": ["retrieve"],
                "agent_id": agent_id,
                "prompt": "Context: {{ steps.retrieve.output.chunks[0].content }}\n"
                "Question: {{ inputs.question }}",
            },
            {
                "id": "check",
                "type": "condition",
                "after": ["answer"],
                "if": "{{ 'refund' in steps.answer.output.text | lower }}",
                "then": ["summary", "notify"],
                "else": ["fallback"],
            },
            {
                "id": "summary",
                "type": "model_call",
                "prompt": "Summarize: {{ steps.answer.output.text }}",
            },
            {
                "id": "notify",
                "type": "template",
                "value": {
                    "subject": "Re: {{ inputs.question }}",
                    "sources": "{{ steps.retrieve.output.count }}",
                },
            },
            {"id": "fallback", "type": "template", "template": "No refund question."},
            {
                "id": "approve",
                "type": "approval",
                "after": ["summary", "notify"],
                "message": "Send '{{ steps.summary.output.text }}'?",
            },
            {
                "id": "end",
                "type": "end",
                "after": ["approve", "fallback"],
                "outputs": {
                    "answer": "{{ steps.answer.output.text }}",
                    "summary": "{{ steps.summary.output.text }}",
                    "subject": "{{ steps.notify.output.subject }}",
                    "approved": "{{ steps.approve.output.approved }}",
                },
            },
        ]
    }


def test_retrieval_agent_condition_parallel_approval_end(api, agent, kb, scripted_llm):
    workflow = create_workflow(api, support_flow(kb_id=str(kb.id), agent_id=str(agent.id)))
    scripted_llm.push("Your refund arrives within five business days.", "Refund in 5 days.")
    run = start_run(api, workflow["id"], {"question": "When is my refund paid?"})
    assert run["status"] == "waiting_for_approval"
    detail = run_detail(api, run["id"])
    steps = steps_by_id(detail)
    assert {k: v["status"] for k, v in steps.items()} == {
        "start": "succeeded",
        "retrieve": "succeeded",
        "answer": "succeeded",
        "check": "succeeded",
        "summary": "succeeded",
        "notify": "succeeded",
        "fallback": "skipped",
        "approve": "waiting_for_approval",
        "end": "pending",
    }
    assert steps["retrieve"]["output"]["chunks"][0]["document_name"] == "refunds.txt"
    # The agent got the retrieved passage through its prompt.
    agent_prompt = scripted_llm.requests[-2]["messages"][-1]["content"]
    assert agent_prompt == (
        "Context: Refunds are paid back within five business days.\n"
        "Question: When is my refund paid?"
    )
    assert scripted_llm.requests[-1]["messages"][-1]["content"] == (
        "Summarize: Your refund arrives within five business days."
    )
    assert steps["notify"]["output"] == {"subject": "Re: When is my refund paid?", "sources": 1}
    assert steps["check"]["output"] == {"result": True, "branch": "then"}
    assert steps["answer"]["input_tokens"] > 0
    assert steps["approve"]["output"] == {"message": "Send 'Refund in 5 days.'?"}

    approved = api.post(f"{WORKFLOWS}/runs/{run['id']}/approve", {"comment": "ok"}, format="json")
    assert approved.status_code == 200, approved.content
    detail = run_detail(api, run["id"])
    assert detail["status"] == "succeeded", detail
    assert detail["outputs"] == {
        "answer": "Your refund arrives within five business days.",
        "summary": "Refund in 5 days.",
        "subject": "Re: When is my refund paid?",
        "approved": True,
    }
    assert detail["error"] is None
    assert detail["input_tokens"] == sum(s["input_tokens"] for s in detail["steps"])
    assert detail["input_tokens"] > 0
    # Every step executed exactly once over the two worker passes.
    executions = dict(
        WorkflowStepRun.objects.filter(run_id=run["id"]).values_list("step_id", "executions")
    )
    assert executions == {
        "start": 1,
        "retrieve": 1,
        "answer": 1,
        "check": 1,
        "summary": 1,
        "notify": 1,
        "fallback": 0,
        "approve": 1,
        "end": 1,
    }
    types = list(
        WorkflowEvent.objects.filter(run_id=run["id"])
        .order_by("cursor")
        .values_list("type", flat=True)
    )
    assert types[0] == "workflow.run.started"
    assert types[-1] == "workflow.run.finished"
    assert "workflow.approval.required" in types
    assert types.count("workflow.run.started") == 2  # started, then resumed after approval


def test_else_branch_runs_when_the_condition_is_false(api, agent, kb, scripted_llm):
    workflow = create_workflow(api, support_flow(kb_id=str(kb.id), agent_id=str(agent.id)))
    scripted_llm.push("Parcels ship from Lyon.")
    run = start_run(api, workflow["id"], {"question": "Where do parcels ship from?"})
    detail = run_detail(api, run["id"])
    assert detail["status"] == "succeeded", detail
    steps = steps_by_id(detail)
    assert [k for k, v in steps.items() if v["status"] == "skipped"] == [
        "summary",
        "notify",
        "approve",
    ]
    assert steps["fallback"]["output"] == {"text": "No refund question."}
    assert detail["outputs"]["answer"] == "Parcels ship from Lyon."

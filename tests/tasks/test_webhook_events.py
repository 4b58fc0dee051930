"""Each webhook event from the place it really happens, end to end: a document that
indexes, a hostile file that fails, agent jobs, a run paused for an approval. The real
receiver gets each one signed; it is verified with the `standardwebhooks` library."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.agents.models import AgentJob
from apps.conversations.models import Run
from apps.conversations.services import conversation_create, message_send
from apps.knowledge.models import Document
from apps.providers.scripted import Reply, ToolCall
from tests.agents.factories import actor_for
from tests.knowledge import samples
from tests.knowledge.factories import make_kb
from tests.providers.factories import make_scripted_provider
from tests.tasks.test_webhooks import create_endpoint, verified

pytestmark = pytest.mark.django_db(transaction=True)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def payloads(receiver, secret):
    """Every request the receiver got, verified (raises on a bad signature)."""
    return [verified(receiver, secret, i) for i in range(len(receiver.requests))]


def test_document_indexed_and_failed(
    api, user, workspace, receiver, scripted_llm, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    kb = make_kb(user=user, workspace=workspace, chunk_size=64, chunk_overlap=8)
    endpoint = create_endpoint(api, receiver.url, ("document.indexed", "document.failed"))
    files = [
        SimpleUploadedFile("guide.txt", samples.TEXT, content_type="text/plain"),
        SimpleUploadedFile("evil.docx", samples.make_billion_laughs_docx(), content_type=DOCX),
    ]
    response = api.post(
        f"/api/v1/knowledge-bases/{kb.id}/documents", {"files": files}, format="multipart"
    )
    assert response.status_code == 202, response.content
    good = Document.objects.get(name="guide.txt")
    evil = Document.objects.get(name="evil.docx")
    assert (good.status, evil.status) == ("indexed", "failed")
    assert good.chunk_count > 0
    by_type = {p["type"]: p for p in payloads(receiver, endpoint["secret"])}
    assert sorted(by_type) == ["document.failed", "document.indexed"]
    assert len(receiver.requests) == 2
    assert by_type["document.indexed"]["data"] == {
        "document_id": str(good.id),
        "knowledge_base_id": str(kb.id),
        "name": "guide.txt",
        "status": "indexed",
        "chunk_count": good.chunk_count,
    }
    assert by_type["document.failed"]["data"] == {
        "document_id": str(evil.id),
        "knowledge_base_id": str(kb.id),
        "name": "evil.docx",
        "status": "failed",
        "error": {"code": evil.error_code, "message": evil.error_message},
    }
    assert evil.error_code == "parse_failed"
    assert "declares a DTD or entities" in evil.error_message
    for payload in by_type.values():
        assert payload["version"] == 1 and payload["workspace_id"] == str(workspace.id)


def test_agent_job_completed_for_success_and_failure(api, workspace, receiver, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    endpoint = create_endpoint(api, receiver.url, ("agent_job.completed",))
    scripted_llm.push(
        json.dumps({"system_prompt": "You are concise.", "changes": ["Shorter"]}),
        "Not JSON at all.",
    )
    ids = []
    for _ in range(2):
        response = api.post(
            "/api/v1/agent-jobs/optimize-prompt", {"system_prompt": "x"}, format="json"
        )
        assert response.status_code == 202, response.content
        ids.append(response.json()["data"]["id"])
    assert list(AgentJob.objects.order_by("created_at").values_list("status", flat=True)) == [
        "succeeded",
        "failed",
    ]
    succeeded, failed = payloads(receiver, endpoint["secret"])
    assert succeeded["type"] == failed["type"] == "agent_job.completed"
    assert succeeded["data"] == {"job_id": ids[0], "kind": "optimize_prompt", "status": "succeeded"}
    assert failed["data"] == {
        "job_id": ids[1],
        "kind": "optimize_prompt",
        "status": "failed",
        "error": {
            "code": "invalid_model_output",
            "message": "The model did not reply with a JSON object.",
        },
    }


def test_run_requires_action_then_completed(api, workspace, agent, receiver, scripted_llm):
    agent.builtin_tools = ["calculator"]
    agent.tools_requiring_approval = ["calculator"]
    agent.save(update_fields=["builtin_tools", "tools_requiring_approval"])
    endpoint = create_endpoint(api, receiver.url, ("run.requires_action", "run.completed"))
    actor = actor_for(user=agent.created_by, workspace=workspace)
    conversation = conversation_create(actor=actor, agent=agent)
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("calculator", {"expression": "2+2"}, id="a1")]), "It is 4."
    )
    run = message_send(actor=actor, conversation=conversation, content="2+2?", background=True)
    assert Run.objects.get(id=run.id).status == "requires_action"
    (paused,) = payloads(receiver, endpoint["secret"])
    assert paused["type"] == "run.requires_action"
    assert paused["data"] == {
        "run_id": str(run.id),
        "conversation_id": str(conversation.id),
        "agent_id": str(agent.id),
        "status": "requires_action",
        "usage": paused["data"]["usage"],
        "pending": [
            {"tool_call_id": "a1", "name": "calculator", "arguments": {"expression": "2+2"}}
        ],
    }
    assert set(paused["data"]["usage"]) == {"input_tokens", "output_tokens"}
    # The decision posted from the webhook's data resumes the run to its end.
    response = api.post(
        f"/api/v1/runs/{run.id}/approvals",
        {"decisions": [{"tool_call_id": "a1", "approved": True}]},
        format="json",
    )
    assert response.status_code == 202, response.content
    completed = payloads(receiver, endpoint["secret"])[-1]
    assert completed["type"] == "run.completed"
    assert completed["data"]["run_id"] == str(run.id)
    assert completed["data"]["answer"] == "It is 4."
    assert len(receiver.requests) == 2


def test_run_failed(api, workspace, agent, receiver, scripted_llm):
    endpoint = create_endpoint(api, receiver.url, ("run.failed",))
    actor = actor_for(user=agent.created_by, workspace=workspace)
    conversation = conversation_create(actor=actor, agent=agent)
    scripted_llm.push(Reply(status=400, error_message="bad things"))
    run = message_send(actor=actor, conversation=conversation, content="?", background=True)
    stored = Run.objects.get(id=run.id)
    assert stored.status == "failed"
    (failed,) = payloads(receiver, endpoint["secret"])
    assert failed["type"] == "run.failed"
    assert failed["data"] == {
        "run_id": str(run.id),
        "conversation_id": str(conversation.id),
        "agent_id": str(agent.id),
        "status": "failed",
        "usage": {"input_tokens": stored.input_tokens, "output_tokens": stored.output_tokens},
        "error": {"code": "provider_bad_request", "message": stored.error_message},
    }

"""Inbound triggers: secrets and signatures, size and rate limits, 404s, runs started."""

import json
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from apps.conversations.models import Run
from apps.tasks.models import InboundTrigger, TaskExecution
from apps.users.models import AuditEvent
from tests.helpers import assert_error, assert_outsiders_get_404

pytestmark = pytest.mark.django_db(transaction=True)


def create_trigger(api, **body):
    response = api.post("/api/v1/triggers", {"name": "Orders", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def fire(trigger, body, *, secret=None, headers=None, query=""):
    client = APIClient()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()}
    if secret is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client.post(
        f"{trigger['url']}{query}", data=raw, content_type="application/json", **extra
    )


def signed_headers(secret, body, msg_id="msg_1"):
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }


def test_valid_call_returns_202_and_the_run_completes(api, agent, scripted_llm):
    trigger = create_trigger(
        api, agent_id=str(agent.id), prompt_template="New order ${body.order.id} from $body"
    )
    assert trigger["secret"].startswith("whsec_")
    assert "secret" not in api.get(f"/api/v1/triggers/{trigger['id']}").json()["data"]
    scripted_llm.push("Order noted.")
    response = fire(trigger, {"order": {"id": 17}}, secret=trigger["secret"])
    assert response.status_code == 202, response.content
    data = response.json()["data"]
    assert data["status_url"] == f"/api/v1/runs/{data['run_id']}"
    run = Run.objects.get(id=data["run_id"])
    assert run.status == "completed"
    prompt = scripted_llm.requests[-1]["messages"][-1]["content"]
    assert prompt == 'New order 17 from {"order": {"id": 17}}'
    # The status URL works for the owner.
    assert api.get(data["status_url"]).json()["data"]["status"] == "completed"
    audit = AuditEvent.objects.filter(action="trigger.call").get()
    assert audit.metadata == {"outcome": "started", "run_id": data["run_id"]}
    # Its conversation says where it came from (not `chat`).
    conversation = api.get(f"/api/v1/conversations/{data['conversation_id']}").json()["data"]
    assert conversation["source"] == "trigger"


def test_wait_returns_the_answer(api, agent, scripted_llm):
    trigger = create_trigger(api, agent_id=str(agent.id), prompt_template="Hi")
    scripted_llm.push("Hello back.")
    response = fire(trigger, {}, secret=trigger["secret"], query="?wait=5")
    assert response.status_code == 200
    assert response.json()["data"]["answer"] == "Hello back."


def test_standard_webhooks_signature_is_accepted(api, agent, scripted_llm):
    trigger = create_trigger(api, agent_id=str(agent.id), prompt_template="x ${body.a}")
    body = json.dumps({"a": "signed"}).encode()
    response = fire(trigger, body, headers=signed_headers(trigger["secret"], body))
    assert response.status_code == 202, response.content
    assert scripted_llm.requests[-1]["messages"][-1]["content"] == "x signed"


def test_bad_secret_and_bad_signature_get_401(api, agent, scripted_llm):
    trigger = create_trigger(api, agent_id=str(agent.id), prompt_template="x")
    body = json.dumps({"a": 1}).encode()
    assert_error(fire(trigger, body), 401, "unauthorized")
    assert_error(fire(trigger, body, secret="whsec_wrong"), 401, "unauthorized")
    other = "whsec_" + "A" * 43 + "="
    assert_error(fire(trigger, body, headers=signed_headers(other, body)), 401, "unauthorized")
    tampered = signed_headers(trigger["secret"], body)
    assert_error(fire(trigger, b'{"a": 2}', headers=tampered), 401, "unauthorized")
    assert Run.objects.count() == 0 and scripted_llm.requests == []
    outcomes = list(
        AuditEvent.objects.filter(action="trigger.call").values_list("metadata", flat=True)
    )
    assert outcomes == [{"outcome": "unauthorized"}] * 4


def test_oversized_body_gets_413(api, agent, settings):
    settings.TRIGGER_MAX_BODY_BYTES = 1000
    trigger = create_trigger(api, agent_id=str(agent.id), prompt_template="x")
    body = json.dumps({"blob": "x" * 2000}).encode()
    assert_error(fire(trigger, body, secret=trigger["secret"]), 413, "payload_too_large")
    assert Run.objects.count() == 0


def test_not_json_gets_400_naming_the_body(api, agent):
    trigger = create_trigger(api, agent_id=str(agent.id), prompt_template="x")
    response = fire(trigger, b"not json", secret=trigger["secret"])
    body = assert_error(response, 400, "validation_error")
    assert body["error"]["details"][0]["field"] == "body"


def test_disabled_trigger_and_unknown_trigger(api, agent):
    trigger = create_trigger(api, agent_id=str(agent.id), prompt_template="x")
    api.patch(f"/api/v1/triggers/{trigger['id']}", {"enabled": False}, format="json")
    assert_error(fire(trigger, {}, secret=trigger["secret"]), 409, "trigger_disabled")
    api.delete(f"/api/v1/triggers/{trigger['id']}")
    assert_error(fire(trigger, {}, secret=trigger["secret"]), 404, "trigger_not_found")


def test_rate_limited_per_trigger(api, agent, scripted_llm, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "trigger": "2/min"}
    trigger = create_trigger(api, agent_id=str(agent.id), prompt_template="x")
    assert fire(trigger, {}, secret=trigger["secret"]).status_code == 202
    assert fire(trigger, {}, secret=trigger["secret"]).status_code == 202
    response = fire(trigger, {}, secret=trigger["secret"])
    assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    assert Run.objects.count() == 2


def test_trigger_of_a_task_starts_an_execution(api, agent, scripted_llm):
    task = api.post(
        "/api/v1/tasks",
        {
            "agent_id": str(agent.id),
            "name": "On demand",
            "prompt_template": "Handle ${body.ticket}",
            "schedule_kind": "once",
            "run_at": "2030-01-01T00:00:00Z",
        },
        format="json",
    ).json()["data"]
    trigger = create_trigger(api, task_id=task["id"])
    scripted_llm.push("Handled.")
    response = fire(trigger, {"ticket": "T-9"}, secret=trigger["secret"], query="?wait=5")
    assert response.status_code == 200, response.content
    execution = TaskExecution.objects.get()
    assert execution.trigger == "trigger" and execution.prompt == "Handle T-9"
    assert response.json()["data"]["run_id"] == str(execution.run_id)
    conversation = api.get(f"/api/v1/conversations/{execution.conversation_id}").json()["data"]
    assert conversation["source"] == "task"  # the task's execution made it


def test_other_workspace_gets_404_and_bad_input(api, agent, outsider):
    trigger = create_trigger(api, agent_id=str(agent.id), prompt_template="x")
    obj = InboundTrigger.objects.get()
    url = f"/api/v1/triggers/{trigger['id']}"
    for method, data in [("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)]:
        assert_outsiders_get_404(method=method, url=url, outsider=outsider, obj=obj, data=data)
    response = outsider.post(
        "/api/v1/triggers",
        {"name": "x", "agent_id": str(agent.id), "prompt_template": "x"},
        format="json",
    )
    assert_error(response, 400, "validation_error")
    response = api.post("/api/v1/triggers", {"name": "x"}, format="json")
    body = assert_error(response, 400, "validation_error")
    assert body["error"]["details"][0]["field"] == "agent_id"
    assert InboundTrigger.objects.count() == 1

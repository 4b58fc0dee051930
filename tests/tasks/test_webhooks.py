"""Outbound webhooks: signed deliveries verified by a real receiver with the
`standardwebhooks` library, retries with backoff, disable, redeliver, the outbound guard
at creation and at delivery, the transactional outbox."""

import json
import socket
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook

from apps.core.events import DocumentFailedNotice, RunCompletedNotice, RunError, Usage
from apps.core.jobs import jobs_sweep
from apps.core.outbox import outbox_emit
from apps.tasks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from apps.tasks.services import tasks_tick, webhook_deliver
from tests.helpers import assert_error, assert_outsiders_get_404

pytestmark = pytest.mark.django_db(transaction=True)

ENDPOINTS = "/api/v1/webhooks/endpoints"


def create_endpoint(api, url, event_types=("run.completed", "task.execution.completed")):
    response = api.post(ENDPOINTS, {"url": url, "event_types": list(event_types)}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def run_completed(answer="hi"):
    """A run.completed event (of no real run: the outbox does not look)."""
    return RunCompletedNotice(
        run_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        agent_id=uuid.uuid4(),
        status="completed",
        usage=Usage(input_tokens=3, output_tokens=4),
        message_id=None,
        answer=answer,
    )


def emit(workspace, event=None):
    """Emit `event` (a run.completed by default) in its own transaction."""
    with transaction.atomic():
        return outbox_emit(event or run_completed(), workspace_id=workspace.id)


def verified(receiver, secret, index=-1):
    request = receiver.requests[index]
    return Webhook(secret).verify(request["body"], request["headers"])


def test_delivery_is_signed_and_verifies_with_standardwebhooks(api, workspace, receiver):
    endpoint = create_endpoint(api, receiver.url)
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    # Shown once: never again.
    assert "secret" not in api.get(f"{ENDPOINTS}/{endpoint['id']}").json()["data"]
    assert secret not in json.dumps(api.get(ENDPOINTS).json())
    stored = WebhookEndpoint.objects.values_list("secret", flat=True).get()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM tasks_webhookendpoint")
        (raw,) = cursor.fetchone()
    assert stored == secret and secret not in raw  # encrypted at rest

    notice = run_completed(answer="hi")
    event = emit(workspace, notice)
    assert len(receiver.requests) == 1
    payload = verified(receiver, secret)
    assert payload["type"] == "run.completed" and payload["id"] == str(event.id)
    assert payload["version"] == 1 and payload["workspace_id"] == str(workspace.id)
    assert payload["data"] == {
        "run_id": str(notice.run_id),
        "conversation_id": str(notice.conversation_id),
        "agent_id": str(notice.agent_id),
        "status": "completed",
        "usage": {"input_tokens": 3, "output_tokens": 4},
        "message_id": None,
        "answer": "hi",
    }
    assert receiver.requests[0]["headers"]["webhook-id"] == str(event.id)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "succeeded" and delivery.attempts == 1
    # Unsubscribed types are not recorded at all.
    emit(
        workspace,
        DocumentFailedNotice(
            document_id=uuid.uuid4(),
            knowledge_base_id=uuid.uuid4(),
            name="x.pdf",
            status="failed",
            error=RunError(code="parse_failed", message="Bad PDF."),
        ),
    )
    assert WebhookEvent.objects.count() == 1 and len(receiver.requests) == 1


def test_rotated_secret_signs_with_both_during_the_overlap(api, workspace, receiver):
    endpoint = create_endpoint(api, receiver.url)
    old = endpoint["secret"]
    response = api.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret", {}, format="json")
    new = response.json()["data"]["secret"]
    assert new != old and new.startswith("whsec_")
    emit(workspace)
    verified(receiver, old)
    verified(receiver, new)
    api.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret", {"overlap_seconds": 0}, format="json")
    emit(workspace)
    with pytest.raises(Exception, match="No matching signature"):
        verified(receiver, new)


def test_retries_with_backoff_after_500s_and_timeouts(api, workspace, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [10, 100, 1000]
    endpoint = create_endpoint(api, receiver.url)
    receiver.script = [(500, 0), (200, 2.0)]  # a 500, then too slow (timeout at 0.5 s)
    emit(workspace)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    first_retry = delivery.next_attempt_at
    assert 9 <= (first_retry - timezone.now()).total_seconds() <= 10
    tasks_tick(now=timezone.now())  # not yet due
    assert len(receiver.requests) == 1
    webhook_deliver(delivery_id=delivery.id)  # a stray message: not due, nothing sent
    assert len(receiver.requests) == 1
    WebhookDelivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now())
    tasks_tick(now=timezone.now())
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 2
    assert 99 <= (delivery.next_attempt_at - timezone.now()).total_seconds() <= 100
    WebhookDelivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now())
    tasks_tick(now=timezone.now())
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 3
    detail = api.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries/{delivery.id}").json()["data"]
    log = detail["attempts_log"]
    assert [a["status_code"] for a in log] == [500, None, 200]
    assert log[0]["response_excerpt"] == "receiver says no"
    assert "did not answer within 0.5 seconds" in log[1]["error"]
    assert detail["payload"]["type"] == "run.completed"
    # The receiver got the same webhook-id each time (it deduplicates on it).
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1


def test_persistent_failure_disables_the_endpoint_with_a_reason(api, workspace, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [1]
    endpoint = create_endpoint(api, receiver.url)
    receiver.script = [(503, 0), (302, 0)]  # then a redirect (to metadata): not followed
    emit(workspace)
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    tasks_tick(now=timezone.now())
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and delivery.attempts == 2
    data = api.get(f"{ENDPOINTS}/{endpoint['id']}").json()["data"]
    assert data["enabled"] is False
    assert "Gave up after 2 attempts" in data["disabled_reason"]
    assert "Redirects are not followed" in data["disabled_reason"]
    assert len(receiver.requests) == 2  # the redirect target was never requested
    # Disabled: new events are not recorded for it; a redelivery on request still goes.
    emit(workspace)
    assert WebhookDelivery.objects.count() == 1
    url = f"{ENDPOINTS}/{endpoint['id']}/deliveries/{delivery.id}/redeliver"
    again = api.post(url)
    assert again.status_code == 202
    assert again.json()["data"]["status"] == "failed"  # the endpoint is disabled
    api.patch(f"{ENDPOINTS}/{endpoint['id']}", {"enabled": True}, format="json")
    again = api.post(url).json()["data"]
    assert again["status"] == "succeeded" and again["event_id"] == str(delivery.event_id)


def test_send_test_event_and_list_deliveries(api, workspace, receiver):
    endpoint = create_endpoint(api, receiver.url)
    response = api.post(f"{ENDPOINTS}/{endpoint['id']}/test")
    assert response.status_code == 202 and response.json()["data"]["status"] == "succeeded"
    assert verified(receiver, endpoint["secret"])["type"] == "webhook.test"
    listed = api.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries").json()["data"]
    assert [d["event_type"] for d in listed] == ["webhook.test"]


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/hook", "http://[::1]:9/x"],
)
def test_private_or_metadata_url_refused_at_creation(api, url, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    response = api.post(ENDPOINTS, {"url": url, "event_types": ["run.completed"]}, format="json")
    body = assert_error(response, 400, "url_not_allowed")
    assert body["error"]["details"][0]["field"] == "url"
    assert WebhookEndpoint.objects.count() == 0


def test_dns_change_between_creation_and_delivery_is_refused(api, workspace, monkeypatch):
    real = socket.getaddrinfo
    answer = {"ip": "93.184.215.14"}

    def fake(host, *args, **kwargs):
        if host == "hooks.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer["ip"], 80))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    endpoint = create_endpoint(api, "http://hooks.example.com/in")
    answer["ip"] = "169.254.169.254"  # now it points at the metadata service
    emit(workspace)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.error_code) == ("failed", "url_not_allowed")
    assert delivery.log.get().error.startswith("hooks.example.com (169.254.169.254) is a private")
    data = api.get(f"{ENDPOINTS}/{endpoint['id']}").json()["data"]
    assert data["enabled"] is False and "not allowed" in data["disabled_reason"]


def test_rolled_back_event_is_never_sent(api, workspace, receiver):
    create_endpoint(api, receiver.url)
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox_emit(run_completed(), workspace_id=workspace.id)
        raise RuntimeError("the cause rolled back")
    tasks_tick(now=timezone.now() + timedelta(days=2))
    assert WebhookEvent.objects.count() == 0 and receiver.requests == []


DELIVERY_WORKER = """
import sys
from apps.tasks.services import webhook_deliver
webhook_deliver(delivery_id=sys.argv[1])
"""


@pytest.mark.slow
def test_worker_killed_mid_delivery_loses_nothing(api, workspace, receiver, settings):
    """A real worker process claims the delivery and POSTs it to a receiver that does not
    answer; it is killed (SIGKILL) while it waits. The stale sweep leaves the delivery
    alone until its attempt could have timed out, then sends it again: the receiver
    gets the same event, correctly signed, and the delivery succeeds."""
    from unittest import mock

    from tests.workers import kill_worker_when

    endpoint = create_endpoint(api, receiver.url)
    notice = run_completed(answer="kept")
    with mock.patch("apps.tasks.services.job_enqueue"):  # the worker below takes it
        event = emit(workspace, notice)
    delivery = WebhookDelivery.objects.get()
    receiver.script = [(200, 30.0)]  # the first request hangs past the kill

    kill_worker_when(
        DELIVERY_WORKER,
        [str(delivery.id)],
        lambda: len(receiver.requests) == 1,
        env={"WEBHOOK_TIMEOUT_SECONDS": "60"},
    )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivering", 1)
    assert delivery.log.count() == 0  # the killed attempt never got to log itself
    # Not stale yet: nobody sends it twice while the worker might still be waiting.
    claimed_at = delivery.heartbeat_at
    jobs_sweep(now=claimed_at + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 59))
    delivery.refresh_from_db()
    assert delivery.status == "delivering" and len(receiver.requests) == 1

    jobs_sweep(now=claimed_at + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 61))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    assert [(a.number, a.status_code) for a in delivery.log.all()] == [(2, 200)]
    assert len(receiver.requests) == 2
    for index in (0, 1):  # both carry the expected event, signed with the endpoint's secret
        payload = verified(receiver, endpoint["secret"], index)
        assert payload["id"] == str(event.id) and payload["type"] == "run.completed"
        assert payload["data"]["run_id"] == str(notice.run_id)
        assert payload["data"]["answer"] == "kept"
        assert receiver.requests[index]["headers"]["webhook-id"] == str(event.id)


def test_invalid_endpoint_input_and_other_workspace(api, outsider, workspace, receiver):
    response = api.post(ENDPOINTS, {"url": receiver.url, "event_types": ["nope"]}, format="json")
    body = assert_error(response, 400, "validation_error")
    assert body["error"]["details"][0]["field"] == "event_types"
    response = api.post(ENDPOINTS, {"url": "ftp://x", "event_types": ["*"]}, format="json")
    assert_error(response, 400, "validation_error")
    endpoint = create_endpoint(api, receiver.url)
    api.post(f"{ENDPOINTS}/{endpoint['id']}/test")
    delivery = WebhookDelivery.objects.get()
    obj = WebhookEndpoint.objects.get()
    base = f"{ENDPOINTS}/{endpoint['id']}"
    for method, url, data in [
        ("GET", base, None),
        ("PATCH", base, {"url": "http://attacker.example/"}),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate-secret", {}),
        ("POST", f"{base}/test", None),
        ("GET", f"{base}/deliveries", None),
        ("GET", f"{base}/deliveries/{delivery.id}", None),
        ("POST", f"{base}/deliveries/{delivery.id}/redeliver", None),
    ]:
        assert_outsiders_get_404(method=method, url=url, outsider=outsider, obj=obj, data=data)
    assert WebhookDelivery.objects.count() == 1 and len(receiver.requests) == 1


def test_task_execution_events_are_delivered(api, workspace, user, agent, receiver, scripted_llm):
    from apps.providers.scripted import Reply

    endpoint = create_endpoint(
        api, receiver.url, ("task.execution.completed", "task.execution.failed")
    )
    body = {
        "agent_id": str(agent.id),
        "name": "Digest",
        "prompt_template": "Go",
        "schedule_kind": "interval",
        "interval_seconds": 3600,
        "max_retries": 0,
    }
    task = api.post("/api/v1/tasks", body, format="json").json()["data"]
    scripted_llm.push("Fine.", Reply(status=400))
    execution = api.post(f"/api/v1/tasks/{task['id']}/run").json()["data"]
    completed = verified(receiver, endpoint["secret"])
    assert completed["type"] == "task.execution.completed"
    assert completed["data"]["execution_id"] == execution["id"]
    assert completed["data"]["answer"] == "Fine." and completed["data"]["task_id"] == task["id"]
    api.post(f"/api/v1/tasks/{task['id']}/run")
    failed = verified(receiver, endpoint["secret"])
    assert failed["type"] == "task.execution.failed"
    assert failed["data"]["error"]["code"] == "provider_bad_request"


def test_run_completed_event_from_the_run_service(api, workspace, agent, receiver, scripted_llm):
    from apps.conversations.models import Run
    from apps.conversations.services import conversation_create, message_send
    from tests.agents.factories import actor_for

    endpoint = create_endpoint(api, receiver.url, ("run.completed", "run.failed"))
    actor = actor_for(user=agent.created_by, workspace=workspace)
    conversation = conversation_create(actor=actor, agent=agent)
    scripted_llm.push("Forty-two.")
    run = message_send(actor=actor, conversation=conversation, content="?", background=True)
    payload = verified(receiver, endpoint["secret"])
    assert payload["type"] == "run.completed"
    assert payload["data"]["run_id"] == str(run.id)
    assert payload["data"]["answer"] == "Forty-two."
    assert Run.objects.get(id=run.id).status == "completed"

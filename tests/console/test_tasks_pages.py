"""The console's tasks, webhooks and triggers pages (Django test client): the same
services as the API, the field named on every error, secrets shown once, 404 for another
workspace's objects, members vs admins as the API, bounded queries on list pages."""

import re

import pytest
from django.urls import reverse

from apps.tasks.choices import ExecutionStatus, ExecutionTrigger
from apps.tasks.models import (
    InboundTrigger,
    ScheduledTask,
    TaskExecution,
    WebhookDelivery,
    WebhookEndpoint,
)
from apps.tasks.services import task_create, trigger_create, webhook_endpoint_create
from apps.users.choices import Role
from tests.agents.factories import actor_for, make_agent
from tests.users.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db

HOOK_URL = "http://127.0.0.1:9/hook"


@pytest.fixture
def agent(user, workspace):
    return make_agent(workspace=workspace, user=user, name="Reporter")


@pytest.fixture
def task(user, workspace, agent):
    return task_create(
        actor=actor_for(user=user, workspace=workspace),
        agent_id=agent.id,
        values={"name": "Morning report", "prompt_template": "Report for $date",
                "schedule_kind": "cron", "cron": "0 9 * * *", "timezone": "Europe/Paris"},
    )  # fmt: skip


@pytest.fixture
def endpoint(user, workspace, allow_loopback):
    endpoint, _ = webhook_endpoint_create(
        actor=actor_for(user=user, workspace=workspace), url=HOOK_URL, event_types=["*"]
    )
    return endpoint


@pytest.fixture
def trigger(user, workspace, agent):
    trigger, _ = trigger_create(
        actor=actor_for(user=user, workspace=workspace),
        name="Orders",
        agent_id=agent.id,
        prompt_template="New order ${body.id}",
    )
    return trigger


def task_form(chosen, **overrides):
    data = {
        "name": "Digest",
        "agent": str(chosen.id),
        "prompt_template": "Summarise the day ($date).",
        "description": "",
        "schedule_kind": "interval",
        "run_at": "",
        "cron": "",
        "interval_seconds": "3600",
        "timezone": "UTC",
        "conversation_mode": "new",
        "overlap_policy": "skip",
        "missed_policy": "run_once",
        "time_limit_seconds": "900",
        "max_retries": "2",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("name", ["console:tasks", "console:webhooks", "console:triggers"])
def test_signed_out_visitor_is_sent_to_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize(
    ("name", "empty"),
    [
        ("console:tasks", "No tasks yet"),
        ("console:webhooks", "No endpoint yet"),
        ("console:triggers", "No trigger yet"),
        ("console:task_new", "No agent yet"),
    ],
)
def test_empty_pages_say_what_to_do_next(owner_client, name, empty):
    response = owner_client.get(reverse(name))
    assert response.status_code == 200
    assert empty in response.content.decode()


# --- Tasks ----------------------------------------------------------------------------------


def test_create_a_task_from_the_form(owner_client, agent):
    response = owner_client.post(reverse("console:task_new"), task_form(agent))
    task = ScheduledTask.objects.get(name="Digest")
    assert response.status_code == 302 and response["Location"] == reverse(
        "console:task", args=[task.id]
    )
    assert task.schedule_kind == "interval" and task.interval_seconds == 3600
    assert task.agent == agent and task.next_run_at is not None
    page = owner_client.get(response["Location"]).content.decode()
    assert "Digest" in page and "No execution yet" in page and "Run now" in page


def test_a_once_task_reads_its_time_in_its_time_zone(owner_client, agent):
    owner_client.post(
        reverse("console:task_new"),
        task_form(agent, schedule_kind="once", run_at="2031-03-04T09:30", timezone="Asia/Tokyo"),
    )
    task = ScheduledTask.objects.get(name="Digest")
    assert task.run_at.isoformat() == "2031-03-04T00:30:00+00:00"
    assert task.interval_seconds is None


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"schedule_kind": "cron", "cron": "every day"}, "cron", ""),
        ({"schedule_kind": "cron", "cron": ""}, "cron", "needs `cron`"),
        ({"schedule_kind": "once"}, "run_at", "needs `run_at`"),
        ({"interval_seconds": "5"}, "interval_seconds", "60"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Unknown time zone"),
        ({"prompt_template": "   "}, "prompt_template", ""),
        ({"agent": "00000000-0000-0000-0000-000000000000"}, "agent", ""),
    ],
)
def test_task_errors_are_shown_on_the_field(owner_client, agent, overrides, field, message):
    response = owner_client.post(reverse("console:task_new"), task_form(agent, **overrides))
    assert response.status_code == 400
    form = response.context["form"]
    assert field in form.errors, form.errors
    assert message in " ".join(form.errors[field])
    assert not ScheduledTask.objects.exists()


def test_edit_enable_disable_run_now_and_delete(owner_client, task):
    url = reverse("console:task_edit", args=[task.id])
    page = owner_client.get(url).content.decode()
    assert 'value="0 9 * * *"' in page and "Europe/Paris" in page
    form = task_form(task.agent, name="Evening report", schedule_kind="cron", cron="0 18 * * *")
    assert owner_client.post(url, form).status_code == 302
    task.refresh_from_db()
    assert task.name == "Evening report" and task.cron == "0 18 * * *"

    owner_client.post(reverse("console:task_enable", args=[task.id]), {"enabled": "0"})
    task.refresh_from_db()
    assert not task.enabled
    owner_client.post(reverse("console:task_enable", args=[task.id]), {"enabled": "1"})
    task.refresh_from_db()
    assert task.enabled

    response = owner_client.post(reverse("console:task_run", args=[task.id]), follow=True)
    assert "Execution started" in response.content.decode()
    execution = TaskExecution.objects.get(task=task)
    assert execution.trigger == ExecutionTrigger.MANUAL

    response = owner_client.post(reverse("console:task_delete", args=[task.id]))
    assert response["Location"] == reverse("console:tasks")
    task.refresh_from_db()
    assert task.archived_at is not None and not task.enabled
    assert ">Evening report</a>" not in owner_client.get(reverse("console:tasks")).content.decode()
    page = owner_client.get(reverse("console:task", args=[task.id])).content.decode()
    assert "was deleted" in page and 'type="submit">Run now' not in page


def test_history_shows_status_timing_conversation_and_error(owner_client, task, objects):
    from django.utils import timezone

    now = timezone.now()
    TaskExecution.objects.create(
        task=task, due_at=now, available_at=now, status=ExecutionStatus.FAILED,
        error_code="provider_timeout", error_message="The model did not answer in time.",
        started_at=now, finished_at=now + timezone.timedelta(seconds=4),
        conversation=objects.conversation,
    )  # fmt: skip
    page = owner_client.get(reverse("console:task", args=[task.id])).content.decode()
    assert "provider_timeout" in page and "The model did not answer in time." in page
    assert "4.0 s" in page and 'badge-danger">failed' in page
    assert reverse("console:conversation", args=[objects.conversation.id]) in page


def test_a_viewer_cannot_create_a_task(client, workspace, agent):
    viewer = UserFactory(email="vera@example.com")
    add_member(workspace=workspace, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    client.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    response = client.post(reverse("console:task_new"), task_form(agent))
    assert response.status_code == 403
    assert not ScheduledTask.objects.exists()


# --- Webhooks -------------------------------------------------------------------------------


def test_create_an_endpoint_and_see_its_secret_once(owner_client, allow_loopback):
    response = owner_client.post(
        reverse("console:webhooks"),
        {"url": HOOK_URL, "description": "CRM", "event_types": ["run.completed", "run.failed"]},
    )
    endpoint = WebhookEndpoint.objects.get()
    assert response["Location"] == reverse("console:webhook", args=[endpoint.id])
    first = owner_client.get(response["Location"])
    assert first["Cache-Control"] == "no-store"
    assert endpoint.secret in first.content.decode()
    assert endpoint.event_types == ["run.completed", "run.failed"]
    again = owner_client.get(response["Location"]).content.decode()
    assert endpoint.secret not in again and "Signing secret" not in again


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"url": "http://169.254.169.254/latest", "event_types": ["*"]}, "url", ""),
        ({"url": "not a url", "event_types": ["*"]}, "url", "valid URL"),
        ({"url": "https://hooks.example.com/x"}, "event_types", "at least one event"),
    ],
)
def test_endpoint_errors_are_shown_on_the_field(owner_client, data, field, message):
    response = owner_client.post(reverse("console:webhooks"), data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field])
    assert not WebhookEndpoint.objects.exists()


def test_rotate_enable_test_and_redeliver(
    owner_client, endpoint, django_capture_on_commit_callbacks
):
    old = endpoint.secret
    response = owner_client.post(reverse("console:webhook_rotate", args=[endpoint.id]), follow=True)
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old
    assert endpoint.secret in response.content.decode()
    page = owner_client.get(reverse("console:webhook", args=[endpoint.id])).content.decode()
    assert endpoint.secret not in page

    owner_client.post(reverse("console:webhook_enable", args=[endpoint.id]), {"enabled": "0"})
    endpoint.refresh_from_db()
    assert not endpoint.enabled

    owner_client.post(reverse("console:webhook_test", args=[endpoint.id]))
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event.type == "webhook.test"
    page = owner_client.get(reverse("console:webhook", args=[endpoint.id])).content.decode()
    assert "webhook.test" in page

    owner_client.post(reverse("console:webhook_redeliver", args=[endpoint.id, delivery.id]))
    assert WebhookDelivery.objects.filter(event=delivery.event).count() == 2

    owner_client.post(reverse("console:webhook_delete", args=[endpoint.id]))
    assert not WebhookEndpoint.objects.exists()


def test_a_member_sees_endpoints_but_cannot_add_one(client, workspace, endpoint):
    member = UserFactory(email="mo@example.com")
    add_member(workspace=workspace, user=member, role=Role.MEMBER)
    client.force_login(member)
    client.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    assert HOOK_URL in client.get(reverse("console:webhooks")).content.decode()
    response = client.post(reverse("console:webhooks"), {"url": HOOK_URL, "event_types": ["*"]})
    assert response.status_code == 403
    assert client.post(reverse("console:webhook_rotate", args=[endpoint.id])).status_code == 403
    assert WebhookEndpoint.objects.count() == 1


# --- Triggers -------------------------------------------------------------------------------


def test_create_a_trigger_see_its_secret_once_its_url_and_its_calls(owner_client, agent):
    response = owner_client.post(
        reverse("console:triggers"),
        {"name": "Orders", "target": f"agent:{agent.id}", "prompt_template": "Order ${body.id}"},
    )
    trigger = InboundTrigger.objects.get()
    assert response["Location"] == reverse("console:trigger", args=[trigger.id])
    page = owner_client.get(response["Location"]).content.decode()
    assert trigger.secret in page
    assert f"http://testserver/api/v1/triggers/{trigger.id}/fire" in page
    assert "curl -X POST" in page and "Not called yet" in page
    # A refused call is listed (audited by the service), and the secret is gone.
    fire = owner_client.post(
        f"/api/v1/triggers/{trigger.id}/fire",
        data=b"{}",
        content_type="application/json",
        headers={"authorization": "Bearer wrong"},
    )
    assert fire.status_code == 401
    page = owner_client.get(response["Location"]).content.decode()
    assert trigger.secret not in page
    assert re.search(r"badge-danger\">unauthorized", page)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "X", "target": "agent:{agent}", "prompt_template": ""}, "prompt_template"),
        ({"name": "X", "target": "agent:00000000-0000-0000-0000-000000000000"}, "target"),
        ({"name": "", "target": "agent:{agent}", "prompt_template": "hi"}, "name"),
    ],
)
def test_trigger_errors_are_shown_on_the_field(owner_client, agent, data, field):
    data = {k: v.format(agent=agent.id) for k, v in data.items()}
    response = owner_client.post(reverse("console:triggers"), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not InboundTrigger.objects.exists()


def test_disable_and_delete_a_trigger(owner_client, trigger):
    owner_client.post(reverse("console:trigger_enable", args=[trigger.id]), {"enabled": "0"})
    trigger.refresh_from_db()
    assert not trigger.enabled
    owner_client.post(reverse("console:trigger_delete", args=[trigger.id]))
    assert not InboundTrigger.objects.exists()


# --- Tenancy and queries -----------------------------------------------------------------------


def test_other_workspace_gets_404_on_every_object_url(outsider_client, task, endpoint, trigger):
    TaskExecution.objects.create(task=task, due_at=task.created_at, available_at=task.created_at)
    delivery_endpoint = endpoint
    owner_client_urls = [
        ("get", reverse("console:task", args=[task.id])),
        ("get", reverse("console:task_edit", args=[task.id])),
        ("post", reverse("console:task_edit", args=[task.id])),
        ("post", reverse("console:task_enable", args=[task.id])),
        ("post", reverse("console:task_run", args=[task.id])),
        ("post", reverse("console:task_delete", args=[task.id])),
        ("get", reverse("console:webhook", args=[endpoint.id])),
        ("post", reverse("console:webhook_rotate", args=[endpoint.id])),
        ("post", reverse("console:webhook_enable", args=[endpoint.id])),
        ("post", reverse("console:webhook_test", args=[endpoint.id])),
        ("post", reverse("console:webhook_delete", args=[endpoint.id])),
        ("get", reverse("console:trigger", args=[trigger.id])),
        ("post", reverse("console:trigger_enable", args=[trigger.id])),
        ("post", reverse("console:trigger_delete", args=[trigger.id])),
    ]
    for method, url in owner_client_urls:
        response = getattr(outsider_client, method)(url, {"enabled": "0"})
        assert response.status_code == 404, (method, url, response.status_code)
    task.refresh_from_db()
    endpoint.refresh_from_db()
    trigger.refresh_from_db()
    assert task.enabled and task.archived_at is None and task.executions.count() == 1
    assert delivery_endpoint.enabled and not WebhookDelivery.objects.exists()
    assert trigger.enabled


def test_list_pages_make_a_bounded_number_of_queries(
    owner_client, user, workspace, agent, allow_loopback, django_assert_max_num_queries
):
    actor = actor_for(user=user, workspace=workspace)
    for i in range(12):
        t = task_create(
            actor=actor, agent_id=agent.id,
            values={"name": f"T{i}", "prompt_template": "hi", "schedule_kind": "interval",
                    "interval_seconds": 3600},
        )  # fmt: skip
        TaskExecution.objects.create(task=t, due_at=t.created_at, available_at=t.created_at)
        webhook_endpoint_create(actor=actor, url=f"{HOOK_URL}/{i}", event_types=["*"])
        trigger_create(actor=actor, name=f"G{i}", agent_id=agent.id, prompt_template="x")
    for name in ("console:tasks", "console:webhooks", "console:triggers"):
        with django_assert_max_num_queries(10):
            response = owner_client.get(reverse(name))
        assert response.status_code == 200
        assert (
            "T11" in response.content.decode()
            or "G11" in response.content.decode()
            or (f"{HOOK_URL}/11" in response.content.decode())
        )


def test_task_history_and_deliveries_make_a_bounded_number_of_queries(
    owner_client, task, endpoint, django_assert_max_num_queries
):
    from apps.tasks.services import webhook_test_send

    actor = actor_for(user=task.owner, workspace=task.workspace)
    for i in range(10):
        due = task.created_at + __import__("datetime").timedelta(minutes=i)
        TaskExecution.objects.create(task=task, due_at=due, available_at=due)
        webhook_test_send(actor=actor, endpoint=endpoint)
    with django_assert_max_num_queries(10):
        assert owner_client.get(reverse("console:task", args=[task.id])).status_code == 200
    with django_assert_max_num_queries(12):
        assert owner_client.get(reverse("console:webhook", args=[endpoint.id])).status_code == 200

"""REST API of scheduled tasks: CRUD, run now, history, validation, 404s, scopes."""

import pytest

from apps.tasks.models import ScheduledTask, TaskExecution
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.users.factories import api_key_client, make_api_key

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {
    "name": "Digest",
    "prompt_template": "Summarise $date",
    "schedule_kind": "cron",
    "cron": "30 7 * * 1-5",
    "timezone": "America/New_York",
}


def create(api, agent, **changes):
    response = api.post(
        "/api/v1/tasks", {**BODY, "agent_id": str(agent.id), **changes}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["data"]


def test_create_get_list_update_and_delete(api, agent):
    data = create(api, agent)
    assert data["schedule_kind"] == "cron" and data["cron"] == "30 7 * * 1-5"
    assert data["enabled"] is True and data["next_run_at"] is not None
    assert data["overlap_policy"] == "skip" and data["missed_policy"] == "run_once"
    url = f"/api/v1/tasks/{data['id']}"
    assert api.get(url).json()["data"]["id"] == data["id"]
    listed = api.get("/api/v1/tasks").json()
    assert [t["id"] for t in listed["data"]] == [data["id"]]
    changed = api.patch(url, {"cron": "0 18 * * *", "overlap_policy": "queue"}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["data"]["cron"] == "0 18 * * *"
    assert changed.json()["data"]["next_run_at"].endswith(("22:00:00Z", "23:00:00Z"))
    assert api.delete(url).status_code == 204
    assert api.get("/api/v1/tasks").json()["data"] == []
    archived = api.get("/api/v1/tasks?archived=true").json()["data"]
    assert archived[0]["archived_at"] is not None and archived[0]["enabled"] is False
    assert_error(api.post(f"{url}/run"), 409, "task_archived")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": ""}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"schedule_kind": "once"}, "run_at"),
        ({"schedule_kind": "interval", "interval_seconds": 5}, "interval_seconds"),
        ({"schedule_kind": "weekly"}, "schedule_kind"),
        ({"prompt_template": "Hello ${oops"}, "prompt_template"),
        ({"prompt_template": "   "}, "prompt_template"),
        ({"start_at": "2027-01-02T00:00:00Z", "end_at": "2027-01-01T00:00:00Z"}, "end_at"),
        ({"agent_id": "00000000-0000-0000-0000-000000000000"}, "agent_id"),
    ],
)
def test_invalid_input_names_the_field(api, agent, changes, field):
    body = {**BODY, "agent_id": str(agent.id), **changes}
    response = api.post("/api/v1/tasks", body, format="json")
    error = assert_error(response, 400, "validation_error")["error"]
    assert field in {d["field"] for d in error["details"]}, error
    assert ScheduledTask.objects.count() == 0


def test_run_now_enable_disable_and_history(api, agent, scripted_llm):
    task = create(api, agent)
    url = f"/api/v1/tasks/{task['id']}"
    scripted_llm.push("Done now.")
    response = api.post(f"{url}/run")
    assert response.status_code == 202, response.content
    execution = response.json()["data"]
    assert execution["trigger"] == "manual"
    assert execution["status"] == "succeeded" and execution["answer"] == "Done now."
    assert execution["run_id"] and execution["duration_ms"] is not None
    # The execution's conversation is labelled as a task's in the API (not `chat`).
    conversation = api.get(f"/api/v1/conversations/{execution['conversation_id']}")
    assert conversation.json()["data"]["source"] == "task"
    history = api.get(f"{url}/executions").json()["data"]
    assert [e["id"] for e in history] == [execution["id"]]
    detail = api.get(f"{url}/executions/{execution['id']}").json()["data"]
    assert detail["prompt"].startswith("Summarise 20")
    # A manual run is the task's last run too; its schedule is unchanged.
    shown = api.get(url).json()["data"]
    assert shown["last_run_at"] is not None
    assert shown["next_run_at"] == task["next_run_at"]
    disabled = api.post(f"{url}/disable").json()["data"]
    assert disabled["enabled"] is False
    enabled = api.post(f"{url}/enable").json()["data"]
    assert enabled["enabled"] is True and enabled["paused_reason"] == ""


def test_other_workspace_gets_404_everywhere(api, agent, outsider, scripted_llm):
    task = create(api, agent)
    url = f"/api/v1/tasks/{task['id']}"
    obj = ScheduledTask.objects.get(id=task["id"])
    api.post(f"{url}/run")
    execution = TaskExecution.objects.get()
    for method, path, data in [
        ("GET", url, None),
        ("PATCH", url, {"name": "mine now"}),
        ("DELETE", url, None),
        ("POST", f"{url}/run", None),
        ("POST", f"{url}/enable", None),
        ("POST", f"{url}/disable", None),
        ("GET", f"{url}/executions", None),
        ("GET", f"{url}/executions/{execution.id}", None),
    ]:
        assert_outsiders_get_404(method=method, url=path, outsider=outsider, obj=obj, data=data)
    assert TaskExecution.objects.count() == 1
    # Someone else's agent cannot be scheduled either.
    response = outsider.post("/api/v1/tasks", {**BODY, "agent_id": str(agent.id)}, format="json")
    assert_error(response, 400, "validation_error")
    assert ScheduledTask.objects.count() == 1


def test_tasks_scopes_protect_the_endpoints(user, workspace, agent):
    _, read_only = make_api_key(user=user, workspace=workspace, scopes=["tasks:read"])
    reader = api_key_client(read_only)
    assert reader.get("/api/v1/tasks").status_code == 200
    response = reader.post("/api/v1/tasks", {**BODY, "agent_id": str(agent.id)}, format="json")
    assert_error(response, 403, "forbidden")
    _, other_area = make_api_key(user=user, workspace=workspace, scopes=["agents:write"])
    assert_error(api_key_client(other_area).get("/api/v1/tasks"), 403, "forbidden")
    _, writer = make_api_key(user=user, workspace=workspace, scopes=["tasks:write"])
    response = api_key_client(writer).post(
        "/api/v1/tasks", {**BODY, "agent_id": str(agent.id)}, format="json"
    )
    assert response.status_code == 201, response.content

"""The run lifecycle: a worker that dies mid-run, cancel, rerun from the failed step, the
event stream's resume, the signed webhook, another workspace's 404s."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.jobs import jobs_sweep
from apps.workflows import services
from apps.workflows.models import WorkflowRun, WorkflowStepRun
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.tasks.test_webhooks import create_endpoint, verified
from tests.workflows.conftest import (
    WORKFLOWS,
    create_workflow,
    run_detail,
    simple_flow,
    start_run,
    steps_by_id,
)

pytestmark = pytest.mark.django_db(transaction=True)


def two_model_calls():
    return simple_flow(
        {"id": "first", "type": "model_call", "prompt": "one"},
        {"id": "second", "type": "model_call", "prompt": "two after {{ steps.first.output.text }}"},
    )


def test_a_run_whose_worker_died_resumes_without_repeating_a_completed_step(
    api, agent, scripted_llm, monkeypatch
):
    workflow = create_workflow(api, two_model_calls())
    # The run is queued but its message is held back: a worker takes it "by hand" below.
    sent = []
    monkeypatch.setattr(services, "job_enqueue", lambda name, *args: sent.append(args))
    run = start_run(api, workflow["id"])
    assert run["status"] == "queued" and sent == [(run["id"],)]
    monkeypatch.undo()
    # A worker claimed it, finished `start` and `first`, then died (no heartbeat since).
    long_ago = timezone.now() - timedelta(minutes=10)
    WorkflowRun.objects.filter(id=run["id"]).update(
        status="running", attempts=1, heartbeat_at=long_ago, worker_id="dead:1"
    )
    WorkflowStepRun.objects.filter(run_id=run["id"], step_id="start").update(
        status="succeeded", output={}, executions=1
    )
    WorkflowStepRun.objects.filter(run_id=run["id"], step_id="first").update(
        status="succeeded", output={"text": "recorded"}, executions=1
    )
    # `second` was running when the worker died: it runs again (at least once).
    WorkflowStepRun.objects.filter(run_id=run["id"], step_id="second").update(
        status="running", executions=1
    )
    scripted_llm.push("second answer")
    counts = jobs_sweep()
    assert counts["workflows.run"] == 1
    detail = run_detail(api, run["id"])
    assert detail["status"] == "succeeded", detail
    assert detail["attempts"] == 2
    assert detail["outputs"] == {"result": {"text": "second answer"}}
    executions = dict(
        WorkflowStepRun.objects.filter(run_id=run["id"]).values_list("step_id", "executions")
    )
    assert executions == {"start": 1, "first": 1, "second": 2, "end": 1}
    # Only `second` called the model; it saw `first`'s recorded output.
    assert [r["messages"][-1]["content"] for r in scripted_llm.requests] == ["two after recorded"]


def test_stale_run_is_failed_after_its_attempts(api, agent, monkeypatch):
    workflow = create_workflow(api, two_model_calls())
    monkeypatch.setattr(services, "job_enqueue", lambda name, *args: None)
    run = start_run(api, workflow["id"])
    monkeypatch.undo()
    WorkflowRun.objects.filter(id=run["id"]).update(
        status="running",
        attempts=services.MAX_RUN_ATTEMPTS,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    jobs_sweep()
    detail = run_detail(api, run["id"])
    assert detail["status"] == "failed"
    assert detail["error"]["code"] == "worker_lost"


def approval_flow():
    return simple_flow({"id": "ok", "type": "approval", "message": "Go?"})


def test_cancel_a_waiting_run(api, agent):
    workflow = create_workflow(api, approval_flow())
    run = start_run(api, workflow["id"])
    assert run["status"] == "waiting_for_approval"
    response = api.post(f"{WORKFLOWS}/runs/{run['id']}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["status"] == "cancelled"
    steps = steps_by_id(run_detail(api, run["id"]))
    assert {k: v["status"] for k, v in steps.items()} == {
        "start": "succeeded",
        "ok": "cancelled",
        "end": "cancelled",
    }
    assert_error(
        api.post(f"{WORKFLOWS}/runs/{run['id']}/cancel"), 409, "workflow_run_not_cancellable"
    )
    assert_error(
        api.post(f"{WORKFLOWS}/runs/{run['id']}/approve", {}, format="json"),
        409,
        "workflow_run_not_waiting",
    )


def test_reject_fails_the_run_with_the_step(api, agent):
    workflow = create_workflow(api, approval_flow())
    run = start_run(api, workflow["id"])
    response = api.post(f"{WORKFLOWS}/runs/{run['id']}/reject", {"comment": "no"}, format="json")
    assert response.status_code == 200
    detail = run_detail(api, run["id"])
    assert detail["status"] == "failed"
    assert detail["error"]["step_id"] == "ok"
    assert detail["error"]["code"] == "approval_rejected"


def test_rerun_from_the_failed_step_reuses_what_succeeded(api, agent, scripted_llm):
    definition = simple_flow(
        {"id": "draft", "type": "model_call", "prompt": "draft"},
        {
            "id": "extract",
            "type": "model_call",
            "prompt": "JSON of {{ steps.draft.output.text }}",
            "output_schema": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            },
        },
    )
    workflow = create_workflow(api, definition)
    scripted_llm.push("the draft", "not json")
    run = start_run(api, workflow["id"])
    detail = run_detail(api, run["id"])
    assert detail["status"] == "failed"
    assert detail["error"]["step_id"] == "extract"
    assert detail["error"]["code"] == "invalid_model_output"
    assert detail["error"]["message"].startswith("Step extract: The answer is not JSON")

    scripted_llm.push('{"n": 7}')
    response = api.post(f"{WORKFLOWS}/runs/{run['id']}/rerun")
    assert response.status_code == 202, response.content
    rerun = run_detail(api, response.json()["data"]["id"])
    assert rerun["status"] == "succeeded", rerun
    assert rerun["rerun_of"] == run["id"]
    steps = steps_by_id(rerun)
    assert steps["draft"]["reused"] is True
    assert steps["extract"]["output"] == {"text": '{"n": 7}', "json": {"n": 7}}
    assert rerun["outputs"] == {"result": {"text": '{"n": 7}', "json": {"n": 7}}}
    # The draft was not asked again: three model calls in all.
    assert len(scripted_llm.requests) == 3
    assert_error(api.post(f"{WORKFLOWS}/runs/{rerun['id']}/rerun"), 409, "workflow_run_not_failed")


def test_a_step_retries_then_continues_on_error(api, agent, scripted_llm):
    definition = simple_flow(
        {
            "id": "flaky",
            "type": "model_call",
            "prompt": "x",
            "output_schema": {"type": "object"},
            "retry": {"max_attempts": 2, "backoff_seconds": 0},
            "continue_on_error": True,
        },
        {"id": "after", "type": "template", "template": "{{ steps.flaky.output.error.code }}"},
    )
    workflow = create_workflow(api, definition)
    scripted_llm.push("nope", "still nope")
    run = run_detail(api, start_run(api, workflow["id"])["id"])
    assert run["status"] == "succeeded"
    steps = steps_by_id(run)
    assert steps["flaky"]["status"] == "failed"
    assert steps["flaky"]["attempts"] == 2
    assert steps["after"]["output"] == {"text": "invalid_model_output"}


def sse_events(lines, *, until):
    """Events (id, type, payload) read from an SSE line iterator up to one of type `until`."""
    events, fields = [], {}
    for line in lines:
        if line == "":
            if "data" in fields:
                payload = json.loads(fields["data"])
                assert int(fields["id"]) == payload["cursor"]
                events.append((payload["cursor"], payload["type"], payload))
                if payload["type"] == until:
                    return events
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    return events


def test_event_stream_is_live_and_resumes_exactly_once(api, agent, http):
    workflow = create_workflow(api, approval_flow())
    run = start_run(api, workflow["id"])
    url = f"{WORKFLOWS}/runs/{run['id']}/stream"
    with http.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = sse_events(lines, until="workflow.approval.required")
        # Approved while the stream is open: the rest arrives on the same stream.
        assert (
            api.post(f"{WORKFLOWS}/runs/{run['id']}/approve", {}, format="json").status_code == 200
        )
        rest = sse_events(lines, until="workflow.run.finished")
    everything = first + rest
    cursors = [c for c, _, _ in everything]
    assert cursors == list(range(1, len(cursors) + 1))
    assert everything[0][1] == "workflow.run.started"
    assert everything[-1][2]["data"]["status"] == "succeeded"
    # Resume after the third event: by Last-Event-ID, then by the cursor parameter; the
    # stream of an ended run ends after its last event.
    with http.stream("GET", url, headers={"Last-Event-ID": "3"}) as response:
        resumed = sse_events(response.iter_lines(), until="never")
    assert resumed == everything[3:]
    with http.stream("GET", url + "?cursor=3&") as response:
        assert sse_events(response.iter_lines(), until="never") == everything[3:]
    with http.stream("GET", url + "?cursor=-1") as response:
        assert sse_events(response.iter_lines(), until="never") == everything
    bad = http.get(url + "?cursor=x")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"


def test_webhook_receiver_gets_the_signed_completion(api, agent, receiver):
    endpoint = create_endpoint(api, receiver.url, ("workflow.run.completed",))
    workflow = create_workflow(
        api,
        simple_flow(
            {"id": "a", "type": "template", "template": "hello {{ inputs.who }}"},
            inputs={"who": {"type": "string"}},
        ),
    )
    run = start_run(api, workflow["id"], {"who": "world"})
    assert len(receiver.requests) == 1
    payload = verified(receiver, endpoint["secret"])
    assert payload["type"] == "workflow.run.completed"
    assert payload["data"] == {
        "workflow_id": workflow["id"],
        "workflow_run_id": run["id"],
        "workflow_version": 1,
        "source": "api",
        "status": "succeeded",
        "usage": {"input_tokens": 0, "output_tokens": 0},
        "outputs": {"result": {"text": "hello world"}},
    }


def test_another_workspace_gets_404_everywhere(api, agent, outsider):
    workflow = create_workflow(api, approval_flow())
    run = start_run(api, workflow["id"])
    wid, rid = workflow["id"], run["id"]
    from apps.workflows.models import Workflow

    obj = Workflow.objects.get(id=wid)
    for method, url, data in [
        ("GET", f"{WORKFLOWS}/{wid}", None),
        ("PATCH", f"{WORKFLOWS}/{wid}", {"name": "mine"}),
        ("DELETE", f"{WORKFLOWS}/{wid}", None),
        ("GET", f"{WORKFLOWS}/{wid}/versions", None),
        ("GET", f"{WORKFLOWS}/{wid}/versions/1", None),
        ("GET", f"{WORKFLOWS}/{wid}/versions/diff?before=1&after=1", None),
        ("POST", f"{WORKFLOWS}/{wid}/restore", {"version": 1}),
        ("POST", f"{WORKFLOWS}/{wid}/publish", {}),
        ("GET", f"{WORKFLOWS}/{wid}/export", None),
        ("POST", f"{WORKFLOWS}/{wid}/runs", {"inputs": {}}),
        ("GET", f"{WORKFLOWS}/runs/{rid}", None),
        ("POST", f"{WORKFLOWS}/runs/{rid}/cancel", {}),
        ("POST", f"{WORKFLOWS}/runs/{rid}/rerun", {}),
        ("POST", f"{WORKFLOWS}/runs/{rid}/approve", {}),
        ("POST", f"{WORKFLOWS}/runs/{rid}/reject", {}),
        ("GET", f"{WORKFLOWS}/runs/{rid}/stream", None),
    ]:
        assert_outsiders_get_404(method=method, url=url, outsider=outsider, obj=obj, data=data)
    assert WorkflowRun.objects.get(id=rid).status == "waiting_for_approval"
    # Lists are the outsider's own (empty).
    assert outsider.get(WORKFLOWS).json()["data"] == []
    assert outsider.get(f"{WORKFLOWS}/runs").json()["data"] == []


def test_versions_diff_restore_and_import_export(api, agent):
    first = simple_flow({"id": "a", "type": "template", "template": "one"})
    workflow = create_workflow(api, first)
    second = simple_flow(
        {"id": "a", "type": "template", "template": "two"},
        {"id": "b", "type": "template", "template": "three"},
    )
    response = api.patch(f"{WORKFLOWS}/{workflow['id']}", {"definition": second}, format="json")
    assert response.json()["data"]["version"] == 2
    assert response.json()["data"]["published_version"] == 1
    versions = api.get(f"{WORKFLOWS}/{workflow['id']}/versions").json()["data"]
    assert [v["number"] for v in versions] == [2, 1]
    diff = api.get(f"{WORKFLOWS}/{workflow['id']}/versions/diff?before=1&after=2").json()["data"]
    assert diff["added"] == ["b"] and diff["removed"] == []
    assert [c["step_id"] for c in diff["changed"]] == ["b", "end"][1:] or diff["changed"]
    assert '-  "template": "one"' in next(c for c in diff["changed"] if c["step_id"] == "a")["diff"]
    restored = api.post(f"{WORKFLOWS}/{workflow['id']}/restore", {"version": 1}, format="json")
    assert restored.json()["data"]["version"] == 3
    assert restored.json()["data"]["definition"] == first
    exported = api.get(f"{WORKFLOWS}/{workflow['id']}/export").json()["data"]
    assert exported["format"] == "workflow/v1"
    imported = api.post(f"{WORKFLOWS}/import", exported, format="json")
    assert imported.status_code == 201, imported.content
    assert imported.json()["data"]["definition"] == first
    assert_error(
        api.post(f"{WORKFLOWS}/import", {**exported, "format": "x"}, format="json"),
        400,
        "validation_error",
    )

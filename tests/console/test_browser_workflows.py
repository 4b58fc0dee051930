"""The console's workflows pages in a real headless Chromium against the platform over
HTTP: a workflow written as JSON (an inline validation error, fixed), published, started
from the form built from its start step's inputs, approved, and seen succeeded in the
graph. Screenshots go to test-output/console/ (not committed)."""

import json
import threading
from unittest.mock import patch

import pytest

from apps.workflows.choices import RunStatus
from apps.workflows.models import Workflow, WorkflowRun
from apps.workflows.services import run_execute, run_start
from tests.agents.factories import actor_for
from tests.console.test_browser import browser, shot, signed_in  # noqa: F401

pytestmark = pytest.mark.slow

FLOW = {
    "steps": [
        {"id": "start", "type": "start", "inputs": {
            "topic": {"type": "string", "required": True},
            "count": {"type": "integer", "default": 3},
        }},
        {"id": "draft", "type": "template", "after": ["start"],
         "template": "{{ inputs.count }} notes about {{ inputs.topic }}"},
        {"id": "shout", "type": "template", "after": ["start"],
         "template": "{{ inputs.topic | upper }}"},
        {"id": "check", "type": "approval", "after": ["draft", "shout"],
         "message": "Publish '{{ steps.draft.output.text }}'?"},
        {"id": "end", "type": "end", "after": ["check"],
         "outputs": {"text": "{{ steps.draft.output.text }}",
                     "title": "{{ steps.shout.output.text }}"}},
    ]
}  # fmt: skip


def in_a_worker(function, **kwargs):
    """Call `function` in its own thread, as a worker would (Playwright's sync API keeps
    an event loop in the test's thread, where async_to_sync may not run)."""
    from django.db import connection

    def work():
        try:
            function(**kwargs)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_write_fix_publish_start_approve_and_see_the_graph(signed_in, user, workspace):  # noqa: F811
    page = signed_in
    page.goto("/workflows/")
    assert page.get_by_text("No workflows yet").is_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Workflows").wait_for()

    broken = json.loads(json.dumps(FLOW))
    broken["steps"][3]["after"] = ["draft", "shuot"]
    page.fill("#id_name", "Notes")
    page.fill("#id_definition", json.dumps(broken, indent=2))
    page.get_by_role("button", name="Create workflow").click()
    problems = page.locator("#definition-errors")
    problems.wait_for()
    assert "Step check, field after: No step 'shuot'." in problems.inner_text()
    shot(page, "workflows-01-inline-error")
    assert not Workflow.objects.exists()

    page.fill("#id_definition", json.dumps(FLOW, indent=2))
    page.get_by_role("button", name="Create workflow").click()
    page.wait_for_url("**/workflows/*/")
    assert page.get_by_text("created (version 1)").is_visible()
    assert page.locator('.wf-graph g[data-step="check"]').is_visible()
    page.get_by_role("button", name="Publish v1").click()
    page.get_by_text("Version 1 published.").wait_for()
    shot(page, "workflows-02-editor-and-graph")

    page.get_by_role("link", name="Start a run").first.click()
    page.wait_for_url("**/start")
    assert page.locator("#id_in_count").input_value() == "3"
    shot(page, "workflows-03-start-form")
    page.get_by_role("button", name="Start run").click()  # topic is required
    page.locator("#id_in_topic:invalid").wait_for()  # the browser's own check first
    page.fill("#id_in_topic", "tea")
    page.fill("#id_in_count", "2")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/workflows/runs/*/")
    approval = page.locator("#approval-check")
    approval.wait_for()
    assert "Publish '2 notes about tea'?" in approval.inner_text()
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.WAITING_FOR_APPROVAL
    assert page.locator('.wf-graph g[data-step="check"]').get_attribute("data-status") == (
        "waiting_for_approval"
    )
    shot(page, "workflows-04-run-waiting")

    approval.get_by_label("Comment (optional)").fill("Looks right")
    approval.get_by_role("button", name="Approve").click()
    page.get_by_text("Approved.").wait_for()
    page.locator('#run-live[data-run-status="succeeded"]').wait_for()
    assert "2 notes about tea" in page.locator("#run-outputs").inner_text()
    shot(page, "workflows-05-run-succeeded")

    page.goto(f"/workflows/{run.workflow_id}/graph")
    page.select_option("#run-select", str(run.id))  # autosubmits
    page.wait_for_url(f"**/graph?run={run.id}")
    for step in ("start", "draft", "shout", "check", "end"):
        box = page.locator(f'.wf-graph g[data-step="{step}"]')
        assert box.get_attribute("data-status") == "succeeded", step
    shot(page, "workflows-06-graph-succeeded")

    # A queued run (no worker yet): its page polls every 2 s and shows the worker's
    # progress without a reload, then stops polling at the approval.
    with patch("apps.workflows.services.job_enqueue"):
        queued = run_start(
            actor=actor_for(user=user, workspace=workspace),
            workflow=Workflow.objects.get(),
            inputs={"topic": "milk"},
        )
    page.goto(f"/workflows/runs/{queued.id}/")
    page.locator('#run-live[data-run-status="queued"]').wait_for()
    assert page.locator('.wf-graph g[data-step="draft"]').get_attribute("data-status") == (
        "pending"
    )
    in_a_worker(run_execute, run_id=queued.id)  # what the worker does
    page.locator('#run-live[data-run-status="waiting_for_approval"]').wait_for(timeout=10_000)
    assert page.locator('.wf-graph g[data-step="draft"]').get_attribute("data-status") == (
        "succeeded"
    )
    assert "Publish '3 notes about milk'?" in page.locator("#approval-check").inner_text()
    shot(page, "workflows-07-polled-to-approval")

    page.goto(f"/workflows/{run.workflow_id}/runs/")
    assert page.locator("#runs tbody tr").count() == 2
    page.select_option("#status-select", "succeeded")  # autosubmits
    page.wait_for_url("**/runs/?status=succeeded")
    assert page.locator("#runs tbody tr").count() == 1
    assert page.locator("#runs").get_by_text("succeeded").is_visible()
    shot(page, "workflows-08-runs")
    page.goto("/workflows/")
    row = page.locator("#workflows tbody tr")
    assert row.get_by_text("waiting for approval").is_visible()  # the newest run
    assert row.locator("td").nth(4).inner_text() == "2"
    shot(page, "workflows-09-list")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.outputs == {"text": "2 notes about tea", "title": "TEA"}

"""The console's workflows pages (Django test client): the list with each workflow's
published version, last run and run count; the JSON editor with validation errors named
by step and field; publish, versions and restore; export/import; the graph coloured by a
run's step statuses; run history with its status filter; the start form built from the
start step's inputs; cancel, rerun, approve and reject. 404 for another workspace's
workflow or run; viewers read but may not write, as the API."""

import html as html_lib
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.users.choices import Role
from apps.workflows.choices import RunStatus, StepStatus
from apps.workflows.models import Workflow, WorkflowRun
from apps.workflows.services import run_start, workflow_create, workflow_publish
from tests.agents.factories import actor_for
from tests.users.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db

FLOW = {
    "steps": [
        {"id": "start", "type": "start", "inputs": {
            "topic": {"type": "string", "required": True},
            "count": {"type": "integer", "default": 2},
            "urgent": {"type": "boolean"},
            "tags": {"type": "array"},
        }},
        {"id": "draft", "type": "template", "after": ["start"],
         "template": "{{ inputs.topic }} x{{ inputs.count }}"},
        {"id": "check", "type": "approval", "after": ["draft"],
         "message": "Send {{ steps.draft.output.text }}?"},
        {"id": "end", "type": "end", "after": ["check"],
         "outputs": {"text": "{{ steps.draft.output.text }}"}},
    ]
}  # fmt: skip


@pytest.fixture
def actor(user, workspace):
    return actor_for(user=user, workspace=workspace)


@pytest.fixture
def workflow(actor):
    workflow = workflow_create(actor=actor, name="Review", definition=FLOW)
    return workflow_publish(actor=actor, workflow=workflow)


def start(actor, workflow, django_capture_on_commit_callbacks, inputs=None):
    """A run started and driven at once (Celery is eager in tests: the commit hook
    executes it) up to its approval step."""
    with django_capture_on_commit_callbacks(execute=True):
        run = run_start(actor=actor, workflow=workflow, inputs=inputs or {"topic": "tea"})
    run.refresh_from_db()
    return run


@pytest.fixture
def waiting_run(actor, workflow, django_capture_on_commit_callbacks):
    run = start(actor, workflow, django_capture_on_commit_callbacks)
    assert run.status == RunStatus.WAITING_FOR_APPROVAL
    return run


def definition_post(definition, name="Review", description=""):
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return {"name": name, "description": description, "definition": text}


def test_the_list_shows_published_version_last_run_and_runs_count(
    owner_client, workflow, waiting_run
):
    response = owner_client.get(reverse("console:workflows"))
    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(r"<tr>\s*<td><a href=\"/workflows/[^\"]+/\">Review</a>.*?</tr>", html, re.S)
    assert row, html
    assert "v1" in row.group(0)
    assert "waiting for approval" in row.group(0)
    assert f'href="{reverse("console:workflow_runs", args=[workflow.id])}">1</a>' in row.group(0)
    assert 'aria-current="page">Workflows</a>' in html


def test_create_from_json_shows_each_validation_error_on_its_step_and_field(owner_client):
    broken = json.loads(json.dumps(FLOW))
    broken["steps"][1]["type"] = "templat"
    broken["steps"][3]["after"] = ["nowhere"]
    response = owner_client.post(reverse("console:workflows"), definition_post(broken))
    assert response.status_code == 400
    html = response.content.decode()
    problems = re.search(r'<ul class="wf-problems" id="definition-errors".*?</ul>', html, re.S)
    assert problems, html
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", problems.group(0)))
    assert "Step draft, field type: Unknown step type 'templat'." in text
    assert "Step end, field after: No step 'nowhere'." in text
    assert "templat" in html  # the text typed is kept in the editor
    assert not Workflow.objects.exists()

    not_json = owner_client.post(reverse("console:workflows"), definition_post("{nope"))
    assert not_json.status_code == 400
    assert "Not valid JSON" in not_json.content.decode()

    created = owner_client.post(reverse("console:workflows"), definition_post(FLOW))
    workflow = Workflow.objects.get()
    assert created.status_code == 302
    assert created["Location"] == reverse("console:workflow", args=[workflow.id])
    assert workflow.version == 1 and workflow.definition == FLOW


def test_save_publish_restore_and_versions(owner_client, actor):
    workflow = workflow_create(actor=actor, name="Review", definition=FLOW)
    url = reverse("console:workflow", args=[workflow.id])
    page = owner_client.get(url).content.decode()
    assert "not published" in page and "Publish v1" in page
    assert '<svg class="wf-graph"' in page and 'data-step="check"' in page

    changed = json.loads(json.dumps(FLOW))
    changed["steps"][1]["template"] = "About {{ inputs.topic }}"
    response = owner_client.post(url, definition_post(changed, name="Review 2"))
    assert response.status_code == 302
    workflow.refresh_from_db()
    assert (workflow.version, workflow.name) == (2, "Review 2")

    bad = json.loads(json.dumps(changed))
    bad["steps"][1]["template"] = "{{ inputs.missing }}"
    response = owner_client.post(url, definition_post(bad))
    assert response.status_code == 400
    assert "Step <code>draft</code>, field <code>template</code>" in response.content.decode()
    workflow.refresh_from_db()
    assert workflow.version == 2

    owner_client.post(reverse("console:workflow_publish", args=[workflow.id]), {"version": "1"})
    workflow.refresh_from_db()
    assert workflow.published_version.number == 1
    response = owner_client.post(
        reverse("console:workflow_restore", args=[workflow.id]), {"version": "1"}
    )
    assert response.status_code == 302
    workflow.refresh_from_db()
    assert workflow.version == 3 and workflow.definition == FLOW
    page = owner_client.get(url).content.decode()
    versions = re.search(r'<table class="table" id="versions">.*?</table>', page, re.S).group(0)
    assert versions.count("<tr>") == 4  # head + 3 versions
    assert "restored v1" in versions
    missing = owner_client.post(
        reverse("console:workflow_restore", args=[workflow.id]), {"version": "9"}, follow=True
    )
    assert "Workflow version not found." in missing.content.decode()


def test_export_then_import_makes_a_copy(owner_client, workflow):
    response = owner_client.get(reverse("console:workflow_export", args=[workflow.id]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="review.workflow.json"'
    document = json.loads(response.content)
    assert document["format"] == "workflow/v1" and document["definition"] == FLOW

    upload = SimpleUploadedFile("review.json", response.content, "application/json")
    imported = owner_client.post(reverse("console:workflow_import"), {"file": upload})
    assert imported.status_code == 302
    assert Workflow.objects.count() == 2

    junk = SimpleUploadedFile("x.json", b"not json", "application/json")
    failed = owner_client.post(reverse("console:workflow_import"), {"file": junk}, follow=True)
    assert "Import failed: The file is not a JSON document." in failed.content.decode()
    wrong = SimpleUploadedFile("x.json", b'{"format": "v0"}', "application/json")
    failed = owner_client.post(reverse("console:workflow_import"), {"file": wrong}, follow=True)
    assert "Import failed: format must be &#x27;workflow/v1&#x27;." in failed.content.decode()
    assert Workflow.objects.count() == 2


def test_start_form_is_built_from_the_start_steps_inputs(
    owner_client, workflow, django_capture_on_commit_callbacks
):
    url = reverse("console:workflow_start", args=[workflow.id])
    page = owner_client.get(url).content.decode()
    assert re.search(r'<textarea name="in_topic"[^>]*required', page)
    assert re.search(r'<input type="number" name="in_count" value="2"', page)
    assert '<select name="in_urgent"' in page
    assert 'name="in_tags"' in page and "array" in page

    missing = owner_client.post(url, {"in_topic": "", "in_count": "x", "in_tags": "[1"})
    assert missing.status_code == 400
    errors = missing.context["form"].errors
    assert set(errors) == {"in_topic", "in_count", "in_tags"}
    # A value of the wrong JSON type is refused by the service, on its field.
    typed = owner_client.post(url, {"in_topic": "tea", "in_tags": '{"a": 1}'})
    assert typed.status_code == 400
    assert typed.context["form"].errors["in_tags"] == ["Expected a array."]
    assert not WorkflowRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            url, {"in_topic": "tea", "in_urgent": "true", "in_tags": '["a"]'}
        )
    run = WorkflowRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("console:workflow_run", args=[run.id])
    assert run.inputs == {"topic": "tea", "count": 2, "urgent": True, "tags": ["a"]}


def test_start_needs_a_published_version(owner_client, actor):
    workflow = workflow_create(actor=actor, name="Draft only", definition=FLOW)
    url = reverse("console:workflow_start", args=[workflow.id])
    assert "publish it</a> first" in owner_client.get(url).content.decode()
    response = owner_client.post(url, {"in_topic": "tea"})
    assert response.status_code == 400
    assert "no published version" in response.content.decode()
    assert not WorkflowRun.objects.exists()


def test_run_page_shows_steps_graph_and_approves(
    owner_client, waiting_run, django_capture_on_commit_callbacks
):
    url = reverse("console:workflow_run", args=[waiting_run.id])
    page = owner_client.get(url).content.decode()
    assert 'data-step="draft" data-status="succeeded"' in page
    assert 'data-step="check" data-status="waiting_for_approval"' in page
    assert 'data-step="end" data-status="pending"' in page
    assert "Send tea x2?" in page  # the approval's message
    assert "hx-trigger" not in page  # waiting: no polling under the comment box
    steps = re.search(r'<table class="table" id="steps">.*?</table>', page, re.S).group(0)
    assert "tea x2" in steps  # the template step's output

    decide = reverse("console:workflow_run_decide", args=[waiting_run.id])
    bad = owner_client.post(decide, {"decision": "maybe"}, follow=True)
    assert "decision: approve or reject." in bad.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(decide, {"decision": "approve", "comment": "fine", "step_id": "check"})
    waiting_run.refresh_from_db()
    assert waiting_run.status == RunStatus.SUCCEEDED
    check = waiting_run.steps.get(step_id="check")
    assert check.output["comment"] == "fine" and check.output["approved"] is True
    page = owner_client.get(url).content.decode()
    assert 'data-step="end" data-status="succeeded"' in page
    again = owner_client.post(decide, {"decision": "approve"}, follow=True)
    assert "The run is not waiting for an approval." in again.content.decode()


def test_reject_then_rerun_from_the_failed_step(
    owner_client, waiting_run, django_capture_on_commit_callbacks
):
    decide = reverse("console:workflow_run_decide", args=[waiting_run.id])
    owner_client.post(decide, {"decision": "reject", "comment": "no"})
    waiting_run.refresh_from_db()
    assert waiting_run.status == RunStatus.FAILED and waiting_run.error_step == "check"
    page = owner_client.get(reverse("console:workflow_run", args=[waiting_run.id])).content
    assert b"Rerun from the failed step" in page and b"approval_rejected" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("console:workflow_rerun", args=[waiting_run.id]))
    new = WorkflowRun.objects.exclude(id=waiting_run.id).get()
    assert response["Location"] == reverse("console:workflow_run", args=[new.id])
    assert new.rerun_of_id == waiting_run.id
    assert new.steps.get(step_id="draft").reused is True
    assert new.steps.get(step_id="check").status == StepStatus.WAITING_FOR_APPROVAL
    # A rerun of a run that did not fail is refused, with why.
    refused = owner_client.post(reverse("console:workflow_rerun", args=[new.id]), follow=True)
    assert "Only a failed or cancelled run can be rerun." in refused.content.decode()


def test_cancel_a_waiting_run(owner_client, waiting_run):
    cancel = reverse("console:workflow_run_cancel", args=[waiting_run.id])
    assert owner_client.post(cancel).status_code == 302
    waiting_run.refresh_from_db()
    assert waiting_run.status == RunStatus.CANCELLED
    again = owner_client.post(cancel, follow=True)
    assert "The run has already ended." in again.content.decode()


def test_an_active_run_polls_and_the_graph_page_shows_a_runs_statuses(
    owner_client, workflow, waiting_run
):
    queued = run_start(actor=actor_for(user=workflow.created_by, workspace=workflow.workspace),
                       workflow=workflow, inputs={"topic": "milk"})  # fmt: skip
    page = owner_client.get(reverse("console:workflow_run", args=[queued.id])).content.decode()
    live = reverse("console:workflow_run_live", args=[queued.id])
    assert f'hx-get="{live}" hx-trigger="every 2s"' in page
    fragment = owner_client.get(live).content.decode()
    assert fragment.startswith('\n<div id="run-live" data-run-status="queued"')
    assert "<html" not in fragment

    graph = reverse("console:workflow_graph", args=[workflow.id])
    draft = owner_client.get(graph).content.decode()
    assert 'data-step="check" data-status=""' in draft
    shown = owner_client.get(graph, {"run": str(waiting_run.id)}).content.decode()
    assert 'data-step="check" data-status="waiting_for_approval"' in shown
    assert "hx-trigger" not in shown
    polling = owner_client.get(graph, {"run": str(queued.id)}).content.decode()
    assert (
        'hx-trigger="every 2s"' in polling and 'data-step="draft" data-status="pending"' in polling
    )
    # Edges: start -> draft -> check -> end, laid out left to right in four columns.
    assert polling.count('class="wf-edge"') == 3
    assert len(set(re.findall(r'transform="translate\((\d+),', polling))) == 4


def test_run_history_filters_by_status(
    owner_client, actor, workflow, waiting_run, django_capture_on_commit_callbacks
):
    from apps.workflows.services import run_cancel

    other = start(actor, workflow, django_capture_on_commit_callbacks, {"topic": "milk"})
    run_cancel(actor=actor, run=other)
    url = reverse("console:workflow_runs", args=[workflow.id])
    page = owner_client.get(url).content.decode()
    rows = re.search(r'<table class="table" id="runs">.*?</table>', page, re.S).group(0)
    assert rows.count("<tr>") == 3 and "cancelled" in rows and "waiting for approval" in rows
    only = owner_client.get(url, {"status": "cancelled"}).content.decode()
    rows = re.search(r'<table class="table" id="runs">.*?</table>', only, re.S).group(0)
    assert rows.count("<tr>") == 2
    assert reverse("console:workflow_run", args=[other.id]) in rows
    empty = owner_client.get(url, {"status": "succeeded"}).content.decode()
    assert "No runs with status succeeded" in empty
    assert owner_client.get(url, {"status": "bogus"}).status_code == 200  # ignored


def test_another_workspaces_workflow_and_run_are_404(outsider_client, workflow, waiting_run):
    w, r = workflow.id, waiting_run.id
    for name in ("workflow", "workflow_export", "workflow_graph", "workflow_runs",
                 "workflow_start"):  # fmt: skip
        assert outsider_client.get(reverse(f"console:{name}", args=[w])).status_code == 404
    for name in ("workflow", "workflow_publish", "workflow_restore", "workflow_delete",
                 "workflow_start"):  # fmt: skip
        response = outsider_client.post(reverse(f"console:{name}", args=[w]), {"version": "1"})
        assert response.status_code == 404, name
    for name in ("workflow_run", "workflow_run_live"):
        assert outsider_client.get(reverse(f"console:{name}", args=[r])).status_code == 404
    for name in ("workflow_run_cancel", "workflow_rerun", "workflow_run_decide"):
        response = outsider_client.post(
            reverse(f"console:{name}", args=[r]), {"decision": "approve"}
        )
        assert response.status_code == 404, name
    # A run of another workflow on this workflow's graph page is a 404 too.
    assert outsider_client.get(reverse("console:workflows")).content.count(b"Review") == 0
    waiting_run.refresh_from_db()
    assert waiting_run.status == RunStatus.WAITING_FOR_APPROVAL


def test_a_run_of_another_workflow_is_404_on_the_graph_page(
    owner_client, actor, workflow, waiting_run
):
    second = workflow_create(actor=actor, name="Other", definition=FLOW)
    url = reverse("console:workflow_graph", args=[second.id])
    assert owner_client.get(url, {"run": str(waiting_run.id)}).status_code == 404


@pytest.mark.parametrize("role", [Role.VIEWER])
def test_a_viewer_reads_but_may_not_write(client, workspace, workflow, waiting_run, role):
    viewer = UserFactory(email="vera@example.com")
    add_member(workspace=workspace, user=viewer, role=role)
    client.force_login(viewer)
    session = client.session
    session["console_workspace_id"] = str(workspace.id)
    session.save()
    w, r = workflow.id, waiting_run.id
    for url in (reverse("console:workflows"), reverse("console:workflow", args=[w]),
                reverse("console:workflow_runs", args=[w]),
                reverse("console:workflow_graph", args=[w]),
                reverse("console:workflow_run", args=[r]),
                reverse("console:workflow_export", args=[w])):  # fmt: skip
        assert client.get(url).status_code == 200, url
    posts = [
        (reverse("console:workflows"), definition_post(FLOW, name="Mine")),
        (reverse("console:workflow", args=[w]), definition_post(FLOW, name="Renamed")),
        (reverse("console:workflow_publish", args=[w]), {}),
        (reverse("console:workflow_start", args=[w]), {"in_topic": "x"}),
        (reverse("console:workflow_run_decide", args=[r]), {"decision": "approve"}),
        (reverse("console:workflow_run_cancel", args=[r]), {}),
        (reverse("console:workflow_delete", args=[w]), {}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert b"Not allowed" in response.content
    workflow.refresh_from_db()
    waiting_run.refresh_from_db()
    assert workflow.name == "Review" and Workflow.objects.count() == 1
    assert waiting_run.status == RunStatus.WAITING_FOR_APPROVAL
    assert WorkflowRun.objects.count() == 1


def test_a_member_may_approve_and_start(client, workspace, workflow, waiting_run):
    member = UserFactory(email="max@example.com")
    add_member(workspace=workspace, user=member, role=Role.MEMBER)
    client.force_login(member)
    session = client.session
    session["console_workspace_id"] = str(workspace.id)
    session.save()
    decide = reverse("console:workflow_run_decide", args=[waiting_run.id])
    client.post(decide, {"decision": "reject"})
    waiting_run.refresh_from_db()
    assert waiting_run.status == RunStatus.FAILED
    response = client.post(reverse("console:workflow_start", args=[workflow.id]), {"in_topic": "x"})
    assert response.status_code == 302
    assert WorkflowRun.objects.filter(created_by=member).count() == 1


def test_signed_out_visitor_is_sent_to_sign_in(client, workflow):
    response = client.get(reverse("console:workflow", args=[workflow.id]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_list_and_run_pages_have_bounded_queries(
    owner_client, actor, workflow, waiting_run, django_assert_max_num_queries
):
    for i in range(5):
        workflow_create(actor=actor, name=f"Flow {i}", definition=FLOW)
    with django_assert_max_num_queries(12):
        response = owner_client.get(reverse("console:workflows"))
    assert response.content.count(b'<td><a href="/workflows/') == 6
    with django_assert_max_num_queries(12):
        owner_client.get(reverse("console:workflow_run", args=[waiting_run.id]))


def test_graph_layout_layers_a_condition_with_labelled_branches():
    from apps.console.views.workflows import graph_layout

    definition = {"steps": [
        {"id": "start", "type": "start"},
        {"id": "check", "type": "condition", "after": ["start"], "if": "{{ true }}",
         "then": ["yes"], "else": ["no"]},
        {"id": "yes", "type": "template", "template": "y"},
        {"id": "no", "type": "template", "template": "n"},
        {"id": "end", "type": "end", "after": ["yes", "no"]},
    ]}  # fmt: skip
    layout = graph_layout(definition, {"yes": "succeeded", "no": "skipped"})
    columns = {b.id: b.x for b in layout.boxes}
    assert columns["start"] < columns["check"] < columns["yes"] == columns["no"] < columns["end"]
    assert {b.id: b.status for b in layout.boxes}["no"] == "skipped"
    assert sorted(e.label for e in layout.edges) == ["", "", "", "else", "then"]
    assert layout.width >= columns["end"] + layout.box_w
    cyclic = {"steps": [{"id": "a", "type": "template", "after": ["b"]},
                        {"id": "b", "type": "template", "after": ["a"]}]}  # fmt: skip
    assert graph_layout(cyclic) is None
    assert graph_layout({"steps": []}) is None

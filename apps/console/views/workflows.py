"""Workflows pages: the list (create, import), a workflow's JSON editor with its
validation errors inline (save, publish, versions with restore, export), a read-only
graph of the definition coloured by a run's step statuses, run history with a status
filter, a run's detail (cancel, rerun, approve/reject) and the start form built from the
start step's inputs. Through the workflows app's services and selectors, as the API
(the same `access_*` 404s, the services' own role checks)."""

import json
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.console.access import console_view, error_message, posted, writes_need
from apps.console.forms_workflows import (
    EXAMPLE_DEFINITION,
    DefinitionForm,
    ImportForm,
    StartRunForm,
    pretty,
)
from apps.core.exceptions import ApplicationError
from apps.users.choices import Role
from apps.workflows.choices import RunStatus, StepStatus, StepType
from apps.workflows.models import Workflow, WorkflowRun
from apps.workflows.selectors import (
    access_run,
    access_workflow,
    run_list,
    run_steps,
    workflow_overview,
    workflow_versions,
)
from apps.workflows.services import (
    run_cancel,
    run_decide,
    run_rerun,
    run_start,
    workflow_create,
    workflow_delete,
    workflow_export,
    workflow_import,
    workflow_publish,
    workflow_restore,
    workflow_update,
)

LIST_ROWS = 200
RUN_ROWS = 100
VERSION_ROWS = 50
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)

# The graph's geometry (SVG user units).
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 180, 56, 64, 22, 16


@dataclass
class Box:
    id: str
    type: str
    status: str
    x: int
    y: int


@dataclass
class Edge:
    path: str
    label: str
    lx: int
    ly: int


@dataclass
class Layout:
    boxes: list[Box]
    edges: list[Edge]
    width: int
    height: int
    box_w: int = BOX_W
    box_h: int = BOX_H


def _edges_of(definition: Any) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """A definition's step types by id and each step's incoming edges as (dependency,
    label): its `after` ids, and a condition's `then` / `else` targets (labelled)."""
    steps = definition.get("steps") if isinstance(definition, dict) else None
    types: dict[str, str] = {}
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and isinstance(step.get("id"), str):
            types.setdefault(step["id"], str(step.get("type", "")))
    incoming: dict[str, list[tuple[str, str]]] = {sid: [] for sid in types}
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict) or step.get("id") not in types:
            continue
        sid = step["id"]
        after = step.get("after")
        for dep in after if isinstance(after, list) else []:
            if dep in types and all(dep != d for d, _ in incoming[sid]):
                incoming[sid].append((dep, ""))
        if step.get("type") == StepType.CONDITION:
            for label in ("then", "else"):
                targets = step.get(label)
                for target in targets if isinstance(targets, list) else []:
                    if target in types and all(sid != d for d, _ in incoming[target]):
                        incoming[target].append((sid, label))
    return types, incoming


def graph_layout(definition: Any, statuses: dict[str, str] | None = None) -> Layout | None:
    """Steps as boxes in topological layers (a step's column is one past its deepest
    dependency), edges as curves from a dependency's right side to its dependent's left
    side (a condition's labelled then/else). None when there is nothing to draw (no
    steps, or a cycle: a saved definition has neither)."""
    types, incoming = _edges_of(definition)
    statuses = statuses or {}
    children: dict[str, list[str]] = {sid: [] for sid in types}
    for sid, deps in incoming.items():
        for dep, _ in deps:
            children[dep].append(sid)
    indegree = {sid: len(deps) for sid, deps in incoming.items()}
    queue = deque(sid for sid in types if indegree[sid] == 0)
    order: list[str] = []
    while queue:
        sid = queue.popleft()
        order.append(sid)
        for child in children[sid]:
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    if not order or len(order) != len(types):
        return None
    layer: dict[str, int] = {}
    for sid in order:
        layer[sid] = 1 + max((layer[d] for d, _ in incoming[sid]), default=-1)
    rows: dict[int, int] = {}
    pos: dict[str, tuple[int, int]] = {}
    boxes = []
    for sid in order:
        col = layer[sid]
        row = rows.get(col, 0)
        rows[col] = row + 1
        x, y = PAD + col * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y)
        pos[sid] = (x, y)
        boxes.append(Box(sid, types[sid], statuses.get(sid, ""), x, y))
    edges = []
    for sid in order:
        for dep, label in incoming[sid]:
            (x1, y1), (x2, y2) = pos[dep], pos[sid]
            sx, sy, ex, ey = x1 + BOX_W, y1 + BOX_H // 2, x2, y2 + BOX_H // 2
            mid = (sx + ex) // 2
            path = f"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}"
            edges.append(Edge(path, label, mid, (sy + ey) // 2 - 4))
    width = PAD * 2 + (max(layer.values()) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values()) * (BOX_H + GAP_Y) - GAP_Y
    return Layout(boxes, edges, width, height)


def _declared_inputs(workflow: Workflow) -> dict[str, Any] | None:
    """The start step's declared inputs of what a run would execute (the published
    version, else None: nothing to start)."""
    if workflow.published_version is None:
        return None
    definition = workflow.published_version.definition
    for step in definition.get("steps", []):
        if isinstance(step, dict) and step.get("type") == StepType.START:
            inputs = step.get("inputs") or {}
            return inputs if isinstance(inputs, dict) else {}
    return {}


# --- workflows ------------------------------------------------------------------------------


@console_view
@writes_need(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def workflow_index(request: HttpRequest) -> HttpResponse:
    """The workspace's workflows and a new one from JSON (errors inline)."""
    actor = request.actor  # type: ignore[attr-defined]
    form = DefinitionForm(
        posted(request), initial={"name": "", "definition": pretty(EXAMPLE_DEFINITION)}
    )
    if request.method == "POST" and form.is_valid():
        try:
            workflow = workflow_create(
                actor=actor,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                definition=form.cleaned_data["definition"],
            )
        except ApplicationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Workflow “{workflow.name}” created (version 1).")
            return redirect("console:workflow", workflow_id=workflow.id)
    workflows = list(workflow_overview(actor=actor)[:LIST_ROWS])
    return render(
        request,
        "console/workflows/index.html",
        {"workflows": workflows, "form": form, "import_form": ImportForm()},
        status=400 if form.errors else 200,
    )


@console_view
@writes_need(Role.MEMBER)
@require_POST
def workflow_import_view(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    form = ImportForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            workflow = workflow_import(actor=actor, document=form.cleaned_data["file"])
        except ApplicationError as exc:
            messages.error(request, f"Import failed: {error_message(exc)}")
        else:
            messages.success(request, f"Workflow “{workflow.name}” imported.")
            return redirect("console:workflow", workflow_id=workflow.id)
    else:
        messages.error(
            request, f"Import failed: {' '.join(str(e) for e in form.errors.get('file', []))}"
        )
    return redirect("console:workflows")


@console_view
@writes_need(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def workflow_detail(request: HttpRequest, workflow_id: uuid.UUID) -> HttpResponse:
    """The JSON editor of the draft (save: a new version when changed), the graph of the
    draft, publish, versions with restore, recent runs."""
    actor = request.actor  # type: ignore[attr-defined]
    workflow = access_workflow(actor=actor, workflow_id=workflow_id)
    form = DefinitionForm(
        posted(request),
        initial={
            "name": workflow.name,
            "description": workflow.description,
            "definition": pretty(workflow.definition),
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            before = workflow.version
            workflow = workflow_update(
                actor=actor,
                workflow=workflow,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                definition=form.cleaned_data["definition"],
            )
        except ApplicationError as exc:
            form.add_service_error(exc)
        else:
            saved = workflow.version != before
            messages.success(
                request, f"Saved as version {workflow.version}." if saved else "Saved (unchanged)."
            )
            return redirect("console:workflow", workflow_id=workflow.id)
    return render(
        request,
        "console/workflows/detail.html",
        {
            "workflow": workflow,
            "form": form,
            "layout": graph_layout(workflow.definition),
            "versions": list(workflow_versions(workflow=workflow)[:VERSION_ROWS]),
            "runs": list(run_list(actor=actor, workflow_id=workflow.id)[:5]),
        },
        status=400 if form.errors else 200,
    )


@console_view
@writes_need(Role.MEMBER)
@require_POST
def workflow_publish_view(request: HttpRequest, workflow_id: uuid.UUID) -> HttpResponse:
    """Publish a version (`version`, default: the draft)."""
    actor = request.actor  # type: ignore[attr-defined]
    workflow = access_workflow(actor=actor, workflow_id=workflow_id)
    number = request.POST.get("version", "")
    try:
        workflow = workflow_publish(
            actor=actor, workflow=workflow, number=int(number) if number.isdigit() else None
        )
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        assert workflow.published_version is not None
        messages.success(request, f"Version {workflow.published_version.number} published.")
    return redirect("console:workflow", workflow_id=workflow.id)


@console_view
@writes_need(Role.MEMBER)
@require_POST
def workflow_restore_view(request: HttpRequest, workflow_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    workflow = access_workflow(actor=actor, workflow_id=workflow_id)
    number = request.POST.get("version", "")
    if not number.isdigit():
        messages.error(request, "version: choose a version to restore.")
        return redirect("console:workflow", workflow_id=workflow.id)
    try:
        workflow = workflow_restore(actor=actor, workflow=workflow, number=int(number))
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, f"Version {number} restored as version {workflow.version}.")
    return redirect("console:workflow", workflow_id=workflow.id)


@console_view
@require_GET
def workflow_export_view(request: HttpRequest, workflow_id: uuid.UUID) -> HttpResponse:
    workflow = access_workflow(actor=request.actor, workflow_id=workflow_id)  # type: ignore[attr-defined]
    body = json.dumps(workflow_export(workflow=workflow), indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json")
    filename = f"{slugify(workflow.name) or 'workflow'}.workflow.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@console_view
@writes_need(Role.MEMBER)
@require_POST
def workflow_delete_view(request: HttpRequest, workflow_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    workflow = access_workflow(actor=actor, workflow_id=workflow_id)
    workflow_delete(actor=actor, workflow=workflow)
    messages.success(request, f"Workflow “{workflow.name}” deleted with its runs.")
    return redirect("console:workflows")


@console_view
@require_GET
def workflow_graph(request: HttpRequest, workflow_id: uuid.UUID) -> HttpResponse:
    """The draft's graph, or with `?run=<id>` that run's definition coloured by its step
    statuses (a run of another workflow is a 404)."""
    actor = request.actor  # type: ignore[attr-defined]
    workflow = access_workflow(actor=actor, workflow_id=workflow_id)
    run = None
    if request.GET.get("run"):
        run = access_run(actor=actor, run_id=request.GET["run"])
        if run.workflow_id != workflow.id:
            raise Http404("Workflow run not found.")
    context = _run_context(run) if run else {"layout": graph_layout(workflow.definition)}
    return render(
        request,
        "console/workflows/graph.html",
        {
            **context,
            "workflow": workflow,
            "runs": list(run_list(actor=actor, workflow_id=workflow.id)[:20]),
        },
    )


# --- runs -----------------------------------------------------------------------------------


@console_view
@require_GET
def workflow_runs(request: HttpRequest, workflow_id: uuid.UUID) -> HttpResponse:
    """The workflow's runs, newest first, filtered by `status`."""
    actor = request.actor  # type: ignore[attr-defined]
    workflow = access_workflow(actor=actor, workflow_id=workflow_id)
    status = request.GET.get("status", "")
    if status not in RunStatus.values:
        status = ""
    runs = list(run_list(actor=actor, workflow_id=workflow.id, status=status or None)[:RUN_ROWS])
    return render(
        request,
        "console/workflows/runs.html",
        {"workflow": workflow, "runs": runs, "status": status, "statuses": RunStatus.choices},
    )


@console_view
@writes_need(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def workflow_start(request: HttpRequest, workflow_id: uuid.UUID) -> HttpResponse:
    """A run of the published version from a form of the start step's inputs."""
    actor = request.actor  # type: ignore[attr-defined]
    workflow = access_workflow(actor=actor, workflow_id=workflow_id)
    declared = _declared_inputs(workflow)
    form = StartRunForm(posted(request), declared=declared or {})
    if request.method == "POST" and declared is None:
        form.add_error(None, "The workflow has no published version: publish it first.")
    elif request.method == "POST" and form.is_valid():
        try:
            run = run_start(actor=actor, workflow=workflow, inputs=form.inputs())
        except ApplicationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, "Run started.")
            return redirect("console:workflow_run", run_id=run.id)
    return render(
        request,
        "console/workflows/start.html",
        {"workflow": workflow, "form": form, "published": declared is not None},
        status=400 if form.errors else 200,
    )


def _run_context(run: WorkflowRun) -> dict[str, Any]:
    steps = list(run_steps(run=run).select_related("decided_by"))
    statuses = {s.step_id: s.status for s in steps}
    return {
        "run": run,
        "steps": steps,
        "layout": graph_layout(run.definition, statuses),
        "active": run.status in ACTIVE,
        "waiting": [s for s in steps if s.status == StepStatus.WAITING_FOR_APPROVAL],
    }


@console_view
@require_GET
def run_detail(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    run = access_run(actor=request.actor, run_id=run_id)  # type: ignore[attr-defined]
    return render(
        request,
        "console/workflows/run.html",
        {**_run_context(run), "workflow": run.workflow},
    )


@console_view
@require_GET
def run_live(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """The run's status, graph and steps (the fragment the run page polls every 2 s
    while the run is queued or running)."""
    run = access_run(actor=request.actor, run_id=run_id)  # type: ignore[attr-defined]
    return render(
        request,
        "console/workflows/_run_live.html",
        {**_run_context(run), "workflow": run.workflow},
    )


@console_view
@writes_need(Role.MEMBER)
@require_POST
def run_cancel_view(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    run = access_run(actor=actor, run_id=run_id)
    try:
        run_cancel(actor=actor, run=run)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, "Run cancelled.")
    return redirect("console:workflow_run", run_id=run.id)


@console_view
@writes_need(Role.MEMBER)
@require_POST
def run_rerun_view(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """A new run from where this one failed (its succeeded steps are reused)."""
    actor = request.actor  # type: ignore[attr-defined]
    run = access_run(actor=actor, run_id=run_id)
    try:
        new = run_rerun(actor=actor, run=run)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("console:workflow_run", run_id=run.id)
    messages.success(request, "Rerun started from the failed step.")
    return redirect("console:workflow_run", run_id=new.id)


@console_view
@writes_need(Role.MEMBER)
@require_POST
def run_decide_view(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Approve (`decision=approve`) or reject a waiting approval step, with a comment."""
    actor = request.actor  # type: ignore[attr-defined]
    run = access_run(actor=actor, run_id=run_id)
    decision = request.POST.get("decision")
    if decision not in ("approve", "reject"):
        messages.error(request, "decision: approve or reject.")
        return redirect("console:workflow_run", run_id=run.id)
    try:
        run_decide(
            actor=actor,
            run=run,
            approved=decision == "approve",
            step_id=request.POST.get("step_id") or None,
            comment=request.POST.get("comment", "")[:2000],
        )
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, "Approved." if decision == "approve" else "Rejected.")
    return redirect("console:workflow_run", run_id=run.id)

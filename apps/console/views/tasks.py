"""Tasks pages: scheduled tasks (create, edit, enable/disable, run now, delete, history)
and inbound triggers (create with the secret shown once, the URL to call, recent calls).
Through the tasks app's services and selectors, as the API."""

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.agents.selectors import agent_list
from apps.console.access import console_view, error_message, posted, writes_need
from apps.console.forms_tasks import TaskForm, TriggerForm, add_service_error
from apps.core.exceptions import ApplicationError
from apps.tasks.selectors import (
    access_task,
    access_trigger,
    execution_list,
    task_list,
    task_overview,
    trigger_calls,
    trigger_list,
)
from apps.tasks.services import (
    task_archive,
    task_create,
    task_run_now,
    task_set_enabled,
    task_update,
    trigger_create,
    trigger_delete,
    trigger_update,
)
from apps.users.actors import Actor
from apps.users.choices import Role

HISTORY_ROWS = 50
TRIGGER_HANDOFF_KEY = "console_new_trigger_secret"


def _agent_choices(actor: Actor) -> list[tuple[str, str]]:
    return [(str(pk), name) for pk, name in agent_list(actor=actor).values_list("id", "name")]


@console_view
@require_GET
def task_index(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    tasks = list(task_overview(actor=actor))
    return render(request, "console/tasks/index.html", {"tasks": tasks})


@console_view
@writes_need(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def task_new(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    form = TaskForm(posted(request), agents=_agent_choices(actor))
    if request.method == "POST" and form.is_valid():
        try:
            task = task_create(
                actor=actor, agent_id=form.cleaned_data["agent"], values=form.values()
            )
        except ApplicationError as exc:
            add_service_error(form, exc, TaskForm.SERVICE_FIELDS)
        else:
            messages.success(request, f"Task “{task.name}” created.")
            return redirect("console:task", task_id=task.id)
    return render(
        request,
        "console/tasks/form.html",
        {"form": form, "task": None},
        status=400 if form.errors else 200,
    )


@console_view
@require_GET
def task_detail(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    """A task and its history: executions with status, timing, conversation, error."""
    actor = request.actor  # type: ignore[attr-defined]
    task = access_task(actor=actor, task_id=task_id)
    executions = list(execution_list(task=task)[:HISTORY_ROWS])
    return render(
        request,
        "console/tasks/detail.html",
        {"task": task, "agent": task.agent, "executions": executions},
    )


@console_view
@writes_need(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def task_edit(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    task = access_task(actor=actor, task_id=task_id)
    form = TaskForm(
        posted(request), agents=_agent_choices(actor), initial=TaskForm.initial_for(task)
    )
    if request.method == "POST" and form.is_valid():
        values = {**form.values(), "agent_id": form.cleaned_data["agent"]}
        try:
            task_update(actor=actor, task=task, values=values)
        except ApplicationError as exc:
            add_service_error(form, exc, TaskForm.SERVICE_FIELDS)
        else:
            messages.success(request, "Task saved.")
            return redirect("console:task", task_id=task.id)
    return render(
        request,
        "console/tasks/form.html",
        {"form": form, "task": task},
        status=400 if form.errors else 200,
    )


@console_view
@writes_need(Role.MEMBER)
@require_POST
def task_enable(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    """Enable (`enabled=1`) or disable (`enabled=0`) a task."""
    actor = request.actor  # type: ignore[attr-defined]
    task = access_task(actor=actor, task_id=task_id)
    enabled = request.POST.get("enabled") == "1"
    try:
        task_set_enabled(actor=actor, task=task, enabled=enabled)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, "Task enabled." if enabled else "Task disabled.")
    return redirect("console:task", task_id=task.id)


@console_view
@writes_need(Role.MEMBER)
@require_POST
def task_run(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    task = access_task(actor=actor, task_id=task_id)
    try:
        task_run_now(actor=actor, task=task)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, "Execution started: it appears in the history below.")
    return redirect("console:task", task_id=task.id)


@console_view
@writes_need(Role.MEMBER)
@require_POST
def task_delete(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    task = access_task(actor=actor, task_id=task_id)
    try:
        task_archive(actor=actor, task=task)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("console:task", task_id=task.id)
    messages.success(request, f"Task “{task.name}” deleted (its history is kept).")
    return redirect("console:tasks")


# --- Triggers -------------------------------------------------------------------------------


def _trigger_form(request: HttpRequest, actor: Actor) -> TriggerForm:
    tasks = [(str(pk), name) for pk, name in task_list(actor=actor).values_list("id", "name")]
    return TriggerForm(posted(request), agents=_agent_choices(actor), tasks=tasks)


@console_view
@writes_need(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def trigger_index(request: HttpRequest) -> HttpResponse:
    """Triggers, and a new one; its secret is shown once, on its page (post/redirect/get
    through the session)."""
    actor = request.actor  # type: ignore[attr-defined]
    form = _trigger_form(request, actor)
    if request.method == "POST" and form.is_valid():
        try:
            trigger, secret = trigger_create(
                actor=actor,
                name=form.cleaned_data["name"],
                prompt_template=form.cleaned_data["prompt_template"],
                **form.target_ids(),
            )
        except ApplicationError as exc:
            add_service_error(form, exc, TriggerForm.SERVICE_FIELDS)
        else:
            request.session[TRIGGER_HANDOFF_KEY] = {"id": str(trigger.id), "secret": secret}
            return redirect("console:trigger", trigger_id=trigger.id)
    triggers = list(trigger_list(actor=actor).select_related("agent", "task"))
    return render(
        request,
        "console/triggers/index.html",
        {"form": form, "triggers": triggers},
        status=400 if form.errors else 200,
    )


@console_view
@require_GET
def trigger_detail(request: HttpRequest, trigger_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    trigger = access_trigger(actor=actor, trigger_id=trigger_id)
    new = request.session.get(TRIGGER_HANDOFF_KEY) or {}
    secret = ""
    if new.get("id") == str(trigger.id):
        secret = request.session.pop(TRIGGER_HANDOFF_KEY)["secret"]
    url = request.build_absolute_uri(f"/api/v1/triggers/{trigger.id}/fire")
    response = render(
        request,
        "console/triggers/detail.html",
        {
            "trigger": trigger,
            "secret": secret,
            "url": url,
            "calls": list(trigger_calls(trigger=trigger)),
        },
    )
    response["Cache-Control"] = "no-store"  # the secret must not stay in a cache
    return response


@console_view
@writes_need(Role.MEMBER)
@require_POST
def trigger_enable(request: HttpRequest, trigger_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    trigger = access_trigger(actor=actor, trigger_id=trigger_id)
    enabled = request.POST.get("enabled") == "1"
    try:
        trigger_update(actor=actor, trigger=trigger, values={"enabled": enabled})
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, "Trigger enabled." if enabled else "Trigger disabled.")
    return redirect("console:trigger", trigger_id=trigger.id)


@console_view
@writes_need(Role.MEMBER)
@require_POST
def trigger_delete_view(request: HttpRequest, trigger_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    trigger = access_trigger(actor=actor, trigger_id=trigger_id)
    try:
        trigger_delete(actor=actor, trigger=trigger)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("console:trigger", trigger_id=trigger.id)
    messages.success(request, f"Trigger “{trigger.name}” deleted: its URL no longer works.")
    return redirect("console:triggers")

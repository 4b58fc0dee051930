"""Webhooks pages: endpoints (create with the signing secret shown once, rotate it,
enable/disable, send a test event, delete) and their deliveries with every attempt
(redeliver). Through the tasks app's services and selectors, as the API."""

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.console.access import console_view, error_message, posted, writes_need
from apps.console.forms_tasks import WebhookEndpointForm, add_service_error
from apps.core.exceptions import ApplicationError
from apps.tasks.selectors import (
    access_webhook_delivery,
    access_webhook_endpoint,
    webhook_delivery_list,
    webhook_endpoint_list,
)
from apps.tasks.services import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
    webhook_redeliver,
    webhook_secret_rotate,
    webhook_test_send,
)
from apps.users.choices import Role

DELIVERY_ROWS = 50
WEBHOOK_HANDOFF_KEY = "console_new_webhook_secret"


def _hand_secret(request: HttpRequest, endpoint_id: uuid.UUID, secret: str) -> None:
    """The secret for the endpoint's next page only (post/redirect/get)."""
    request.session[WEBHOOK_HANDOFF_KEY] = {"id": str(endpoint_id), "secret": secret}


@console_view
@writes_need(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def webhook_index(request: HttpRequest) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    form = WebhookEndpointForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = webhook_endpoint_create(actor=actor, **form.cleaned_data)
        except ApplicationError as exc:
            add_service_error(form, exc, {})
        else:
            _hand_secret(request, endpoint.id, secret)
            return redirect("console:webhook", endpoint_id=endpoint.id)
    endpoints = list(webhook_endpoint_list(actor=actor))
    return render(
        request,
        "console/webhooks/index.html",
        {"form": form, "endpoints": endpoints},
        status=400 if form.errors else 200,
    )


@console_view
@require_GET
def webhook_detail(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
    new = request.session.get(WEBHOOK_HANDOFF_KEY) or {}
    secret = ""
    if new.get("id") == str(endpoint.id):
        secret = request.session.pop(WEBHOOK_HANDOFF_KEY)["secret"]
    deliveries = list(
        webhook_delivery_list(endpoint=endpoint).prefetch_related("log")[:DELIVERY_ROWS]
    )
    response = render(
        request,
        "console/webhooks/detail.html",
        {"endpoint": endpoint, "secret": secret, "deliveries": deliveries},
    )
    response["Cache-Control"] = "no-store"  # the secret must not stay in a cache
    return response


@console_view
@writes_need(Role.ADMIN)
@require_POST
def webhook_rotate(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
    try:
        secret = webhook_secret_rotate(actor=actor, endpoint=endpoint)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        _hand_secret(request, endpoint.id, secret)
        messages.success(
            request, "New signing secret: for 24 hours deliveries are signed with both."
        )
    return redirect("console:webhook", endpoint_id=endpoint.id)


@console_view
@writes_need(Role.ADMIN)
@require_POST
def webhook_enable(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
    enabled = request.POST.get("enabled") == "1"
    try:
        webhook_endpoint_update(actor=actor, endpoint=endpoint, values={"enabled": enabled})
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, "Endpoint enabled." if enabled else "Endpoint disabled.")
    return redirect("console:webhook", endpoint_id=endpoint.id)


@console_view
@writes_need(Role.ADMIN)
@require_POST
def webhook_test(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
    try:
        webhook_test_send(actor=actor, endpoint=endpoint)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, "Test event sent: its delivery is listed below.")
    return redirect("console:webhook", endpoint_id=endpoint.id)


@console_view
@writes_need(Role.ADMIN)
@require_POST
def webhook_delete(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
    try:
        webhook_endpoint_delete(actor=actor, endpoint=endpoint)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("console:webhook", endpoint_id=endpoint.id)
    messages.success(request, f"Endpoint {endpoint.url} deleted.")
    return redirect("console:webhooks")


@console_view
@writes_need(Role.ADMIN)
@require_POST
def webhook_redeliver_view(
    request: HttpRequest, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> HttpResponse:
    actor = request.actor  # type: ignore[attr-defined]
    endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
    delivery = access_webhook_delivery(endpoint=endpoint, delivery_id=delivery_id)
    try:
        webhook_redeliver(actor=actor, delivery=delivery)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, f"{delivery.event.type} sent again.")
    return redirect("console:webhook", endpoint_id=endpoint.id)

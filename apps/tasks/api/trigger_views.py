import time
import uuid
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from apps.conversations.choices import RunStatus
from apps.core.api.base import ApiView
from apps.core.api.ratelimit import RateState, client_address, rate_hit
from apps.core.api.schema import error_doc
from apps.core.exceptions import PayloadTooLarge, ValidationFailed
from apps.tasks.api.crud import AccessDetailView, SecretListCreateView
from apps.tasks.api.serializers import (
    TriggerCreatedSerializer,
    TriggerFiredSerializer,
    TriggerSerializer,
    TriggerWriteSerializer,
)
from apps.tasks.models import InboundTrigger
from apps.tasks.selectors import access_trigger, trigger_list
from apps.tasks.services import (
    run_wait,
    trigger_authenticate,
    trigger_create,
    trigger_delete,
    trigger_fire,
    trigger_fire_workflow,
    trigger_update,
)
from apps.users.actors import Actor

TAGS = ["triggers"]


@extend_schema_view(
    get=extend_schema(
        operation_id="triggers_list", responses=TriggerSerializer(many=True), tags=TAGS
    ),
    post=extend_schema(
        operation_id="triggers_create",
        request=TriggerWriteSerializer,
        responses={201: TriggerCreatedSerializer},
        tags=TAGS,
        description="The response holds the trigger's secret: it is shown only this once.",
    ),
)
class TriggerListView(SecretListCreateView):
    read_serializer = TriggerSerializer
    write_serializer = TriggerWriteSerializer

    def rows(self, actor: Actor) -> QuerySet[InboundTrigger]:
        return trigger_list(actor=actor)

    def create(self, actor: Actor, values: dict[str, Any]) -> tuple[InboundTrigger, str]:
        return trigger_create(
            actor=actor,
            name=values["name"],
            agent_id=values.get("agent_id"),
            task_id=values.get("task_id"),
            workflow_id=values.get("workflow_id"),
            prompt_template=values.get("prompt_template", ""),
        )


@extend_schema_view(
    get=extend_schema(operation_id="triggers_get", responses=TriggerSerializer, tags=TAGS),
    patch=extend_schema(
        operation_id="triggers_update",
        request=TriggerWriteSerializer(partial=True),
        responses=TriggerSerializer,
        tags=TAGS,
    ),
    delete=extend_schema(operation_id="triggers_delete", responses={204: None}, tags=TAGS),
)
class TriggerDetailView(AccessDetailView):
    lookup = "trigger_id"
    read_serializer = TriggerSerializer
    write_serializer = TriggerWriteSerializer
    updatable = frozenset({"name", "prompt_template", "enabled"})

    def fetch(self, actor: Actor, pk: Any) -> InboundTrigger:
        return access_trigger(actor=actor, trigger_id=pk)

    def update(self, actor: Actor, row: InboundTrigger, values: dict[str, Any]) -> InboundTrigger:
        return trigger_update(actor=actor, trigger=row, values=values)

    def destroy(self, actor: Actor, row: InboundTrigger) -> None:
        trigger_delete(actor=actor, trigger=row)


class TriggerRateThrottle(BaseThrottle):
    """Calls per trigger (RATE_LIMITS["trigger"]), shared by every process (the cache)."""

    state: RateState | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        self.state = rate_hit(kind="trigger", ident=str(view.kwargs.get("trigger_id")))
        request._request.rate_state = self.state  # type: ignore[attr-defined]
        return not self.state.exceeded

    def wait(self) -> float | None:
        if self.state is None:
            return None
        return max(self.state.reset - time.time(), 1.0)


class TriggerFireView(ApiView):
    """The trigger's URL: called by another system with the trigger's secret."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [TriggerRateThrottle]

    @extend_schema(
        operation_id="triggers_fire",
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter(
                "wait",
                OpenApiTypes.INT,
                description="Seconds to wait for the answer (at most TRIGGER_MAX_WAIT_SECONDS).",
            )
        ],
        responses={
            200: TriggerFiredSerializer,
            202: TriggerFiredSerializer,
            401: error_doc("Missing or wrong secret, or a bad signature (`unauthorized`)."),
            404: error_doc("No such trigger (`trigger_not_found`)."),
            409: error_doc("The trigger is disabled or its owner lost access."),
            413: error_doc("The body is too large (`payload_too_large`)."),
        },
        tags=TAGS,
        auth=[],
        description="Start the trigger's run. Authenticate with `Authorization: Bearer "
        "<secret>` or Standard Webhooks headers signed with the secret. 202 with the run "
        "(or 200 with its answer when `wait` was given and it finished in time).",
    )
    def post(self, request: Request, trigger_id: uuid.UUID) -> Response:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > settings.TRIGGER_MAX_BODY_BYTES:
            # Refused before reading the body (still authenticated first below when small).
            raise PayloadTooLarge(
                f"The body is larger than {settings.TRIGGER_MAX_BODY_BYTES} bytes.", field="body"
            )
        try:
            wait = float(request.query_params.get("wait", "0") or 0)
        except ValueError as exc:
            raise ValidationFailed("wait is a number of seconds.", field="wait") from exc
        wait = min(max(wait, 0.0), float(settings.TRIGGER_MAX_WAIT_SECONDS))
        body = request.body
        ip = client_address(request._request)
        trigger = trigger_authenticate(
            trigger_id=trigger_id, body=body, headers=dict(request.headers), ip=ip
        )
        if trigger.workflow_id is not None:
            workflow_run = trigger_fire_workflow(trigger=trigger, body=body, ip=ip)
            workflow_run.refresh_from_db()
            fired = {
                "run_id": None,
                "conversation_id": None,
                "workflow_run_id": workflow_run.id,
                "status": workflow_run.status,
                "status_url": f"/api/v1/workflows/runs/{workflow_run.id}",
                "answer": None,
            }
            return Response(TriggerFiredSerializer(fired).data, status=202)
        run = trigger_fire(trigger=trigger, body=body, ip=ip)
        if wait:
            run = run_wait(run=run, seconds=wait)
        done = run.status == RunStatus.COMPLETED
        answer = None
        if done and run.answer_message_id is not None:
            answer = run.answer_message.text if run.answer_message is not None else None
        data = {
            "run_id": run.id,
            "conversation_id": run.conversation_id,
            "status": run.status,
            "status_url": f"/api/v1/runs/{run.id}",
            "answer": answer,
        }
        return Response(TriggerFiredSerializer(data).data, status=200 if wait and done else 202)

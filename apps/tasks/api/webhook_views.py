import uuid
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView
from apps.tasks.api.crud import AccessDetailView, SecretListCreateView
from apps.tasks.api.serializers import (
    SecretRotateSerializer,
    SecretSerializer,
    WebhookDeliveryDetailSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWriteSerializer,
)
from apps.tasks.models import WebhookEndpoint
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
from apps.users.actors import Actor, get_actor

TAGS = ["webhooks"]


@extend_schema_view(
    get=extend_schema(
        operation_id="webhooks_endpoints_list",
        responses=WebhookEndpointSerializer(many=True),
        tags=TAGS,
    ),
    post=extend_schema(
        operation_id="webhooks_endpoints_create",
        request=WebhookEndpointWriteSerializer,
        responses={201: WebhookEndpointCreatedSerializer},
        tags=TAGS,
        description="The response holds the signing secret: it is shown only this once.",
    ),
)
class EndpointListView(SecretListCreateView):
    read_serializer = WebhookEndpointSerializer
    write_serializer = WebhookEndpointWriteSerializer

    def rows(self, actor: Actor) -> QuerySet[WebhookEndpoint]:
        return webhook_endpoint_list(actor=actor)

    def create(self, actor: Actor, values: dict[str, Any]) -> tuple[WebhookEndpoint, str]:
        return webhook_endpoint_create(
            actor=actor,
            url=values["url"],
            event_types=values["event_types"],
            description=values.get("description", ""),
        )


@extend_schema_view(
    get=extend_schema(
        operation_id="webhooks_endpoints_get", responses=WebhookEndpointSerializer, tags=TAGS
    ),
    patch=extend_schema(
        operation_id="webhooks_endpoints_update",
        request=WebhookEndpointWriteSerializer(partial=True),
        responses=WebhookEndpointSerializer,
        tags=TAGS,
    ),
    delete=extend_schema(
        operation_id="webhooks_endpoints_delete", responses={204: None}, tags=TAGS
    ),
)
class EndpointDetailView(AccessDetailView):
    lookup = "endpoint_id"
    read_serializer = WebhookEndpointSerializer
    write_serializer = WebhookEndpointWriteSerializer

    def fetch(self, actor: Actor, pk: Any) -> WebhookEndpoint:
        return access_webhook_endpoint(actor=actor, endpoint_id=pk)

    def update(self, actor: Actor, row: WebhookEndpoint, values: dict[str, Any]) -> WebhookEndpoint:
        return webhook_endpoint_update(actor=actor, endpoint=row, values=values)

    def destroy(self, actor: Actor, row: WebhookEndpoint) -> None:
        webhook_endpoint_delete(actor=actor, endpoint=row)


class EndpointRotateSecretView(ApiView):
    scope_area = "tasks"

    @extend_schema(
        operation_id="webhooks_endpoints_rotate_secret",
        request=SecretRotateSerializer,
        responses=SecretSerializer,
        tags=TAGS,
    )
    def post(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
        serializer = SecretRotateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        secret = webhook_secret_rotate(
            actor=actor,
            endpoint=endpoint,
            overlap_seconds=serializer.validated_data["overlap_seconds"],
        )
        return Response(
            {"secret": secret, "previous_secret_expires_at": endpoint.previous_secret_expires_at}
        )


class EndpointTestView(ApiView):
    scope_area = "tasks"

    @extend_schema(
        operation_id="webhooks_endpoints_test",
        request=None,
        responses={202: WebhookDeliverySerializer},
        tags=TAGS,
        description="Send a `webhook.test` event to this endpoint.",
    )
    def post(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
        delivery = webhook_test_send(actor=actor, endpoint=endpoint)
        delivery.refresh_from_db()
        return Response(WebhookDeliverySerializer(delivery).data, status=202)


class DeliveryListView(ApiView):
    scope_area = "tasks"

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        responses=WebhookDeliverySerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        endpoint = access_webhook_endpoint(actor=get_actor(request), endpoint_id=endpoint_id)
        return self.paginate(
            request,
            webhook_delivery_list(endpoint=endpoint),
            lambda p: WebhookDeliverySerializer(p, many=True).data,
        )


class DeliveryDetailView(ApiView):
    scope_area = "tasks"

    @extend_schema(
        operation_id="webhooks_deliveries_get",
        responses=WebhookDeliveryDetailSerializer,
        tags=TAGS,
    )
    def get(self, request: Request, endpoint_id: uuid.UUID, delivery_id: uuid.UUID) -> Response:
        endpoint = access_webhook_endpoint(actor=get_actor(request), endpoint_id=endpoint_id)
        delivery = access_webhook_delivery(endpoint=endpoint, delivery_id=delivery_id)
        return Response(WebhookDeliveryDetailSerializer(delivery).data)


class DeliveryRedeliverView(ApiView):
    scope_area = "tasks"

    @extend_schema(
        operation_id="webhooks_deliveries_redeliver",
        request=None,
        responses={202: WebhookDeliverySerializer},
        tags=TAGS,
        description="Send the delivery's event again (same `webhook-id`).",
    )
    def post(self, request: Request, endpoint_id: uuid.UUID, delivery_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
        delivery = access_webhook_delivery(endpoint=endpoint, delivery_id=delivery_id)
        again = webhook_redeliver(actor=actor, delivery=delivery)
        again.refresh_from_db()
        return Response(WebhookDeliverySerializer(again).data, status=202)

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView
from apps.tasks.api.serializers import (
    SecretRotateSerializer,
    SecretSerializer,
    WebhookDeliveryDetailSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWriteSerializer,
)
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
from apps.users.actors import get_actor

TAGS = ["webhooks"]


class EndpointListView(ApiView):
    scope_area = "tasks"

    @extend_schema(
        operation_id="webhooks_endpoints_list",
        responses=WebhookEndpointSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        qs = webhook_endpoint_list(actor=get_actor(request))
        return self.paginate(request, qs, lambda p: WebhookEndpointSerializer(p, many=True).data)

    @extend_schema(
        operation_id="webhooks_endpoints_create",
        request=WebhookEndpointWriteSerializer,
        responses={201: WebhookEndpointCreatedSerializer},
        tags=TAGS,
        description="The response holds the signing secret: it is shown only this once.",
    )
    def post(self, request: Request) -> Response:
        serializer = WebhookEndpointWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        endpoint, secret = webhook_endpoint_create(
            actor=get_actor(request),
            url=values["url"],
            event_types=values["event_types"],
            description=values.get("description", ""),
        )
        data = {**WebhookEndpointSerializer(endpoint).data, "secret": secret}
        return Response(data, status=201)


class EndpointDetailView(ApiView):
    scope_area = "tasks"

    @extend_schema(
        operation_id="webhooks_endpoints_get", responses=WebhookEndpointSerializer, tags=TAGS
    )
    def get(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        endpoint = access_webhook_endpoint(actor=get_actor(request), endpoint_id=endpoint_id)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhooks_endpoints_update",
        request=WebhookEndpointWriteSerializer(partial=True),
        responses=WebhookEndpointSerializer,
        tags=TAGS,
    )
    def patch(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
        serializer = WebhookEndpointWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(
            actor=actor, endpoint=endpoint, values=dict(serializer.validated_data)
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(operation_id="webhooks_endpoints_delete", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        endpoint = access_webhook_endpoint(actor=actor, endpoint_id=endpoint_id)
        webhook_endpoint_delete(actor=actor, endpoint=endpoint)
        return Response(status=204)


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

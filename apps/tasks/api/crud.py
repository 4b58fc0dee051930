"""The CRUD of the app's secret-holding resources (webhook endpoints, inbound triggers),
written once. A subclass names its serializers and the selector or service each verb
calls; its OpenAPI description is attached with `extend_schema_view`."""

from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from apps.core.api.base import ApiView
from apps.users.actors import Actor, get_actor


class SecretListCreateView(ApiView):
    """GET: the actor's workspace's rows, paginated. POST: create one; 201 with the row
    and its secret (shown only this once)."""

    scope_area = "tasks"
    read_serializer: ClassVar[type[Serializer[Any]]]
    write_serializer: ClassVar[type[Serializer[Any]]]

    def rows(self, actor: Actor) -> QuerySet[Any]:
        raise NotImplementedError

    def create(self, actor: Actor, values: dict[str, Any]) -> tuple[Model, str]:
        """Call the create service with the validated `values`: (row, secret)."""
        raise NotImplementedError

    def get(self, request: Request) -> Response:
        rows = self.rows(get_actor(request))
        return self.paginate(request, rows, lambda page: self.read_serializer(page, many=True).data)

    def post(self, request: Request) -> Response:
        serializer = self.write_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row, secret = self.create(get_actor(request), dict(serializer.validated_data))
        return Response({**self.read_serializer(row).data, "secret": secret}, status=201)


class AccessDetailView(ApiView):
    """GET, PATCH and DELETE of one row reached through its `access_*` selector (another
    workspace's row: 404). PATCH validates with the write serializer (partial) and passes
    the `updatable` fields that were sent to the update service."""

    scope_area = "tasks"
    lookup: ClassVar[str]  # the URL's id keyword
    read_serializer: ClassVar[type[Serializer[Any]]]
    write_serializer: ClassVar[type[Serializer[Any]]]
    updatable: ClassVar[frozenset[str] | None] = None  # None: every validated field

    def fetch(self, actor: Actor, pk: Any) -> Model:
        raise NotImplementedError

    def update(self, actor: Actor, row: Any, values: dict[str, Any]) -> Model:
        raise NotImplementedError

    def destroy(self, actor: Actor, row: Any) -> None:
        raise NotImplementedError

    def get(self, request: Request, **kwargs: Any) -> Response:
        row = self.fetch(get_actor(request), kwargs[self.lookup])
        return Response(self.read_serializer(row).data)

    def patch(self, request: Request, **kwargs: Any) -> Response:
        actor = get_actor(request)
        row = self.fetch(actor, kwargs[self.lookup])
        serializer = self.write_serializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        values = {
            k: v
            for k, v in serializer.validated_data.items()
            if self.updatable is None or k in self.updatable
        }
        return Response(self.read_serializer(self.update(actor, row, values)).data)

    def delete(self, request: Request, **kwargs: Any) -> Response:
        actor = get_actor(request)
        self.destroy(actor, self.fetch(actor, kwargs[self.lookup]))
        return Response(status=204)

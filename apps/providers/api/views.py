import uuid
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView
from apps.core.api.downloads import csv_download
from apps.providers.api.serializers import (
    CapabilitiesSerializer,
    DefaultModelSerializer,
    DefaultModelsWriteSerializer,
    ModelDeleteQuerySerializer,
    ModelListQuerySerializer,
    ModelWriteSerializer,
    ProviderDeleteQuerySerializer,
    ProviderKeySerializer,
    ProviderKeyWriteSerializer,
    ProviderModelSerializer,
    ProviderSerializer,
    ProviderWriteSerializer,
    UpstreamModelsSerializer,
    UsageQuerySerializer,
    UsageSummarySerializer,
    VerifyResultSerializer,
    VerifySerializer,
)
from apps.providers.choices import ModelKind
from apps.providers.selectors import (
    access_model,
    access_provider,
    access_provider_key,
    access_workspace_provider,
    default_models,
    model_list,
    provider_list,
    usage_csv_rows,
    usage_records,
    usage_summary,
)
from apps.providers.services import (
    default_model_set,
    model_create,
    model_delete,
    model_update,
    provider_create,
    provider_delete,
    provider_key_add,
    provider_key_remove,
    provider_probe_capabilities,
    provider_update,
    provider_upstream_models,
    provider_verify,
    usage_context,
)
from apps.users.actors import get_actor, request_user
from apps.users.choices import Role

TAGS = ["providers"]
USAGE_TAGS = ["usage"]


def _provider_data(provider: Any) -> Any:
    return ProviderSerializer(provider).data


class ProviderListView(ApiView):
    scope_area = "providers"

    @extend_schema(
        operation_id="providers_list",
        summary="The workspace's providers and the platform's",
        responses=ProviderSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        return self.paginate(
            request,
            provider_list(actor=get_actor(request)),
            lambda page: ProviderSerializer(page, many=True).data,
        )

    @extend_schema(
        operation_id="providers_create",
        summary="Add a provider to the workspace (admin)",
        request=ProviderWriteSerializer,
        responses={201: ProviderSerializer},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        actor = get_actor(request)
        actor.require_role(Role.ADMIN)
        serializer = ProviderWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        provider = provider_create(
            workspace=actor.workspace, actor=request_user(request), **serializer.validated_data
        )
        return Response(_provider_data(provider), status=201)


class ProviderDetailView(ApiView):
    scope_area = "providers"

    @extend_schema(operation_id="providers_get", responses=ProviderSerializer, tags=TAGS)
    def get(self, request: Request, provider_id: uuid.UUID) -> Response:
        provider = access_provider(actor=get_actor(request), provider_id=provider_id)
        return Response(_provider_data(provider))

    @extend_schema(
        operation_id="providers_update",
        request=ProviderWriteSerializer(partial=True),
        responses=ProviderSerializer,
        tags=TAGS,
    )
    def patch(self, request: Request, provider_id: uuid.UUID) -> Response:
        provider = access_workspace_provider(actor=get_actor(request), provider_id=provider_id)
        serializer = ProviderWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        provider = provider_update(provider=provider, **serializer.validated_data)
        return Response(
            _provider_data(access_provider(actor=get_actor(request), provider_id=provider.pk))
        )

    @extend_schema(
        operation_id="providers_delete",
        summary="Delete a provider (refused while its models are used, unless reassigned)",
        parameters=[ProviderDeleteQuerySerializer],
        responses={204: None},
        tags=TAGS,
    )
    def delete(self, request: Request, provider_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        provider = access_workspace_provider(actor=actor, provider_id=provider_id)
        query = ProviderDeleteQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        chat_to = query.validated_data.get("reassign_chat_to")
        embed_to = query.validated_data.get("reassign_embedding_to")
        rerank_to = query.validated_data.get("reassign_rerank_to")
        provider_delete(
            provider=provider,
            reassign_chat_to=access_model(actor=actor, model_id=chat_to) if chat_to else None,
            reassign_embedding_to=(
                access_model(actor=actor, model_id=embed_to) if embed_to else None
            ),
            reassign_rerank_to=(
                access_model(actor=actor, model_id=rerank_to) if rerank_to else None
            ),
        )
        return Response(status=204)


class ProviderKeyListView(ApiView):
    scope_area = "providers"

    @extend_schema(
        operation_id="provider_keys_add",
        summary="Add an API key (used in rotation with the others)",
        request=ProviderKeyWriteSerializer,
        responses={201: ProviderKeySerializer},
        tags=TAGS,
    )
    def post(self, request: Request, provider_id: uuid.UUID) -> Response:
        provider = access_workspace_provider(actor=get_actor(request), provider_id=provider_id)
        serializer = ProviderKeyWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = provider_key_add(provider=provider, **serializer.validated_data)
        return Response(ProviderKeySerializer(key).data, status=201)


class ProviderKeyDetailView(ApiView):
    scope_area = "providers"

    @extend_schema(operation_id="provider_keys_remove", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, provider_id: uuid.UUID, key_id: uuid.UUID) -> Response:
        provider = access_workspace_provider(actor=get_actor(request), provider_id=provider_id)
        provider_key_remove(key=access_provider_key(provider=provider, key_id=key_id))
        return Response(status=204)


class ProviderVerifyView(ApiView):
    scope_area = "providers"

    @extend_schema(
        operation_id="providers_verify",
        summary="One real round trip: latency, or why it failed (bad key, unreachable, ...)",
        request=VerifySerializer,
        responses=VerifyResultSerializer,
        tags=TAGS,
    )
    def post(self, request: Request, provider_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        provider = access_workspace_provider(actor=actor, provider_id=provider_id)
        serializer = VerifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model_id = serializer.validated_data.get("model_id")
        model = (
            access_model(actor=actor, model_id=model_id, provider=provider) if model_id else None
        )
        result = provider_verify(provider=provider, model=model, usage=usage_context(actor=actor))
        return Response(VerifyResultSerializer(result).data)


class ProviderUpstreamModelsView(ApiView):
    scope_area = "providers"
    calls_upstream = True

    @extend_schema(
        operation_id="providers_upstream_models",
        summary="The models the upstream lists",
        responses=UpstreamModelsSerializer,
        tags=TAGS,
    )
    def get(self, request: Request, provider_id: uuid.UUID) -> Response:
        provider = access_workspace_provider(actor=get_actor(request), provider_id=provider_id)
        return Response({"models": provider_upstream_models(provider=provider)})


class ProviderModelListView(ApiView):
    scope_area = "providers"

    @extend_schema(
        operation_id="provider_models_list",
        responses=ProviderModelSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request, provider_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        provider = access_provider(actor=actor, provider_id=provider_id)
        return self.paginate(
            request,
            model_list(actor=actor).filter(provider=provider),
            lambda page: ProviderModelSerializer(page, many=True).data,
        )

    @extend_schema(
        operation_id="provider_models_create",
        request=ModelWriteSerializer,
        responses={201: ProviderModelSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, provider_id: uuid.UUID) -> Response:
        provider = access_workspace_provider(actor=get_actor(request), provider_id=provider_id)
        serializer = ModelWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = model_create(provider=provider, **serializer.validated_data)
        return Response(ProviderModelSerializer(model).data, status=201)


class ProviderModelDetailView(ApiView):
    scope_area = "providers"

    @extend_schema(operation_id="provider_models_get", responses=ProviderModelSerializer, tags=TAGS)
    def get(self, request: Request, provider_id: uuid.UUID, model_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        provider = access_provider(actor=actor, provider_id=provider_id)
        model = access_model(actor=actor, model_id=model_id, provider=provider)
        return Response(ProviderModelSerializer(model).data)

    @extend_schema(
        operation_id="provider_models_update",
        request=ModelWriteSerializer(partial=True),
        responses=ProviderModelSerializer,
        tags=TAGS,
    )
    def patch(self, request: Request, provider_id: uuid.UUID, model_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        provider = access_workspace_provider(actor=actor, provider_id=provider_id)
        model = access_model(actor=actor, model_id=model_id, provider=provider)
        serializer = ModelWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        model = model_update(model=model, **serializer.validated_data)
        return Response(ProviderModelSerializer(model).data)

    @extend_schema(
        operation_id="provider_models_delete",
        parameters=[ModelDeleteQuerySerializer],
        responses={204: None},
        tags=TAGS,
    )
    def delete(self, request: Request, provider_id: uuid.UUID, model_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        provider = access_workspace_provider(actor=actor, provider_id=provider_id)
        model = access_model(actor=actor, model_id=model_id, provider=provider)
        query = ModelDeleteQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        target = query.validated_data.get("reassign_to")
        model_delete(
            model=model,
            reassign_to=access_model(actor=actor, model_id=target) if target else None,
        )
        return Response(status=204)


class ProviderModelProbeView(ApiView):
    scope_area = "providers"

    @extend_schema(
        operation_id="provider_models_probe",
        summary="Probe tool calling, vision and JSON mode; saves the capabilities found",
        request=None,
        responses=CapabilitiesSerializer,
        tags=TAGS,
    )
    def post(self, request: Request, provider_id: uuid.UUID, model_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        provider = access_workspace_provider(actor=actor, provider_id=provider_id)
        model = access_model(actor=actor, model_id=model_id, provider=provider)
        found = provider_probe_capabilities(model=model, usage=usage_context(actor=actor))
        return Response({**found, "model": ProviderModelSerializer(model).data})


class ModelListView(ApiView):
    scope_area = "providers"

    @extend_schema(
        operation_id="models_list",
        summary="Every model the workspace may use (its providers' and the platform's)",
        parameters=[ModelListQuerySerializer],
        responses=ProviderModelSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        query = ModelListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return self.paginate(
            request,
            model_list(actor=get_actor(request), kind=query.validated_data.get("kind")),
            lambda page: ProviderModelSerializer(page, many=True).data,
        )


class DefaultModelsView(ApiView):
    scope_area = "providers"

    def _render(self, request: Request) -> Response:
        rows = default_models(actor=get_actor(request))
        return Response(
            DefaultModelSerializer(
                [{"kind": r.kind, "source": r.source, "model": r.model} for r in rows], many=True
            ).data
        )

    @extend_schema(
        operation_id="model_defaults_get",
        summary="The default chat, embedding and rerank models (the workspace's, else the "
        "platform's)",
        responses=DefaultModelSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        return self._render(request)

    @extend_schema(
        operation_id="model_defaults_update",
        request=DefaultModelsWriteSerializer,
        responses=DefaultModelSerializer(many=True),
        tags=TAGS,
    )
    def patch(self, request: Request) -> Response:
        actor = get_actor(request)
        actor.require_role(Role.ADMIN)
        serializer = DefaultModelsWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        for kind in ModelKind.values:
            field = f"{kind}_model_id"
            if field not in serializer.validated_data:
                continue
            model_id = serializer.validated_data[field]
            model = access_model(actor=actor, model_id=model_id) if model_id else None
            default_model_set(workspace=actor.workspace, kind=kind, model=model)
        return self._render(request)


class UsageView(ApiView):
    scope_area = "usage"

    @extend_schema(
        operation_id="usage_summary",
        summary="Totals, per-day series and groups (admins: everyone; others: their own)",
        parameters=[UsageQuerySerializer],
        responses=UsageSummarySerializer,
        tags=USAGE_TAGS,
    )
    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = dict(query.validated_data)
        group_by = params.pop("group_by", None)
        records = usage_records(actor=get_actor(request), **params)
        return Response(
            UsageSummarySerializer(usage_summary(records=records, group_by=group_by)).data
        )


class UsageExportView(ApiView):
    scope_area = "usage"

    @extend_schema(
        operation_id="usage_export",
        summary="Every call of the period as CSV",
        parameters=[UsageQuerySerializer],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR)},
        tags=USAGE_TAGS,
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = dict(query.validated_data)
        params.pop("group_by", None)
        records = usage_records(actor=get_actor(request), **params)
        rows = usage_csv_rows(records=records)
        return csv_download(request._request, rows, filename="usage.csv")

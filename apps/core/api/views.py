from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView
from apps.core.api.serializers import (
    HealthSerializer,
    SystemInfoSerializer,
    SystemSettingsSerializer,
)
from apps.core.selectors import health_check, system_settings_get
from apps.core.services import system_settings_update


def active(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches nothing else."""
    return HttpResponse("ok", content_type="text/plain")


class HealthView(ApiView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes: list[Any] = []

    @extend_schema(
        operation_id="health",
        summary="Per-component health (503 when one is down)",
        responses={200: HealthSerializer, 503: HealthSerializer},
        tags=["system"],
    )
    def get(self, request: Request) -> Response:
        components = health_check()
        healthy = all(c.ok for c in components)
        data = {
            "status": "ok" if healthy else "degraded",
            "components": [c.__dict__ for c in components],
        }
        return Response(data, status=200 if healthy else 503)


class SystemInfoView(ApiView):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="system_info", responses=SystemInfoSerializer, tags=["system"])
    def get(self, request: Request) -> Response:
        data = {
            "version": settings.PLATFORM_VERSION,
            "features": settings.PLATFORM_FEATURES,
            "allow_registration": system_settings_get().allow_registration,
            "database": "postgresql" if settings.DATABASE_IS_POSTGRES else "sqlite",
        }
        return Response(SystemInfoSerializer(data).data)


class SystemSettingsView(ApiView):
    """Runtime settings; platform administrators only."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="system_settings_get", responses=SystemSettingsSerializer, tags=["system"]
    )
    def get(self, request: Request) -> Response:
        return Response(SystemSettingsSerializer(system_settings_get()).data)

    @extend_schema(
        operation_id="system_settings_update",
        request=SystemSettingsSerializer,
        responses=SystemSettingsSerializer,
        tags=["system"],
    )
    def patch(self, request: Request) -> Response:
        serializer = SystemSettingsSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        updated = system_settings_update(updated_by=request.user, **serializer.validated_data)
        return Response(SystemSettingsSerializer(updated).data)

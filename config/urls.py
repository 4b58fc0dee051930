from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.conversations.api.mcp import McpView
from apps.core.api.views import HealthView, active

handler400 = "apps.core.handlers.bad_request"
handler403 = "apps.core.handlers.permission_denied"
handler404 = "apps.core.handlers.not_found"
handler500 = "apps.core.handlers.server_error"

api_v1: list[URLPattern | URLResolver] = [
    path("", include("apps.core.api.urls")),
    path("", include("apps.users.api.urls")),
    path("", include("apps.providers.api.urls")),
    path("", include("apps.skills.api.urls")),
    path("", include("apps.knowledge.api.urls")),
    path("", include("apps.files.api.urls")),
    path("", include("apps.agents.api.urls")),
    path("", include("apps.conversations.api.urls")),
    path("", include("apps.workflows.api.urls")),
    path("", include("apps.tasks.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("active", active, name="active"),
    path("api/health", HealthView.as_view(), name="health"),
    path("api/v1/", include(api_v1)),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("apps.users.urls")),
    path("", include("apps.users.urls_headless")),
    path("mcp", McpView.as_view(), name="mcp-endpoint"),
    path("", include("apps.conversations.api.a2a_urls")),
    path("", include("apps.console.urls")),
]

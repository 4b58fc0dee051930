"""The operator's admin under django-unfold: its site (apps in the platform's order, under
names an operator reads), the sidebar (one group per app) and the dashboard on the index
(templates/admin/index.html). The site is the default one through
`apps.console.admin_apps.OperatorAdminConfig`; the sidebar and dashboard are wired in by the
`UNFOLD` setting."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from unfold.sites import UnfoldAdminSite

from apps.console.dashboard import operator_dashboard

# The platform's apps first, in the order of the architecture, then the libraries'.
APP_ORDER = [
    "users",
    "providers",
    "skills",
    "knowledge",
    "files",
    "agents",
    "conversations",
    "tasks",
    "core",
    "account",
    "socialaccount",
    "mfa",
    "oauth2_provider",
    "django_celery_beat",
]

# Names the libraries chose that an operator reads better otherwise (their models'
# verbose names live in their own migrations, so they are renamed here, in the sidebar).
APP_TITLES = {
    "account": "Email addresses",
    "socialaccount": "Social sign-in",
    "mfa": "Multi-factor authentication",
    "oauth2_provider": "OAuth2 applications and tokens",
    "django_celery_beat": "Periodic tasks (Celery beat)",
}
MODEL_TITLES = {
    ("oauth2_provider", "IDToken"): "ID tokens",
}

ICONS = {
    "User": "person",
    "Workspace": "workspaces",
    "Membership": "group",
    "WorkspaceSecurity": "security",
    "ApiKey": "key",
    "AuditEvent": "policy",
    "OAuthClient": "apps",
    "Provider": "cloud",
    "ProviderModel": "neurology",
    "DefaultModel": "star",
    "UsageRecord": "monitoring",
    "StdioCommand": "terminal",
    "McpServer": "hub",
    "Tool": "build",
    "OpenApiSource": "api",
    "Skill": "school",
    "KnowledgeBase": "library_books",
    "Document": "description",
    "Chunk": "segment",
    "UploadBatch": "upload",
    "File": "folder",
    "Agent": "smart_toy",
    "AgentVersion": "history",
    "AgentJob": "work",
    "Conversation": "forum",
    "Run": "play_circle",
    "Message": "chat",
    "ShareLink": "share",
    "ScheduledTask": "schedule",
    "TaskExecution": "event_repeat",
    "WebhookEndpoint": "webhook",
    "WebhookDelivery": "outbox",
    "InboundTrigger": "call_received",
    "SystemSettings": "settings",
}


class OperatorAdminSite(UnfoldAdminSite):
    site_header = "Agent Platform admin"
    site_title = "Agent Platform admin"
    index_title = "Operations"
    site_url = "/"

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        """The apps in the platform's order, the libraries' under clearer names."""
        apps = super().get_app_list(request, app_label)
        rank = {label: i for i, label in enumerate(APP_ORDER)}
        apps.sort(key=lambda a: (rank.get(a["app_label"], len(rank)), a["name"]))
        for app in apps:
            app["name"] = APP_TITLES.get(app["app_label"], app["name"])
            for model in app["models"]:
                model["name"] = MODEL_TITLES.get(
                    (app["app_label"], model["object_name"]), model["name"]
                )
        return apps


def sidebar_navigation(request: HttpRequest) -> list[dict[str, Any]]:
    """One collapsible group per app the operator may see, its models as items."""
    groups = []
    for app in admin.site.get_app_list(request):
        items = [
            {
                "title": m["name"],
                "icon": ICONS.get(m["object_name"], "table_rows"),
                "link": m["admin_url"],
            }
            for m in app["models"]
            if m.get("admin_url")
        ]
        if items:
            groups.append(
                {
                    "title": app["name"],
                    "collapsible": True,
                    "items": items,
                }
            )
    return groups


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """The operator dashboard's figures for the index page."""
    context["ops"] = operator_dashboard()
    return context

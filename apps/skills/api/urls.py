from django.urls import path

from apps.skills.api import views

urlpatterns = [
    path("tools", views.ToolListView.as_view(), name="tool-list"),
    path("tools/openapi-sources", views.OpenApiSourceListView.as_view(), name="openapi-list"),
    path(
        "tools/openapi-sources/<uuid:openapi_source_id>",
        views.OpenApiSourceDetailView.as_view(),
        name="openapi-detail",
    ),
    path("tools/<uuid:tool_id>", views.ToolDetailView.as_view(), name="tool-detail"),
    path("tools/<uuid:tool_id>/exec", views.ToolExecView.as_view(), name="tool-exec"),
    path("mcp/commands", views.StdioCommandListView.as_view(), name="mcp-command-list"),
    path("mcp/servers", views.McpServerListView.as_view(), name="mcp-server-list"),
    path(
        "mcp/servers/<uuid:mcp_server_id>",
        views.McpServerDetailView.as_view(),
        name="mcp-server-detail",
    ),
    path(
        "mcp/servers/<uuid:mcp_server_id>/refresh",
        views.McpServerRefreshView.as_view(),
        name="mcp-server-refresh",
    ),
    path(
        "mcp/servers/<uuid:mcp_server_id>/oauth/start",
        views.McpOAuthStartView.as_view(),
        name="mcp-server-oauth-start",
    ),
    path("mcp/oauth/callback", views.McpOAuthCallbackView.as_view(), name="mcp-oauth-callback"),
    path("remote-agents", views.RemoteAgentListView.as_view(), name="remote-agent-list"),
    path(
        "remote-agents/<uuid:remote_agent_id>",
        views.RemoteAgentDetailView.as_view(),
        name="remote-agent-detail",
    ),
    path(
        "remote-agents/<uuid:remote_agent_id>/refresh",
        views.RemoteAgentRefreshView.as_view(),
        name="remote-agent-refresh",
    ),
    path("skills", views.SkillListView.as_view(), name="skill-list"),
    path("skills/upload", views.SkillUploadView.as_view(), name="skill-upload"),
    path("skills/import", views.SkillImportView.as_view(), name="skill-import"),
    path("skills/<uuid:skill_id>", views.SkillDetailView.as_view(), name="skill-detail"),
    path(
        "skills/<uuid:skill_id>/versions",
        views.SkillVersionListView.as_view(),
        name="skill-version-list",
    ),
    path(
        "skills/<uuid:skill_id>/versions/<id:number>",
        views.SkillVersionDetailView.as_view(),
        name="skill-version-detail",
    ),
]

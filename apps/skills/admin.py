from django.contrib import admin
from unfold.admin import ModelAdmin, TabularInline

from apps.skills.models import (
    McpServer,
    OpenApiSource,
    RemoteAgent,
    Skill,
    SkillVersion,
    StdioCommand,
    Tool,
)


@admin.register(StdioCommand)
class StdioCommandAdmin(ModelAdmin):
    """The operator's registry of stdio MCP server commands: the only way a stdio server
    can be run. Environment values are stored encrypted."""

    list_display = ["name", "command", "enabled", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "command"]


@admin.register(McpServer)
class McpServerAdmin(ModelAdmin):
    list_display = ["name", "workspace", "transport", "status", "last_checked_at"]
    list_filter = ["transport", "status"]
    search_fields = ["name", "url"]
    exclude = ["headers", "bearer_token", "oauth_client_info", "oauth_tokens", "oauth_pending"]
    readonly_fields = ["status", "status_reason", "last_checked_at", "server_info"]


@admin.register(RemoteAgent)
class RemoteAgentAdmin(ModelAdmin):
    list_display = ["name", "workspace", "url", "status", "card_fetched_at"]
    list_filter = ["status", "auth_type"]
    search_fields = ["name", "url"]
    exclude = ["credential"]
    readonly_fields = ["status", "status_reason", "card", "card_fetched_at"]


@admin.register(Tool)
class ToolAdmin(ModelAdmin):
    list_display = ["name", "workspace", "source", "enabled", "available"]
    list_filter = ["source", "enabled"]
    search_fields = ["name"]


@admin.register(OpenApiSource)
class OpenApiSourceAdmin(ModelAdmin):
    list_display = ["name", "workspace", "base_url", "auth_type"]
    exclude = ["credential"]


class SkillVersionInline(TabularInline):
    model = SkillVersion
    extra = 0
    fields = ["number", "name", "source", "total_size", "created_at"]
    readonly_fields = ["number", "name", "source", "total_size", "created_at"]
    can_delete = False


@admin.register(Skill)
class SkillAdmin(ModelAdmin):
    """Skills; those without a workspace are system skills offered to every workspace
    (create them with `manage.py skill_install`)."""

    list_display = ["name", "workspace", "latest_version", "updated_at"]
    search_fields = ["name", "description"]
    inlines = [SkillVersionInline]

from django.contrib import admin
from unfold.admin import ModelAdmin, TabularInline

from apps.agents.models import Agent, AgentGrant, AgentJob, AgentVersion


class AgentGrantInline(TabularInline):
    model = AgentGrant
    fk_name = "agent"
    extra = 0
    raw_id_fields = ["user", "granted_by"]
    fields = ["user", "permission", "granted_by", "created_at"]
    readonly_fields = ["created_at"]


class AgentVersionInline(TabularInline):
    model = AgentVersion
    extra = 0
    can_delete = False
    fields = ["number", "note", "created_by", "created_at"]
    readonly_fields = ["number", "note", "created_by", "created_at"]
    ordering = ["-number"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Agent)
class AgentAdmin(ModelAdmin):
    list_display = [
        "name",
        "slug",
        "workspace",
        "visibility",
        "version",
        "archived_at",
        "created_at",
    ]
    list_filter = ("visibility", "memory_mode", ("archived_at", admin.EmptyFieldListFilter))
    search_fields = ["name", "slug", "description", "workspace__name", "created_by__email"]
    raw_id_fields = ["workspace", "created_by", "archived_by", "model"]
    filter_horizontal = ["tools", "skill_versions", "knowledge_bases", "subagents"]
    readonly_fields = ["id", "version", "created_at", "updated_at"]
    inlines = [AgentGrantInline, AgentVersionInline]
    fieldsets = (
        (None, {"fields": ("id", "workspace", "name", "slug", "description", "avatar")}),
        (
            "Model",
            {"fields": ("system_prompt", "model", "temperature", "max_tokens", "reasoning")},
        ),
        (
            "Capabilities",
            {
                "fields": (
                    "builtin_tools",
                    "tools",
                    "skill_versions",
                    "knowledge_bases",
                    "subagents",
                    "tools_requiring_approval",
                )
            },
        ),
        (
            "Behaviour",
            {
                "fields": (
                    "memory_mode",
                    "max_loops",
                    "wall_clock_seconds",
                    "suggestions_enabled",
                    "opening_message",
                    "starter_questions",
                )
            },
        ),
        (
            "Lifecycle",
            {
                "fields": (
                    "visibility",
                    "version",
                    "created_by",
                    "archived_at",
                    "archived_by",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )


@admin.register(AgentVersion)
class AgentVersionAdmin(ModelAdmin):
    list_display = ["agent", "number", "note", "created_by", "created_at"]
    search_fields = ["agent__name", "agent__slug", "note"]
    raw_id_fields = ["agent", "created_by"]
    readonly_fields = ["agent", "number", "config", "note", "created_by", "created_at"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(AgentJob)
class AgentJobAdmin(ModelAdmin):
    list_display = ["kind", "status", "workspace", "created_by", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["created_by__email", "workspace__name", "error_code"]
    raw_id_fields = ["workspace", "created_by"]
    readonly_fields = [
        "kind",
        "input",
        "result",
        "error_code",
        "error_message",
        "attempts",
        "worker_id",
        "heartbeat_at",
        "started_at",
        "finished_at",
        "created_at",
    ]

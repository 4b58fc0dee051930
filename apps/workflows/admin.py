from django.contrib import admin
from unfold.admin import ModelAdmin, TabularInline

from apps.workflows.models import Workflow, WorkflowRun, WorkflowStepRun, WorkflowVersion


class VersionInline(TabularInline):
    model = WorkflowVersion
    extra = 0
    can_delete = False
    fields = ["number", "note", "created_by", "created_at"]
    readonly_fields = ["number", "note", "created_by", "created_at"]
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Workflow)
class WorkflowAdmin(ModelAdmin):
    list_display = ["name", "workspace", "version", "published_version", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["version", "published_version", "created_by"]
    inlines = [VersionInline]


class StepRunInline(TabularInline):
    model = WorkflowStepRun
    extra = 0
    can_delete = False
    fields = ["step_id", "step_type", "status", "attempts", "error_code", "started_at"]
    fields += ["finished_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ModelAdmin):
    list_display = ["id", "workflow", "status", "source", "created_at", "finished_at"]
    list_filter = ["status", "source"]
    readonly_fields = [
        "workflow",
        "version_number",
        "definition",
        "created_by",
        "source",
        "status",
        "inputs",
        "outputs",
        "error_step",
        "error_code",
        "error_message",
        "attempts",
        "parent_run",
        "rerun_of",
    ]
    exclude = ["workspace"]
    inlines = [StepRunInline]

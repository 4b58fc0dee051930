from django.contrib import admin
from unfold.admin import ModelAdmin, TabularInline

from apps.tasks.models import (
    InboundTrigger,
    ScheduledTask,
    TaskExecution,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)


class TaskExecutionInline(TabularInline):
    model = TaskExecution
    extra = 0
    can_delete = False
    fields = ["due_at", "trigger", "status", "attempts", "error_code", "run", "finished_at"]
    readonly_fields = ["due_at", "trigger", "status", "attempts", "error_code", "run"]
    readonly_fields += ["finished_at"]
    ordering = ["-due_at"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(ScheduledTask)
class ScheduledTaskAdmin(ModelAdmin):
    list_display = [
        "name",
        "workspace",
        "schedule_kind",
        "enabled",
        "next_run_at",
        "last_run_at",
        "consecutive_failures",
        "archived_at",
    ]
    list_filter = ("schedule_kind", "enabled", ("archived_at", admin.EmptyFieldListFilter))
    search_fields = ["name", "workspace__name", "owner__email"]
    raw_id_fields = ["workspace", "owner", "agent", "conversation"]
    readonly_fields = ["consecutive_failures", "last_run_at", "created_at", "updated_at"]
    inlines = [TaskExecutionInline]


@admin.register(TaskExecution)
class TaskExecutionAdmin(ModelAdmin):
    list_display = ["task", "due_at", "trigger", "status", "attempts", "error_code", "finished_at"]
    list_filter = ("status", "trigger")
    search_fields = ["task__name", "error_code"]
    raw_id_fields = ["task", "run", "conversation"]
    readonly_fields = [f.name for f in TaskExecution._meta.fields]


class WebhookAttemptInline(TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ["number", "requested_at", "status_code", "latency_ms", "error", "response_excerpt"]
    readonly_fields = ["number", "requested_at", "status_code", "latency_ms", "error"]
    readonly_fields += ["response_excerpt"]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ModelAdmin):
    list_display = ["url", "workspace", "enabled", "consecutive_failures", "last_success_at"]
    list_filter = ("enabled",)
    search_fields = ["url", "description", "workspace__name"]
    raw_id_fields = ["workspace", "created_by"]
    # The signing secrets are never shown.
    exclude = ["secret", "previous_secret"]
    readonly_fields = ["consecutive_failures", "last_success_at", "last_failure_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ModelAdmin):
    list_display = [
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
    ]
    list_filter = ("status",)
    raw_id_fields = ["endpoint", "event"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]


@admin.register(InboundTrigger)
class InboundTriggerAdmin(ModelAdmin):
    list_display = ["name", "workspace", "agent", "task", "enabled", "last_called_at"]
    list_filter = ("enabled",)
    search_fields = ["name", "workspace__name"]
    raw_id_fields = ["workspace", "owner", "agent", "task"]
    exclude = ["secret"]

from django.contrib import admin
from django.http import HttpRequest
from unfold.admin import ModelAdmin

from apps.core.models import IdempotencyRecord, SystemSettings


@admin.register(SystemSettings)
class SystemSettingsAdmin(ModelAdmin):
    list_display = ["__str__", "allow_registration", "updated_at", "updated_by"]
    readonly_fields = ["updated_at", "updated_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SystemSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ModelAdmin):
    list_display = ["key", "owner", "status_code", "created_at"]
    list_filter = ["status_code"]
    search_fields = ["key", "owner"]
    readonly_fields = ["owner", "key", "request_hash", "status_code", "response_body", "created_at"]

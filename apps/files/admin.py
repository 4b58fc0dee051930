from django.contrib import admin
from unfold.admin import ModelAdmin

from apps.files.models import File


@admin.register(File)
class FileAdmin(ModelAdmin):
    list_display = ("name", "path", "origin", "kind", "size", "status", "workspace", "owner")
    list_filter = ("origin", "kind", "status")
    search_fields = ("name", "path", "sha256")
    readonly_fields = [f.name for f in File._meta.fields if f.name != "text"]
    exclude = ("text",)

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

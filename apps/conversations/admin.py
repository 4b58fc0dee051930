from django.contrib import admin
from unfold.admin import ModelAdmin

from apps.conversations.models import Conversation, Message, Run, ShareLink


@admin.register(Conversation)
class ConversationAdmin(ModelAdmin):
    list_display = ["id", "title", "agent", "user", "workspace", "created_at"]
    search_fields = ["title"]
    raw_id_fields = ["agent", "user", "workspace"]


@admin.register(Run)
class RunAdmin(ModelAdmin):
    list_display = ["id", "conversation", "status", "worker_id", "heartbeat_at", "created_at"]
    list_filter = ["status"]
    raw_id_fields = [
        "conversation",
        "agent",
        "workspace",
        "created_by",
        "message",
        "answer_message",
    ]


@admin.register(Message)
class MessageAdmin(ModelAdmin):
    list_display = ["id", "conversation", "seq", "role", "created_at"]
    raw_id_fields = ["conversation", "run"]


@admin.register(ShareLink)
class ShareLinkAdmin(ModelAdmin):
    list_display = ["id", "conversation", "created_at", "revoked_at"]
    raw_id_fields = ["conversation", "created_by"]

from django.contrib import admin
from unfold.admin import ModelAdmin

from apps.knowledge.models import Chunk, Document, KnowledgeBase, UploadBatch


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(ModelAdmin):
    list_display = ["name", "workspace", "language", "search_mode", "created_at"]
    list_filter = ["language", "search_mode"]
    search_fields = ["name", "workspace__name"]
    raw_id_fields = ["workspace", "created_by", "embedding_model", "rerank_model"]


@admin.register(Document)
class DocumentAdmin(ModelAdmin):
    list_display = ["name", "knowledge_base", "kind", "status", "chunk_count", "created_at"]
    list_filter = ["status", "kind", "source"]
    search_fields = ["name", "checksum"]
    raw_id_fields = ["knowledge_base", "batch"]
    readonly_fields = [
        "checksum",
        "generation",
        "attempts",
        "worker_id",
        "heartbeat_at",
        "started_at",
        "finished_at",
        "indexed_at",
    ]


@admin.register(Chunk)
class ChunkAdmin(ModelAdmin):
    list_display = ["__str__", "knowledge_base", "position", "token_count", "enabled"]
    list_filter = ["enabled", "manual"]
    raw_id_fields = ["knowledge_base", "document"]
    exclude = ["embedding"]


@admin.register(UploadBatch)
class UploadBatchAdmin(ModelAdmin):
    list_display = ["__str__", "knowledge_base", "created_by", "created_at"]
    search_fields = ["knowledge_base__name"]
    raw_id_fields = ["knowledge_base", "created_by"]

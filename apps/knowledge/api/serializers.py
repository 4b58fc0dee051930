from typing import Any

from rest_framework import serializers

from apps.knowledge.choices import DocumentStatus, Language, SearchMode, Splitter
from apps.knowledge.models import Chunk, Document, KnowledgeBase


class KnowledgeBaseSerializer(serializers.ModelSerializer):
    embedding_model_id = serializers.UUIDField(allow_null=True, read_only=True)
    rerank_model_id = serializers.UUIDField(allow_null=True, read_only=True)
    document_count = serializers.SerializerMethodField()

    class Meta:
        model = KnowledgeBase
        fields = [
            "id",
            "name",
            "description",
            "language",
            "embedding_model_id",
            "chunk_size",
            "chunk_overlap",
            "splitter",
            "top_k",
            "score_threshold",
            "search_mode",
            "rerank_model_id",
            "rerank_candidates",
            "document_count",
            "created_at",
            "updated_at",
        ]

    def get_document_count(self, obj: KnowledgeBase) -> int:
        annotated = getattr(obj, "document_count", None)
        return int(annotated if annotated is not None else obj.documents.count())


class KnowledgeBaseWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, trim_whitespace=True)
    description = serializers.CharField(allow_blank=True, max_length=4000, required=False)
    language = serializers.ChoiceField(choices=Language.choices, required=False)
    embedding_model_id = serializers.UUIDField(allow_null=True, required=False)
    chunk_size = serializers.IntegerField(min_value=32, max_value=8192, required=False)
    chunk_overlap = serializers.IntegerField(min_value=0, max_value=4096, required=False)
    splitter = serializers.ChoiceField(choices=Splitter.choices, required=False)
    top_k = serializers.IntegerField(min_value=1, max_value=100, required=False)
    score_threshold = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    search_mode = serializers.ChoiceField(choices=SearchMode.choices, required=False)
    rerank_model_id = serializers.UUIDField(
        allow_null=True,
        required=False,
        help_text="An enabled rerank model of the workspace or the platform: searches "
        "retrieve candidates, rerank them with it and keep top_k. null: no rerank.",
    )
    rerank_candidates = serializers.IntegerField(
        min_value=1,
        max_value=100,
        allow_null=True,
        required=False,
        help_text="Retrieved passages the reranker reads (at least top_k). null: "
        "max(4 x top_k, 20), at most 100.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        size = attrs.get("chunk_size", getattr(self.instance, "chunk_size", 512))
        overlap = attrs.get("chunk_overlap", getattr(self.instance, "chunk_overlap", 64))
        if overlap * 2 > size:
            raise serializers.ValidationError(
                {"chunk_overlap": "The overlap must be at most half the chunk size."}
            )
        return attrs


class DocumentSerializer(serializers.ModelSerializer):
    knowledge_base_id = serializers.UUIDField(read_only=True)
    batch_id = serializers.UUIDField(read_only=True, allow_null=True)
    error = serializers.CharField(
        source="error_message",
        read_only=True,
        help_text="Why the document failed (or is being retried), in words a person can read.",
    )
    error_code = serializers.CharField(
        read_only=True,
        help_text="A stable code for `error` (e.g. parse_failed, too_many_attempts), or empty.",
    )

    class Meta:
        model = Document
        fields = [
            "id",
            "knowledge_base_id",
            "batch_id",
            "name",
            "source",
            "source_url",
            "kind",
            "size",
            "checksum",
            "metadata",
            "status",
            "error",
            "error_code",
            "progress",
            "attempts",
            "chunk_count",
            "token_count",
            "indexed_at",
            "created_at",
            "updated_at",
        ]


class DocumentUploadSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), allow_empty=False
    )
    override = serializers.BooleanField(default=False)
    metadata = serializers.JSONField(required=False)


class DocumentTextSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    text = serializers.CharField(trim_whitespace=False, max_length=5_000_000)
    override = serializers.BooleanField(default=False)
    metadata = serializers.DictField(required=False)


class DocumentUrlSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    name = serializers.CharField(max_length=255, required=False, default="")
    override = serializers.BooleanField(default=False)
    metadata = serializers.DictField(required=False)


class DocumentUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, required=False)
    metadata = serializers.DictField(required=False)


class BatchSerializer(serializers.Serializer):
    """An upload batch and its progress (`context["progress"]`: a BatchProgress)."""

    COUNTS = ("total", "success", "fail", "in_progress", "waiting")

    def get_fields(self) -> dict[str, serializers.Field]:
        # Declared here: a class attribute named `fail` would hide Serializer.fail().
        fields: dict[str, serializers.Field] = {
            "id": serializers.UUIDField(read_only=True),
            "knowledge_base_id": serializers.UUIDField(read_only=True),
        }
        for name in self.COUNTS:
            fields[name] = serializers.IntegerField(read_only=True)
        fields["ratio"] = serializers.FloatField(
            read_only=True, help_text="Share of documents indexed or failed."
        )
        fields["created_at"] = serializers.DateTimeField(read_only=True)
        return fields

    def to_representation(self, instance: Any) -> dict[str, Any]:
        progress = self.context["progress"]
        data: dict[str, Any] = {
            "id": str(instance.id),
            "knowledge_base_id": str(instance.knowledge_base_id),
        }
        for name in self.COUNTS:
            data[name] = int(getattr(progress, name))
        data["ratio"] = float(progress.ratio)
        data["created_at"] = serializers.DateTimeField().to_representation(instance.created_at)
        return data


class UploadResultSerializer(serializers.Serializer):
    batch = BatchSerializer()
    documents = DocumentSerializer(many=True)


class ChunkSerializer(serializers.ModelSerializer):
    document_id = serializers.UUIDField(read_only=True)
    knowledge_base_id = serializers.UUIDField(read_only=True)
    has_embedding = serializers.SerializerMethodField()

    class Meta:
        model = Chunk
        fields = [
            "id",
            "knowledge_base_id",
            "document_id",
            "position",
            "content",
            "token_count",
            "metadata",
            "enabled",
            "manual",
            "has_embedding",
            "created_at",
            "updated_at",
        ]

    def get_has_embedding(self, obj: Chunk) -> bool:
        return obj.embedding_dims is not None


class ChunkCreateSerializer(serializers.Serializer):
    content = serializers.CharField(max_length=100_000)
    metadata = serializers.DictField(required=False)


class ChunkUpdateSerializer(serializers.Serializer):
    content = serializers.CharField(max_length=100_000, required=False)
    enabled = serializers.BooleanField(required=False)
    metadata = serializers.DictField(required=False)


class SearchFiltersSerializer(serializers.Serializer):
    document_ids = serializers.ListField(child=serializers.UUIDField(), required=False)
    metadata = serializers.DictField(required=False)


class SearchSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=4000)
    top_k = serializers.IntegerField(min_value=1, max_value=100, required=False)
    mode = serializers.ChoiceField(choices=SearchMode.choices, required=False)
    threshold = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text="Minimum score of a hit; the rerank score when the search reranks.",
    )
    filters = SearchFiltersSerializer(required=False)
    rerank = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Omitted: rerank when the knowledge base has a rerank model. true: "
        "rerank (the knowledge base's model, else the workspace's default rerank model). "
        "false: do not rerank.",
    )
    rerank_model_id = serializers.UUIDField(
        required=False, help_text="Rerank with this rerank model (implies rerank)."
    )
    rerank_candidates = serializers.IntegerField(
        min_value=1,
        max_value=100,
        required=False,
        help_text="Retrieved passages the reranker reads (default: the knowledge base's "
        "setting, else max(4 x top_k, 20)).",
    )


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.UUIDField()
    document_id = serializers.UUIDField()
    document_name = serializers.CharField()
    knowledge_base_id = serializers.UUIDField()
    position = serializers.IntegerField()
    content = serializers.CharField()
    score = serializers.FloatField(help_text="The retrieval score.")
    metadata = serializers.DictField()
    rerank_score = serializers.FloatField(
        allow_null=True, help_text="The rerank model's relevance; null: not reranked."
    )


class RerankReportSerializer(serializers.Serializer):
    applied = serializers.BooleanField(
        help_text="The hits are in the rerank model's order and carry its scores."
    )
    model_id = serializers.UUIDField(allow_null=True)
    candidates = serializers.IntegerField(help_text="Retrieved passages sent to the reranker.")
    error = serializers.CharField(
        allow_null=True,
        help_text="Why it was not applied (the provider error code, e.g. "
        "provider_rate_limited); null when applied or when nothing was retrieved.",
    )


class SearchResultSerializer(serializers.Serializer):
    query = serializers.CharField()
    mode = serializers.ChoiceField(choices=SearchMode.choices)
    hits = SearchHitSerializer(many=True)
    rerank = RerankReportSerializer(
        allow_null=True, help_text="What the rerank step did; null: the search did not rerank."
    )


class CountSerializer(serializers.Serializer):
    count = serializers.IntegerField()


class DocumentListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DocumentStatus.choices, required=False)
    batch_id = serializers.UUIDField(required=False)
